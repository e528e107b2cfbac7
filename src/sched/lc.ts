/**
 * Least-connection family (IPVS ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c, ip_vs_nq.c). Overheads are integers and
 * weighted comparisons cross-multiply, as the kernel does:
 *   lc:  overhead = active·256 + inactive, the least wins
 *   wlc: overhead/weight least: loh·w(dest) > doh·w(least)
 *   sed: (active + 1)/weight least
 *   nq:  an idle server (no active connection) at once, else as sed
 */
import type { Dests, Scheduler } from './types.js';

function leastBy(d: Dests, overhead: (i: number) => number, weighted: boolean, idleFirst: boolean): number {
  let least = -1;
  let loh = 0;
  for (let i = 0; i < d.count; i++) {
    if (!d.usable(i)) continue;
    if (idleFirst && d.active[i] === 0) return i;
    const doh = overhead(i);
    if (least < 0) {
      least = i;
      loh = doh;
      continue;
    }
    const better = weighted ? loh * d.weight[i]! > doh * d.weight[least]! : doh < loh;
    if (better) {
      least = i;
      loh = doh;
    }
  }
  return least;
}

const stateless = (name: string, pick: (d: Dests) => number): Scheduler => ({ name, update() {}, pick: (d) => pick(d) });

export const lc = () => stateless('lc', (d) => leastBy(d, (i) => d.active[i]! * 256 + d.inactive[i]!, false, false));
export const wlc = () => stateless('wlc', (d) => leastBy(d, (i) => d.active[i]! * 256 + d.inactive[i]!, true, false));
export const sed = () => stateless('sed', (d) => leastBy(d, (i) => d.active[i]! + 1, true, false));
export const nq = () => stateless('nq', (d) => leastBy(d, (i) => d.active[i]! + 1, true, true));
