/**
 * A fixed slice of `npm run fuzz` (test/fuzz/run.ts): the same targets and checks, in this process, for a
 * fixed number of inputs of a fixed seed, so the suite sees the same inputs every run. What it finds is
 * reported with the command that makes the input again. The inputs the fuzzer found once are kept below as
 * regressions, by (seed, target, index).
 */
import { strict as assert } from 'node:assert';
import { inputRng } from './mutate.js';
import { TARGET_NAMES, TARGETS } from './targets.js';

const SEED = 20261202;
/** inputs per target: about a minute in all on this machine */
const SLICE: Record<string, number> = { reader: 320_000, decode: 480_000, engine: 40_000, config: 4_800, ctl: 24_000, agents: 100_000 };

/** inputs the fuzzer once failed on (seed, target, index, what it found), fixed since */
const FOUND: Array<[number, string, number, string]> = [
  [1, 'engine', 3080, 'local ports given back to a pool that did not lend them, after a reload'],
  [1, 'engine', 5011, 'local ports given back twice (negative ports in use)'],
  [1, 'engine', 10532, 'LocalPool.give on an address a reload removed (a crash)'],
  [1, 'engine', 16774, 'UDP local ports given back to the wrong pool'],
];

async function runInput(target: string, seed: number, index: number): Promise<void> {
  const ti = TARGET_NAMES.indexOf(target);
  const { run } = made(target).make(inputRng(seed, ti, index));
  await run();
}

const cache = new Map<string, ReturnType<(typeof TARGETS)[string]>>();
function made(target: string) {
  let t = cache.get(target);
  if (!t) cache.set(target, (t = TARGETS[target]!()));
  return t;
}

describe('fuzz slice (npm run fuzz, fixed seed)', function () {
  this.timeout(300_000);

  for (const [seed, target, index, what] of FOUND) {
    it(`regression: ${target} input ${index} of seed ${seed} (${what})`, async function () {
      await runInput(target, seed, index);
    });
  }

  for (const target of TARGET_NAMES) {
    it(`${target}: ${SLICE[target]!.toLocaleString()} inputs of seed ${SEED} pass`, async function () {
      const failures: string[] = [];
      for (let i = 0; i < SLICE[target]!; i++) {
        try {
          await runInput(target, SEED, i);
        } catch (e) {
          if (failures.length < 5) failures.push(`input ${i}: ${(e as Error).message.split('\n')[0]} (again: npm run fuzz -- --seed ${SEED} --target ${target} --index ${i})`);
          else break;
        }
      }
      assert.deepEqual(failures, []);
    });
  }
});
