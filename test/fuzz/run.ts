/**
 * `npm run fuzz`: the targets of targets.ts in worker threads (one per core by default) for a time budget,
 * each worker taking every Nth input of each target in turn, by time share. A watchdog in the main thread
 * reads each worker's current input from shared memory: one that has not moved on for 10 s is a hang (the
 * worker is stopped and replaced). Failures and hangs are saved under fuzz-out/ with the command that makes
 * the input again. Exit status 1 when anything failed or hung.
 *
 *   npm run fuzz -- [--seed N] [--minutes M] [--workers W] [--targets a,b] [--out DIR]
 *   npm run fuzz -- --seed N --target NAME --index I      (one input again, in this thread, with its stack)
 */
import '../../src/runtime.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { inputRng } from './mutate.js';
import { TARGET_NAMES, TARGETS, type Target } from './targets.js';

/** share of the time each target gets (the engine's inputs are the slowest and reach the most code) */
const SHARE: Record<string, number> = { reader: 0.2, decode: 0.15, engine: 0.4, config: 0.1, ctl: 0.15 };
const HANG_MS = 10_000;
/** seconds of one round over the targets, split by SHARE */
const ROUND_S = 20;

interface Failure {
  target: string;
  index: number;
  kind: 'failure' | 'hang';
  message: string;
}

export async function runOne(t: Target, seed: number, ti: number, index: number): Promise<void> {
  const r = inputRng(seed, ti, index);
  const { run } = t.make(r);
  await run();
}

function reproCommand(seed: number, target: string, index: number): string {
  return `npm run fuzz -- --seed ${seed} --target ${target} --index ${index}`;
}

function saveInput(out: string, seed: number, f: Failure): string {
  const ti = TARGET_NAMES.indexOf(f.target);
  const { bytes, ext } = TARGETS[f.target]!().make(inputRng(seed, ti, f.index));
  fs.mkdirSync(out, { recursive: true });
  const base = path.join(out, `${f.target}-${seed}-${f.index}`);
  fs.writeFileSync(`${base}.${ext}`, bytes);
  fs.writeFileSync(`${base}.txt`, `${f.kind}: ${f.message}\nagain: ${reproCommand(seed, f.target, f.index)}\n`);
  return `${base}.${ext}`;
}

/* ---------------- worker ---------------- */

async function worker(): Promise<void> {
  const { seed, targets, stride, first, shared } = workerData as { seed: number; targets: string[]; stride: number; first: Record<string, number>; shared: SharedArrayBuffer };
  const cur = new Float64Array(shared); // [target index, input index, inputs done]
  const made = new Map<string, Target>();
  const next: Record<string, number> = { ...first };
  const counts: Record<string, number> = {};
  const slowest: Record<string, number> = {};
  const slowestAt: Record<string, number> = {};
  let lastReport = performance.now();
  for (;;) {
    for (const name of targets) {
      const ti = TARGET_NAMES.indexOf(name);
      let t = made.get(name);
      if (!t) made.set(name, (t = TARGETS[name]!()));
      const until = performance.now() + ROUND_S * 1000 * (SHARE[name] ?? 0.1);
      while (performance.now() < until) {
        const index = next[name]!;
        next[name] = index + stride;
        cur[0] = ti;
        cur[1] = index;
        const t0 = performance.now();
        try {
          await runOne(t, seed, ti, index);
        } catch (e) {
          const err = e as Error;
          parentPort!.postMessage({ type: 'failure', failure: { target: name, index, kind: 'failure', message: `${err?.name ?? 'Error'}: ${err?.message ?? String(e)}\n${(err?.stack ?? '').split('\n').slice(1, 8).join('\n')}` } });
        }
        const ms = performance.now() - t0;
        if (ms > (slowest[name] ?? 0)) {
          slowest[name] = ms;
          slowestAt[name] = index;
        }
        counts[name] = (counts[name] ?? 0) + 1;
        cur[2]!++;
        if (performance.now() - lastReport > 1000) {
          parentPort!.postMessage({ type: 'progress', counts, slowest, slowestAt, next });
          lastReport = performance.now();
        }
      }
    }
  }
}

/* ---------------- main ---------------- */

function args(argv: string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    o[a.slice(2)] = argv[i + 1] ?? '';
    i++;
  }
  return o;
}

async function main(): Promise<number> {
  const a = args(process.argv.slice(2));
  const seed = a.seed !== undefined ? Number(a.seed) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
  const out = path.resolve(a.out ?? 'fuzz-out');
  if (a.target !== undefined) {
    // one input again
    const t = TARGETS[a.target];
    if (!t) throw new Error(`--target: one of ${TARGET_NAMES.join(', ')}`);
    const index = Number(a.index ?? 0);
    const f: Failure = { target: a.target, index, kind: 'failure', message: '' };
    console.log(`input ${index} of ${a.target}, seed ${seed}: saved as ${saveInput(out, seed, f)}`);
    await runOne(t(), seed, TARGET_NAMES.indexOf(a.target), index);
    console.log('passed');
    return 0;
  }
  const minutes = Number(a.minutes ?? 20);
  const nWorkers = Number(a.workers ?? os.availableParallelism());
  const targets = (a.targets ?? TARGET_NAMES.join(',')).split(',');
  for (const t of targets) if (!TARGETS[t]) throw new Error(`--targets: unknown ${t} (${TARGET_NAMES.join(', ')})`);
  console.log(`fuzz: seed ${seed}, ${minutes} min, ${nWorkers} workers, targets ${targets.join(' ')} (again: npm run fuzz -- --seed ${seed} ...)`);
  const failures: Failure[] = [];
  const signatures = new Map<string, number>();
  const totals: Array<Record<string, number>> = [];
  const slow: Record<string, number> = {};
  const slowAt: Record<string, number> = {};
  let maxRss = 0;
  const end = Date.now() + minutes * 60_000;
  const slots: Array<{ w: Worker; cur: Float64Array; seen: number; at: number; next: Record<string, number> }> = [];
  const record = (f: Failure) => {
    const sig = `${f.target}|${f.kind}|${f.message.split('\n').slice(0, 2).join('|')}`;
    const n = (signatures.get(sig) ?? 0) + 1;
    signatures.set(sig, n);
    failures.push(f);
    if (n <= 3) {
      const file = saveInput(out, seed, f);
      console.log(`\n${f.kind.toUpperCase()} ${f.target} input ${f.index}: ${f.message.split('\n')[0]}\n  saved ${file}\n  again: ${reproCommand(seed, f.target, f.index)}`);
    }
  };
  const start = (k: number, first: Record<string, number>) => {
    const shared = new SharedArrayBuffer(24);
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: { seed, targets, stride: nWorkers, first, shared }, resourceLimits: { maxOldGenerationSizeMb: 768 } });
    const slot = { w, cur: new Float64Array(shared), seen: -1, at: Date.now(), next: first };
    totals[k] ??= {};
    const base = { ...totals[k] };
    w.on('message', (m: { type: string; failure?: Failure; counts?: Record<string, number>; slowest?: Record<string, number>; slowestAt?: Record<string, number>; next?: Record<string, number> }) => {
      if (m.type === 'failure') record(m.failure!);
      else {
        for (const [t, n] of Object.entries(m.counts!)) totals[k]![t] = (base[t] ?? 0) + n;
        for (const [t, ms] of Object.entries(m.slowest!)) {
          if (ms > (slow[t] ?? 0)) {
            slow[t] = ms;
            slowAt[t] = m.slowestAt![t]!;
          }
        }
        slot.next = m.next!;
      }
    });
    w.on('error', (e) => record({ target: targets[slot.cur[0]!] ?? '?', index: slot.cur[1]!, kind: 'failure', message: `worker died: ${e.message}` }));
    slots[k] = slot;
  };
  for (let k = 0; k < nWorkers; k++) start(k, Object.fromEntries(targets.map((t) => [t, k])));
  let lastPrint = Date.now();
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 500));
    maxRss = Math.max(maxRss, process.memoryUsage().rss);
    for (let k = 0; k < nWorkers; k++) {
      const s = slots[k]!;
      const key = s.cur[2]!;
      if (key !== s.seen) {
        s.seen = key;
        s.at = Date.now();
      } else if (Date.now() - s.at > HANG_MS) {
        const target = TARGET_NAMES[s.cur[0]!]!;
        const index = s.cur[1]!;
        record({ target, index, kind: 'hang', message: `no progress for ${HANG_MS / 1000} s` });
        await s.w.terminate();
        // a new worker goes on from where this one was, past the input that hung
        const first = { ...s.next, [target]: index + nWorkers };
        start(k, first);
      }
    }
    if (Date.now() - lastPrint > 30_000) {
      lastPrint = Date.now();
      const sum = sumTotals(totals);
      console.log(`  ${Math.round((minutes * 60_000 - (end - Date.now())) / 1000)} s: ${Object.values(sum).reduce((x, y) => x + y, 0).toLocaleString()} inputs (${Object.entries(sum).map(([t, n]) => `${t} ${n.toLocaleString()}`).join(', ')}), ${failures.length} failures, RSS ${(maxRss / 1048576).toFixed(0)} MiB`);
    }
  }
  for (const s of slots) await s.w.terminate();
  const sum = sumTotals(totals);
  const all = Object.values(sum).reduce((x, y) => x + y, 0);
  console.log(`\nfuzz done: seed ${seed}, ${minutes} min, ${nWorkers} workers: ${all.toLocaleString()} inputs`);
  for (const t of targets) console.log(`  ${t.padEnd(7)} ${(sum[t] ?? 0).toLocaleString().padStart(12)} inputs, slowest ${(slow[t] ?? 0).toFixed(1)} ms (input ${slowAt[t] ?? '-'})`);
  const hangs = failures.filter((f) => f.kind === 'hang').length;
  console.log(`  failures ${failures.length - hangs} (${[...signatures.keys()].filter((s) => s.includes('|failure|')).length} distinct), hangs ${hangs}, peak RSS ${(maxRss / 1048576).toFixed(0)} MiB`);
  return failures.length ? 1 : 0;
}

function sumTotals(totals: Array<Record<string, number>>): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const t of totals) for (const [k, n] of Object.entries(t ?? {})) sum[k] = (sum[k] ?? 0) + n;
  return sum;
}

if (isMainThread) {
  main().then(
    (rc) => process.exit(rc),
    (e: unknown) => {
      console.error(`fuzz: ${(e as Error).stack ?? String(e)}`);
      process.exit(2);
    },
  );
} else void worker();
