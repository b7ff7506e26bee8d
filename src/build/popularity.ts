import { ErrorCode, LadingError } from '../errors/index.ts';

/** One element of the JSON `exportReferencesGraph` gives (`closureGraph`). */
export interface GraphEntry {
  path: string;
  references: string[];
}

/** The closure of `roots` in `graph` (roots not in the graph stand alone), in graph order then roots. */
export function closureOf(graph: GraphEntry[], roots: string[]): Set<string> {
  const refs = new Map<string, string[]>();
  for (const e of graph) refs.set(e.path, [...(refs.get(e.path) ?? []), ...e.references]);
  const seen = new Set<string>();
  const stack = [...roots];
  while (stack.length > 0) {
    const p = stack.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    for (const r of refs.get(p) ?? []) stack.push(r);
  }
  return seen;
}

/**
 * nix2container's popularity order (its `nix/layers.go`, `closure/`): nodes get sequential IDs in graph order
 * (each entry's path, then its references); edges go path → reference, self-references dropped;
 * every node starts at 1 and, in topological order (referrers first), adds its score to each node
 * it references — the number of root-to-node paths. Sorted by score descending, ties by higher ID
 * first. Only nodes in `keep` (default: all) take part.
 */
export function popularityOrder(graph: GraphEntry[], keep?: Set<string>): string[] {
  const ids = new Map<string, number>();
  const names: string[] = [];
  const id = (p: string): number => {
    let n = ids.get(p);
    if (n === undefined) {
      n = names.length;
      ids.set(p, n);
      names.push(p);
    }
    return n;
  };
  const referrers: Set<number>[] = [];
  for (const e of graph) {
    if (keep && !keep.has(e.path)) continue;
    const from = id(e.path);
    for (const r of e.references) {
      if (keep && !keep.has(r)) continue;
      const to = id(r);
      if (to === from) continue;
      let set = referrers[to];
      if (!set) {
        set = new Set();
        referrers[to] = set;
      }
      set.add(from);
    }
  }
  const score: number[] = [];
  const state: number[] = [];
  const visit = (n: number): number => {
    if (state[n] === 2) return score[n]!;
    if (state[n] === 1)
      throw new LadingError(
        ErrorCode.BadArgument,
        `build spec: closureGraph: ${names[n]} is part of a cycle`,
      );
    state[n] = 1;
    let s = 1;
    for (const r of referrers[n] ?? []) s += visit(r);
    state[n] = 2;
    score[n] = s;
    return s;
  };
  const order = names.map((_, n) => n);
  for (const n of order) visit(n);
  order.sort((a, b) => score[b]! - score[a]! || b - a);
  return order.map((n) => names[n]!);
}

/** Splits popularity-ordered paths: the first `maxLayers - 1` one layer each, the rest in the last. */
export function splitLayers(ordered: string[], maxLayers: number): string[][] {
  if (ordered.length === 0) return [];
  const out: string[][] = [];
  const single = Math.min(maxLayers - 1, ordered.length);
  for (let i = 0; i < single; i++) out.push([ordered[i]!]);
  if (ordered.length > single) out.push(ordered.slice(single));
  return out;
}
