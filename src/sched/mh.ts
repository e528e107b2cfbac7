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
      const offset = users.map((i) => strHash(d.ids[i]!, 0x811c9dc5) % M);
      const skip = users.map((i) => (strHash(d.ids[i]!, 0x01000193) % (M - 1)) + 1);
      const next = users.map(() => 0);
      const turns = users.map((i) => d.weight[i]! / g);
      let filled = 0;
      while (filled < M) {
        for (let u = 0; u < users.length && filled < M; u++) {
          for (let t = 0; t < turns[u]! && filled < M; t++) {
            let c = (offset[u]! + next[u]! * skip[u]!) % M;
            while (table[c]! >= 0) {
              next[u]!++;
              c = (offset[u]! + next[u]! * skip[u]!) % M;
            }
            table[c] = users[u]!;
            next[u]!++;
            filled++;
          }
        }
      }
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
