/** Conntrack.byState (kept on transitions) against a scan of the table, over a replay. */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import type { Engine } from '../../src/engine.js';
import { gauges } from '../../src/report/records.js';
import { replayFile, type ReplayOptions } from '../../src/replay.js';

/** replay `file`, comparing the kept counts with a scan every `every` packets and at the end; returns the comparisons of a non-empty table */
export async function checkByState(file: string, opts: ReplayOptions, every: number): Promise<number> {
  let engine: Engine | null = null;
  let n = 0;
  let compared = 0;
  const compare = (where: string): void => {
    const ct = engine!.ct;
    const scan = gauges(ct).by_state;
    assert.deepEqual(ct.openByState(), scan, `${path.basename(file)} ${where}`);
    if (Object.keys(scan).length > 0) compared++;
  };
  await replayFile(file, {
    ...opts,
    track: { ...opts.track!, drain: false }, // drained below, after the comparison at the end
    onEngine: (e) => (engine = e),
    onPacket: () => {
      if (++n % every === 0) compare(`after packet ${n}`);
    },
  }).catch((e: Error) => {
    // a broken capture: what was read before is still compared below
    if (!/ReplayError/.test(e.name)) throw e;
  });
  compare('at the end');
  if (opts.track?.drain) engine!.ct.drain();
  if (opts.track?.drain) assert.equal(engine!.ct.byState.reduce((a, b) => a + b, 0), 0, `${file}: open after draining`);
  return compared;
}

