/**
 * sh / dh — source / destination hashing (IPVS ip_vs_sh.c, ip_vs_dh.c): 256 buckets, each server taking
 * `weight` consecutive buckets in turn; the bucket is hash_32(address [+ port]) of the source (sh) or the
 * destination (dh). With `fallback`, an unusable server's bucket leads to the next buckets (sh's
 * IP_VS_SVC_F_SCHED_SH_FALLBACK), else the connection gets no server.
 */
import type { Dests, SchedKey, SchedOptions, Scheduler } from './types.js';

const BITS = 8;
const SIZE = 1 << BITS;

function hashKey(words: Uint32Array, v6: boolean, port: number, offset: number): number {
  let v = words[0]!;
  if (v6) v = (v ^ words[1]! ^ words[2]! ^ words[3]!) >>> 0;
  // hash_32(val, bits): the top bits of val * GOLDEN_RATIO_32
  return (offset + (Math.imul((port + v) >>> 0, 0x61c88647) >>> (32 - BITS))) & (SIZE - 1);
}

function hashing(name: 'sh' | 'dh', o: SchedOptions): Scheduler {
  const buckets = new Int32Array(SIZE).fill(-1);
  return {
    name,
    update(d) {
      buckets.fill(-1);
      if (d.count === 0) return;
      let p = 0;
      let count = 0;
      for (let i = 0; i < SIZE; i++) {
        buckets[i] = p;
        if (++count >= d.weight[p]!) {
          p = (p + 1) % d.count;
          count = 0;
        }
      }
    },
    pick(d: Dests, k: SchedKey) {
      const words = name === 'sh' ? k.src : k.dst;
      const port = o.port ? (name === 'sh' ? k.sport : k.dport) : 0;
      const tries = o.fallback ? SIZE : 1;
      for (let off = 0; off < tries; off++) {
        const i = buckets[hashKey(words, k.v6, port, off)]!;
        if (i < 0) return -1;
        if (d.usable(i)) return i;
      }
      return -1;
    },
  };
}

export const sh = (o: SchedOptions = {}) => hashing('sh', o);
export const dh = (o: SchedOptions = {}) => hashing('dh', o);
