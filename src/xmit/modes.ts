/**
 * The forwarding modes by code (FWD_*, mode.ts) and by the name the configuration gives. Adding a mode: its
 * file (a ForwardMode, and its rewrite), a line here, the name in config.ts's enum, and its case in the
 * engine's per-packet dispatch.
 */
import { drMode } from './dr.js';
import { fnatMode } from './fnat.js';
import type { ForwardMode } from './mode.js';
import { natMode } from './nat.js';
import { snatMode } from './snat.js';
import { tunnelMode } from './tunnel.js';

export { FWD_DR, FWD_FNAT, FWD_NAT, FWD_SNAT, FWD_TUNNEL, type ForwardMode } from './mode.js';

/** indexed by code */
export const MODES: readonly ForwardMode[] = [natMode, drMode, tunnelMode, fnatMode, snatMode];

MODES.forEach((m, i) => {
  if (m.code !== i) throw new Error(`forwarding mode ${m.name}: code ${m.code} at ${i}`);
});

/** the code of a mode's name (nat when unknown: the configuration is validated before) */
export function modeCode(name: string): number {
  const m = MODES.find((x) => x.name === name);
  return m ? m.code : 0;
}
