/**
 * conhash — consistent hashing ring (DPVS ip_vs_conhash.c; Karger et al. 1997): each server places
 * replicas·weight virtual nodes on a 32-bit ring at hashes of its identity; a connection goes to the first
 * node clockwise of the hash of its source address, skipping unusable servers. Built in update(), picked by
 * binary search.
 */
import { addrHash, strHash, type SchedOptions, type Scheduler } from './types.js';

export function conhash(o: SchedOptions = {}): Scheduler {
  const replicas = o.replicas ?? 160;
  let pos = new Uint32Array(0);
  let owner = new Int32Array(0);
  return {
    name: 'conhash',
    update(d) {
      const nodes: Array<[number, number]> = [];
      for (let i = 0; i < d.count; i++) {
        const w = d.weight[i]!;
        for (let r = 0; r < w * replicas; r++) nodes.push([strHash(`${d.ids[i]}#${r}`), i]);
      }
      nodes.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      pos = Uint32Array.from(nodes.map((x) => x[0]));
      owner = Int32Array.from(nodes.map((x) => x[1]));
    },
    pick(d, k) {
      const n = pos.length;
      if (n === 0) return -1;
      const h = addrHash(k.src, k.v6);
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (pos[mid]! < h) lo = mid + 1;
        else hi = mid;
      }
      for (let s = 0; s < n; s++) {
        const i = owner[(lo + s) % n]!;
        if (d.usable(i)) return i;
      }
      return -1;
    },
  };
}
