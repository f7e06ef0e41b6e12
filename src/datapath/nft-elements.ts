import { endianness } from 'node:os';
import { parseIp } from '../model/index.js';
import { parseIp6 } from '../model/ipv6.js';
import { Attached } from '../model/attached.js';
import type { NftMap } from './table.js';

/**
 * A map's elements as weft-nftd writes them itself (linux/nftd-elements.c), beside the script that
 * declares the map: each key as the kernel holds it, in hex, and its value (a mark in hex, or a
 * verdict). nft parses and evaluates ~3.5 µs per element; the kernel takes ~1 µs (docs/decisions.md,
 * "Map elements without nft"). Only exact-match maps and sets of the types below: an interval map's
 * elements are ranges the kernel holds as pairs of ends, which nft keeps writing.
 */

/** A key field: how many bytes it takes and how its text becomes them (undefined: not such a field). */
interface Field { size: number; write: (text: string, out: Buffer, at: number) => boolean }

const little = endianness() === 'LE';

const FIELDS: Record<string, Field> = {
  // nft's mark is a 32-bit number in the host's byte order.
  mark: { size: 4, write: (t, out, at) => u32(t, out, at, little) },
  inet_service: { size: 2, write: (t, out, at) => port(t, out, at) },
  ipv4_addr: { size: 4, write: (t, out, at) => ip4(t, out, at) },
  ipv6_addr: { size: 16, write: (t, out, at) => ip6(t, out, at) },
};

function u32(text: string, out: Buffer, at: number, le: boolean): boolean {
  if (!/^(?:0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(text)) return false;
  const n = Number(text);
  if (n > 0xffffffff) return false;
  if (le) out.writeUInt32LE(n, at);
  else out.writeUInt32BE(n, at);
  return true;
}

function port(text: string, out: Buffer, at: number): boolean {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) return false;
  out.writeUInt16BE(Number(text), at);
  return true;
}

function ip4(text: string, out: Buffer, at: number): boolean {
  const n = parseIp(text);
  if (n === undefined) return false;
  out.writeUInt32BE(n, at);
  return true;
}

function ip6(text: string, out: Buffer, at: number): boolean {
  const n = parseIp6(text);
  if (n === undefined) return false;
  for (let i = 0; i < 16; i++) out[at + i] = Number((n >> BigInt(8 * (15 - i))) & 0xffn);
  return true;
}

/** A key type's fields with their offsets: one field takes its own size, each of several a multiple of 4 bytes (the kernel's registers). */
interface KeyShape { fields: Field[]; offsets: number[]; size: number }

function keyShape(text: string): KeyShape | undefined {
  const names = text.split(' . ');
  const fields: Field[] = [];
  const offsets: number[] = [];
  let size = 0;
  for (const name of names) {
    const f = FIELDS[name];
    if (!f) return undefined;
    fields.push(f);
    offsets.push(size);
    size += names.length === 1 ? f.size : Math.ceil(f.size / 4) * 4;
  }
  return { fields, offsets, size };
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

/** Per map (immutable, content-named: written once), its lines, or null where nft writes it. */
const cache = new Attached<NftMap, string | null>('element lines');

/**
 * The lines that write `m`'s elements into it (a `map|set FAMILY TABLE NAME` line, then one per
 * element), or undefined when its type or an element is not one this writes: nft writes it then.
 */
export function elementLines(family: string, table: string, m: NftMap): string | undefined {
  const cached = cache.get(m);
  if (cached !== undefined) return cached ?? undefined;
  const out = encode(family, table, m);
  cache.set(m, out ?? null);
  return out;
}

function encode(family: string, table: string, m: NftMap): string | undefined {
  const shape = shapeOf(m);
  if (!shape) return undefined;
  const { key, value } = shape;
  const buf = Buffer.alloc(key.size);
  const mark = Buffer.alloc(4);
  const lines = [`${value === 'none' ? 'set' : 'map'} ${family} ${table} ${m.name}`];
  for (const e of m.elements) {
    const sep = e.indexOf(' : ');
    if ((sep < 0) !== (value === 'none')) return undefined;
    const parts = (sep < 0 ? e : e.slice(0, sep)).split(' . ');
    if (parts.length !== key.fields.length) return undefined;
    buf.fill(0);
    for (let i = 0; i < parts.length; i++) if (!(key.fields[i] as Field).write(parts[i] as string, buf, key.offsets[i] as number)) return undefined;
    if (value === 'none') {
      lines.push(buf.toString('hex'));
      continue;
    }
    const v = e.slice(sep + 3);
    if (value === 'mark') {
      if (!u32(v, mark, 0, little)) return undefined;
      lines.push(`${buf.toString('hex')} =${mark.toString('hex')}`);
    } else {
      if (!VERDICT.test(v)) return undefined;
      lines.push(`${buf.toString('hex')} ${v}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
