/**
 * mh — Maglev hashing (Eisenbud et al., NSDI 2016; IPVS ip_vs_mh.c). Each server gets a permutation of the
 * M table slots from two hashes of its identity (offset = h1 mod M, skip = h2 mod (M−1) + 1); servers take
 * turns claiming their next free preferred slot, weight/gcd times per turn, until the table is full. A
 * connection goes to table[hash(source address [, port]) mod M]. Removing one of N servers moves about
 * 1/N of the keys. With `fallback`, an unusable server leads to rehashed slots.
 */
import { gcd, strHash, type SchedOptions, type Scheduler } from './types.js';

function keyHash(words: Uint32Array, v6: boolean, port: number, seed: number): number {
  let h = seed ^ 0x9e3779b9;
  const n = v6 ? 4 : 1;
  for (let i = 0; i < n; i++) {
    h = Math.imul(h ^ words[i]!, 0x85ebca6b);
    h ^= h >>> 13;
  }
  h = Math.imul(h ^ port, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Maglev's populate (the paper's Pseudocode 1): user u's preferred slots are (offset[u] + j * skip[u]) mod M,
 * j = 0, 1, ...; users take turns claiming their next free one (`turns[u]` of them per round: the weight over
 * the weights' gcd) until all M = table.length slots hold a user's number. Each user's position is kept as a
 * running sum (one add and a compare per probe, small integers: no product past 2^31, no modulo of a double).
 */
export function maglevPopulate(offset: Int32Array, skip: Int32Array, turns: Int32Array, table: Int32Array): void {
  const M = table.length;
  const n = offset.length;
  table.fill(-1);
  const pos = Int32Array.from(offset);
  let filled = 0;
  while (filled < M) {
    for (let u = 0; u < n && filled < M; u++) {
      const sk = skip[u]!;
      let c = pos[u]!;
      for (let t = 0; t < turns[u]! && filled < M; t++) {
        while (table[c]! >= 0) {
          c += sk;
          if (c >= M) c -= M;
        }
        table[c] = u;
        c += sk;
        if (c >= M) c -= M;
        filled++;
      }
      pos[u] = c;
    }
  }
}

export function mh(o: SchedOptions = {}): Scheduler {
  const M = o.tableSize ?? 65537;
  const table = new Int32Array(M).fill(-1);
  return {
    name: 'mh',
    update(d) {
      table.fill(-1);
      const users: number[] = [];
      let g = 0;
      for (let i = 0; i < d.count; i++) {
        if (d.weight[i]! > 0) {
          users.push(i);
          g = gcd(g, d.weight[i]!);
        }
      }
      if (users.length === 0) return;
      const n = users.length;
      const offset = new Int32Array(n);
      const skip = new Int32Array(n);
      const turns = new Int32Array(n);
      for (let u = 0; u < n; u++) {
        const id = d.ids[users[u]!]!;
        offset[u] = strHash(id, 0x811c9dc5) % M;
        skip[u] = (strHash(id, 0x01000193) % (M - 1)) + 1;
        turns[u] = d.weight[users[u]!]! / g;
      }
      maglevPopulate(offset, skip, turns, table);
      for (let c = 0; c < M; c++) table[c] = users[table[c]!]!;
    },
    pick(d, k) {
      const port = o.port ? k.sport : 0;
      const tries = o.fallback ? 64 : 1;
      for (let t = 0; t < tries; t++) {
        const i = table[keyHash(k.src, k.v6, port, t) % M]!;
        if (i < 0) return -1;
        if (d.usable(i)) return i;
      }
      return -1;
    },
  };
}
