/** Scheduler registry by IPVS/DPVS name. Each call makes a scheduler with its own state (one per service). */
import { conhash } from './conhash.js';
import { fo, ovf } from './fo.js';
import { lc, nq, sed, wlc } from './lc.js';
import { mh } from './mh.js';
import { rr } from './rr.js';
import { dh, sh } from './sh.js';
import type { SchedOptions, Scheduler } from './types.js';
import { wrr } from './wrr.js';

export const SCHEDULERS: Record<string, (o: SchedOptions) => Scheduler> = {
  rr: () => rr(),
  wrr: () => wrr(),
  wlc: () => wlc(),
  lc: () => lc(),
  sed: () => sed(),
  nq: () => nq(),
  sh: (o) => sh(o),
  dh: (o) => dh(o),
  mh: (o) => mh(o),
  conhash: (o) => conhash(o),
  fo: () => fo(),
  ovf: () => ovf(),
};

export const SCHEDULER_NAMES = Object.keys(SCHEDULERS);

export function createScheduler(name: string, o: SchedOptions = {}): Scheduler {
  const f = SCHEDULERS[name];
  if (!f) throw new Error(`unknown scheduler "${name}" (known: ${SCHEDULER_NAMES.join(', ')})`);
  return f(o);
}

export { Dests, type SchedKey, type SchedOptions, type Scheduler } from './types.js';
