import { allChains, allMaps, type NftMap, type NftTable } from './table.js';

/**
 * For tests, never used by the product: what the kernel would make of a delta script (table-delta.ts)
 * applied to a table, command by command, with the checks that make it refuse a transaction. References
 * are counted the way older kernels (before 6.4's "drop map element references from preparation phase",
 * Debian 12's 6.1 before its backport) count them: a chain stays referenced by the elements of a map
 * deleted earlier in the same transaction unless that map was flushed first, and by an anonymous verdict
 * map of a rule flushed in it. Returns the resulting table
 * and what the kernel would refuse or what would leave a rule pointing nowhere (`problems`), and the maps
 * flushed while rules look them up (`inPlace`: changed in place, which policy maps must never be).
 */
export function applyScript(prev: NftTable, script: string): { table: NftTable; problems: string[]; inPlace: string[] } {
  // What a change left unused (prev.leftover) is in the kernel as much as the rest.
  const maps = new Map([...allMaps(prev), ...leftMaps(prev)].map((m) => [m.name, { ...m, elements: [...m.elements] }]));
  const chains = new Map<string, { head: string[]; rules: string[] }>();
  let cur: { head: string[]; rules: string[] } | undefined;
  for (const l of [...allChains(prev), ...leftChains(prev)]) {
    const h = /^\t(\S+) (\S+) \{$/.exec(l);
    if (h) chains.set(h[2] as string, (cur = { head: [], rules: [] }));
    else if (l !== '\t}') (/^\t\ttype \S+ hook /.test(l) ? cur?.head : cur?.rules)?.push(l);
  }
  // Elements of maps deleted unflushed in this transaction still hold their chains (see above).
  const held: string[] = [];
  /** The maps this script declares (`add map`): all nft knows of while it lists no sets. */
  const declared = new Set<string>();
  const problems: string[] = [];
  const inPlace: string[] = [];
  const jumps = (x: string) => [...x.matchAll(/(?:jump|goto) ([\w-]+)/g)].map((m) => m[1] as string);
  const mapUsers = (name: string) => [...chains].filter(([, c]) => c.rules.some((r) => new RegExp(`@${name}(\\s|$)`).test(r))).map(([n]) => n);
  const chainUsers = (name: string) => [
    ...[...chains].filter(([, c]) => c.rules.some((r) => jumps(r).includes(name))).map(([n]) => `chain ${n}`),
    ...[...maps].filter(([, m]) => m.elements.some((e) => jumps(e).includes(name))).map(([n]) => `map ${n}`),
    ...held.filter((e) => jumps(e).includes(name)).map(() => 'a deleted map'),
  ];
  const lines = script.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    let m: RegExpExecArray | null;
    if (l === '') continue;
    if ((m = /^add chain \S+ \S+ (\S+)(?: \{ (.*) \})?$/.exec(l))) {
      if (!chains.has(m[1] as string)) chains.set(m[1] as string, { head: m[2] ? [`\t\t${m[2]}`] : [], rules: [] });
    } else if ((m = /^flush (map|set) \S+ \S+ (\S+)$/.exec(l))) {
      const x = maps.get(m[2] as string);
      if (x) declared.add(x.name);
      if (!x) problems.push(`flush of a missing map ${m[2]}`);
      else {
        if (mapUsers(x.name).length > 0) inPlace.push(x.name);
        x.elements = [];
      }
    } else if ((m = /^(add|delete) element \S+ \S+ (\S+) \{ (.*) \}$/.exec(l))) {
      const x = maps.get(m[2] as string);
      const items = (m[3] as string).split(', ');
      if (!x) problems.push(`${m[1]} element in a missing set ${m[2]}`);
      else if (m[1] === 'add') {
        for (const e of items) if (x.elements.includes(e)) problems.push(`add element ${e}: it exists (EEXIST)`);
        x.elements.push(...items);
      } else {
        for (const e of items) if (!x.elements.includes(e)) problems.push(`delete element ${e}: it does not exist (ENOENT)`);
        x.elements = x.elements.filter((e) => !items.includes(e));
      }
    } else if ((m = /^flush chain \S+ \S+ (\S+)$/.exec(l))) {
      const c = chains.get(m[1] as string);
      if (!c) problems.push(`flush of a missing chain ${m[1]}`);
      else {
        // An anonymous verdict map in a rule (`vmap { k : jump X }`) is a set of its own: on those kernels
        // its elements hold their chains until it is destroyed, after the transaction.
        for (const r of c.rules) for (const a of r.matchAll(/vmap \{([^}]*)\}/g)) held.push(a[1] as string);
        c.rules = [];
      }
    } else if ((m = /^delete (map|set) \S+ \S+ (\S+)$/.exec(l))) {
      const x = maps.get(m[2] as string);
      if (!x) problems.push(`delete of a missing map ${m[2]}`);
      else {
        if (mapUsers(x.name).length > 0) problems.push(`delete of map ${x.name}, which rules use (EBUSY)`);
        held.push(...x.elements);
        maps.delete(x.name);
      }
    } else if ((m = /^delete chain \S+ \S+ (\S+)$/.exec(l))) {
      const users = chainUsers(m[1] as string);
      if (users.length > 0) problems.push(`delete of chain ${m[1]}, which ${users.join(', ')} still jump to (EBUSY)`);
      if ((chains.get(m[1] as string)?.rules.length ?? 0) > 0) problems.push(`delete of chain ${m[1]}, not empty`);
      chains.delete(m[1] as string);
    } else if ((m = /^add (map|set|chain) \S+ \S+ (\S+) \{$/.exec(l))) {
      // A block command: its lines up to a lone `}`.
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== '}'; i++) body.push(lines[i] as string);
      const name = m[2] as string;
      if (m[1] === 'chain') {
        const head = body.filter((b) => /^\t\ttype \S+ hook /.test(b));
        const c = chains.get(name) ?? { head, rules: [] };
        chains.set(name, c);
        for (const r of body.filter((b) => !/^\t\ttype \S+ hook /.test(b))) {
          for (const ref of r.matchAll(/@(\S+)/g)) {
            if (!maps.has(ref[1] as string)) problems.push(`a rule of ${name} looks up a missing map ${ref[1]}`);
            // nft lists no sets for `add chain`: it knows only the maps this script declares.
            else if (!declared.has(ref[1] as string)) problems.push(`a rule of ${name} looks up map ${ref[1]}, which the script does not declare (nft: No such file or directory)`);
          }
          for (const j of jumps(r)) if (!chains.has(j)) problems.push(`a rule of ${name} jumps to a missing chain ${j}`);
          c.rules.push(r);
        }
      } else {
        const text = body.join('\n');
        const elements = /elements = \{ ([\s\S]*) \}/.exec(text)?.[1]?.split(',\n\t\t\t') ?? [];
        for (const e of elements) for (const j of jumps(e)) if (!chains.has(j)) problems.push(`an element of ${name} jumps to a missing chain ${j}`);
        const type = /^\t\t(?:type )?(.*)$/.exec(body[0] ?? '')?.[1] ?? '';
        const had = maps.get(name);
        if (had && (had.type !== type || had.interval !== text.includes('flags interval'))) problems.push(`map ${name} declared again with another type (EEXIST)`);
        const x: NftMap = had ?? { name, type, interval: text.includes('flags interval'), elements: [], ...(m[1] === 'set' ? { set: true } : {}) };
        for (const e of elements) if (x.elements.includes(e) && x.interval === false) problems.push(`add element ${e} to ${name}: it exists (EEXIST)`);
        x.elements.push(...elements);
        maps.set(name, x);
        declared.add(name);
      }
    } else {
      throw new Error(`a command this model does not know: ${l}`);
    }
  }
  const table: NftTable = {
    family: prev.family, name: prev.name, maps: [...maps.values()],
    chains: [...chains].flatMap(([name, c]) => [`\tchain ${name} {`, ...c.head, ...c.rules, '\t}']),
  };
  return { table, problems, inPlace };
}

/** A table as comparable content: maps by name with their elements sorted, chains by name with their lines. */
export function contentOf(t: NftTable): string {
  const maps = [...allMaps(t), ...leftMaps(t)].map((m) => [m.name, m.type, m.interval, [...m.elements].sort()] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const chains: Array<[string, string[]]> = [];
  for (const l of [...allChains(t), ...leftChains(t)]) {
    const h = /^\t\S+ (\S+) \{$/.exec(l);
    if (h) chains.push([h[1] as string, []]);
    else if (l !== '\t}') chains[chains.length - 1]?.[1].push(l);
  }
  return JSON.stringify([maps, chains.sort((a, b) => (a[0] < b[0] ? -1 : 1))]);
}

/** What a change left unused in the kernel (NftTable.leftover), its shared chains' too. */
const leftMaps = (t: NftTable): NftMap[] => [...t.leftover?.maps ?? [], ...(t.leftover?.shared ?? []).flatMap((c) => c.maps)];
const leftChains = (t: NftTable): string[] => [...t.leftover?.chains ?? [], ...(t.leftover?.shared ?? []).flatMap((c) => c.block)];
