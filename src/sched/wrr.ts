/**
 * wrr — weighted round robin, LVS interleaving (ip_vs_wrr.c): a current weight `cw` steps down by the gcd
 * of the weights each time the list wraps; a server is picked when its weight is at least `cw`. Initial
 * state as current kernels: mw = max − (gcd − 1), cw = mw. Over sum(weights)/gcd picks each server is picked
 * weight/gcd times, interleaved.
 */
import { gcd, type Scheduler } from './types.js';

export function wrr(): Scheduler {
  let cl = -1;
  let cw = 0;
  let mw = 0;
  let di = 1;
  return {
    name: 'wrr',
    update(d) {
      let max = 0;
      let g = 0;
      for (let i = 0; i < d.count; i++) {
        const w = d.weight[i]!;
        if (w > 0) {
          if (w > max) max = w;
          g = gcd(g, w);
        }
      }
      di = g || 1;
      mw = max > 0 ? max - (di - 1) : 0;
      cw = mw;
      cl = -1;
    },
    pick(d) {
      const n = d.count;
      if (n === 0 || mw === 0) return -1;
      // at most one full cycle of current weights over every server
      const limit = n * (Math.ceil(mw / di) + 1);
      let i = cl;
      for (let steps = 0; steps <= limit; steps++) {
        i++;
        if (i >= n) {
          i = -1;
          cw -= di;
          if (cw <= 0) cw = mw;
          continue;
        }
        if (d.usable(i) && d.weight[i]! >= cw) return (cl = i);
      }
      return -1;
    },
  };
}
