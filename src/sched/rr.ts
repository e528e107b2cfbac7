/** rr — round robin (IPVS ip_vs_rr.c): the next usable server after the last one picked. */
import type { Scheduler } from './types.js';

export function rr(): Scheduler {
  let last = -1;
  return {
    name: 'rr',
    update() {
      last = -1;
    },
    pick(d) {
      const n = d.count;
      for (let k = 1; k <= n; k++) {
        const i = (last + k) % n;
        if (d.usable(i)) return (last = i);
      }
      return -1;
    },
  };
}


