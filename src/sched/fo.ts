/**
 * fo — weighted failover (IPVS ip_vs_fo.c): the usable server with the highest weight.
 * ovf — weighted overflow (IPVS ip_vs_ovf.c): the usable server with the highest weight whose active
 * connections are still below its weight; when all are full, none.
 */
import type { Dests, Scheduler } from './types.js';

function highest(d: Dests, roomOnly: boolean): number {
  let h = -1;
  for (let i = 0; i < d.count; i++) {
    if (!d.usable(i)) continue;
    if (roomOnly && d.active[i]! >= d.weight[i]!) continue;
    if (h < 0 || d.weight[i]! > d.weight[h]!) h = i;
  }
  return h;
}

export const fo = (): Scheduler => ({ name: 'fo', update() {}, pick: (d) => highest(d, false) });
export const ovf = (): Scheduler => ({ name: 'ovf', update() {}, pick: (d) => highest(d, true) });
