import { endianness } from 'node:os';
import { parseIp } from '../model/index.js';
import { parseIp6 } from '../model/ipv6.js';
import { Attached } from '../model/attached.js';
import type { NftMap } from './table.js';

/**
 * A map's elements as weft-nftd writes them itself (linux/nftd-elements.c), beside the script that
 * declares the map: each key as the kernel holds it, in hex, and its value (a mark in hex, or a
 * verdict). nft parses and evaluates ~3.5 µs per element; the kernel takes ~1 µs (docs/decisions.md,
 * "Map elements and removals without nft"). Only exact-match maps and sets of the types below: an interval map's
 * elements are ranges the kernel holds as pairs of ends, which nft keeps writing.
 */

/** A key field: how many bytes it takes and its text as those bytes in hex (undefined: not such a field). */
interface Field { size: number; hex: (text: string) => string | undefined }

const little = endianness() === 'LE';
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

const FIELDS: Record<string, Field> = {
  // nft's mark is a 32-bit number in the host's byte order.
  mark: { size: 4, hex: (t) => u32(t) },
  inet_service: { size: 2, hex: (t) => port(t) },
  ipv4_addr: { size: 4, hex: (t) => ip4(t) },
  ipv6_addr: { size: 16, hex: (t) => ip6(t) },
};

/** A number as the renderer writes one: decimal, or hex after 0x; at most `max`. Number() alone would take " 1", "1e3", "0b1", "010". */
function num(text: string, max: number): number | undefined {
  const hex = text.startsWith('0x');
  const digits = hex ? text.length - 2 : text.length;
  if (digits < 1 || digits > (hex ? 8 : 10)) return undefined;
  // A leading zero is octal to some readers: the renderer writes none, and one is not guessed at.
  if (!hex && digits > 1 && text.charCodeAt(0) === 0x30) return undefined;
  for (let i = hex ? 2 : 0; i < text.length; i++) {
    const c = text.charCodeAt(i) | 0x20; // lower case for a-f
    if (!((c >= 0x30 && c <= 0x39) || (hex && c >= 0x61 && c <= 0x66))) return undefined;
  }
  const n = Number(text);
  return n <= max ? n : undefined;
}

function u32(text: string): string | undefined {
  const n = num(text, 0xffffffff);
  if (n === undefined) return undefined;
  const b = [HEX[n & 255], HEX[(n >>> 8) & 255], HEX[(n >>> 16) & 255], HEX[n >>> 24]];
  return little ? `${b[0]}${b[1]}${b[2]}${b[3]}` : `${b[3]}${b[2]}${b[1]}${b[0]}`;
}

function port(text: string): string | undefined {
  const n = text.startsWith('0x') ? undefined : num(text, 65535);
  return n === undefined ? undefined : `${HEX[n >>> 8]}${HEX[n & 255]}`;
}

function ip4(text: string): string | undefined {
  const n = parseIp(text);
  return n === undefined ? undefined : `${HEX[n >>> 24]}${HEX[(n >>> 16) & 255]}${HEX[(n >>> 8) & 255]}${HEX[n & 255]}`;
}

function ip6(text: string): string | undefined {
  const n = parseIp6(text);
  return n === undefined ? undefined : n.toString(16).padStart(32, '0');
}

/** A key type's fields, and the zeros after each (one field takes its own size, each of several a multiple of 4 bytes: the kernel's registers). */
interface KeyShape { fields: Field[]; pads: string[] }

function keyShape(text: string): KeyShape | undefined {
  const names = text.split(' . ');
  const fields: Field[] = [];
  const pads: string[] = [];
  for (const name of names) {
    const f = FIELDS[name];
    if (!f) return undefined;
    fields.push(f);
    pads.push(names.length === 1 ? '' : '00'.repeat(Math.ceil(f.size / 4) * 4 - f.size));
  }
  return { fields, pads };
}

const VERDICT = /^(?:accept|drop|continue|return|(?:jump|goto) [A-Za-z0-9_.-]{1,255})$/;

/** What a map's values are: a mark, a verdict, or nothing (a set). */
type Value = 'mark' | 'verdict' | 'none';

function shapeOf(m: NftMap): { key: KeyShape; value: Value } | undefined {
  if (m.interval || m.type.startsWith('typeof ')) return undefined;
  const [keyText, valueText, extra] = m.type.split(' : ');
  if (keyText === undefined || extra !== undefined) return undefined;
  const key = keyShape(keyText);
  if (!key) return undefined;
  if (m.set) return valueText === undefined ? { key, value: 'none' } : undefined;
  return valueText === 'mark' || valueText === 'verdict' ? { key, value: valueText } : undefined;
}

/** Per map (immutable, content-named: written once), its lines for one table, or null where nft writes it. */
const cache = new Attached<NftMap, { at: string; lines: string | null }>('element lines');

/**
 * The lines that write `m`'s elements into it (a `map|set FAMILY TABLE NAME` line, then one per
 * element), or undefined when its type or an element is not one this writes: nft writes it then.
 */
export function elementLines(family: string, table: string, m: NftMap): string | undefined {
  const at = `${family} ${table}`;
  const cached = cache.get(m);
  if (cached?.at === at) return cached.lines ?? undefined;
  const out = encode(family, table, m);
  cache.set(m, { at, lines: out ?? null });
  return out;
}

function encode(family: string, table: string, m: NftMap): string | undefined {
  const shape = shapeOf(m);
  if (!shape) return undefined;
  const { key, value } = shape;
  const lines = [`${value === 'none' ? 'set' : 'map'} ${family} ${table} ${m.name}`];
  for (const e of m.elements) {
    const sep = e.indexOf(' : ');
    if ((sep < 0) !== (value === 'none')) return undefined;
    const parts = (sep < 0 ? e : e.slice(0, sep)).split(' . ');
    if (parts.length !== key.fields.length) return undefined;
    let hex = '';
    for (let i = 0; i < parts.length; i++) {
      const h = (key.fields[i] as Field).hex(parts[i] as string);
      if (h === undefined) return undefined;
      hex += h + (key.pads[i] as string);
    }
    if (value === 'none') {
      lines.push(hex);
      continue;
    }
    const v = e.slice(sep + 3);
    if (value === 'mark') {
      const h = u32(v);
      if (h === undefined) return undefined;
      lines.push(`${hex} =${h}`);
    } else {
      if (!VERDICT.test(v)) return undefined;
      lines.push(`${hex} ${v}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
