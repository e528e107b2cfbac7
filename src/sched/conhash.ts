/**
 * conhash — consistent hashing ring (DPVS ip_vs_conhash.c; Karger et al. 1997): each server places
 * replicas·weight/gcd virtual nodes on a 32-bit ring at hashes of its identity; a connection goes to the first
 * node clockwise of the hash of its source address, skipping unusable servers. Built in update(), picked by
 * binary search.
 */
import { addrHash, gcd, strHash, type SchedOptions, type Scheduler } from './types.js';

/** virtual nodes per unit of weight (after dividing by the weights' gcd) */
export const CONHASH_REPLICAS = 160;

export function conhash(o: SchedOptions = {}): Scheduler {
  const replicas = o.replicas ?? CONHASH_REPLICAS;
  let pos = new Uint32Array(0);
  let owner = new Int32Array(0);
  return {
    name: 'conhash',
    update(d) {
      // weights divided by their gcd (100:200 places as many nodes as 1:2); each node packed as hash * 2^16 +
      // server (exact in a double below 2^48), so one numeric sort orders them by hash, then server
      let g = 0;
      for (let i = 0; i < d.count; i++) g = gcd(g, d.weight[i]!);
      let n = 0;
      for (let i = 0; i < d.count; i++) n += g ? (d.weight[i]! / g) * replicas : 0;
      const nodes = new Float64Array(n);
      let k = 0;
      for (let i = 0; i < d.count; i++) {
        const w = g ? d.weight[i]! / g : 0;
        for (let r = 0; r < w * replicas; r++) nodes[k++] = strHash(`${d.ids[i]}#${r}`) * 65536 + i;
      }
      nodes.sort();
      pos = new Uint32Array(n);
      owner = new Int32Array(n);
      for (let j = 0; j < n; j++) {
        const x = nodes[j]!;
        owner[j] = x % 65536;
        pos[j] = (x - owner[j]!) / 65536;
      }
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
