/**
 * `npm run bench`: throughput and memory figures, printed with the command that reproduces them.
 * Each figure is the best of several runs over a capture in the page cache, single thread.
 */
import '../src/runtime.js'; // first: the V8 settings tsvs runs with
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCapture } from '../src/capture/reader.js';
import { decode } from '../src/packet/decode.js';
import { PacketView } from '../src/packet/view.js';
import { DecodeStats } from '../src/stats/decode-stats.js';
import { generate } from './gen.js';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { generateSyns, trackCapture, WARMUP } from './conntrack.js';
import { lbPath } from './lb.js';
import { cookieRate, floodThroughSynproxy, generateFlood } from './synproxy.js';
import { V8_FLAGS, v8Tuned } from '../src/runtime.js';

/** the generated captures: bench/data/ of the repository, wherever the bench is started from (dist/bench/ and dist/bundle/ are both two levels down) */
const DATA = fileURLToPath(new URL('../../bench/data', import.meta.url));
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
/**
 * runs of the full LB and synproxy paths before the timed ones: the JIT is still compiling the path through
 * the second (measured on the LB path, per process: 1.5-2.0, then 2.2-2.5, then 2.7-3.6 M packets/s)
 */
const WARM_FULL = 2;

function ensure(name: string, packets: number, flows: number, perFlow = 0, v6 = 0.1): string {
  const p = path.join(DATA, name);
  if (!fs.existsSync(p)) {
    const t0 = performance.now();
    generate(p, { packets, flows, perFlow, v6 });
    console.log(`  generated ${p}: ${packets.toLocaleString()} packets, ${flows.toLocaleString()} flows (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  return p;
}

function mib(x: number): string {
  return `${(x / 1048576).toFixed(0)} MiB`;
}

/** Time `fns` alternately (so both see the same machine state), best rate of each. */
async function interleaved(labels: string[], fns: Array<() => Promise<number>>): Promise<number[]> {
  const bestRates = fns.map(() => 0);
  for (const fn of fns) await fn(); // warm-up
  for (let i = 0; i < RUNS; i++) {
    for (let k = 0; k < fns.length; k++) {
      const t0 = performance.now();
      const n = await fns[k]!();
      bestRates[k] = Math.max(bestRates[k]!, n / ((performance.now() - t0) / 1000));
    }
  }
  labels.forEach((l, k) => console.log(`  ${l.padEnd(44)} ${(bestRates[k]! / 1e6).toFixed(2).padStart(7)} M packets/s`));
  return bestRates;
}

export async function decodeBench(): Promise<void> {
  console.log('\n## decode (issue 2)');
  const f = ensure('decode-1m.pcap', 1_000_000, 10_000);
  console.log(`  file: ${f} (${mib(fs.statSync(f).size)})`);
  const view = new PacketView();
  const stats = new DecodeStats();
  const [bare, dec] = await interleaved(
    ['bare read loop (readCapture, no-op callback)', 'read + decode + count'],
    [
      async () => {
        let n = 0;
        await readCapture(f, () => void n++);
        return n;
      },
      async () => {
        let n = 0;
        await readCapture(f, (r) => {
          decode(r.buf, r.off, r.caplen, r.wirelen, r.linktype, view);
          stats.add(view);
          n++;
        });
        return n;
      },
    ],
  );
  console.log(`  decode / bare read: ${((dec! / bare!) * 100).toFixed(0)}%   (target >= 50%)`);
}

export async function conntrackBench(): Promise<void> {
  console.log('\n## connection tracking (issue 3), netfilter profile');
  // BENCH_ONLY=established|new|memory: one of the three (A/B runs of one figure)
  const only = process.env.BENCH_ONLY;
  const f = ensure('decode-1m.pcap', 1_000_000, 10_000);
  let best = 0;
  for (let i = 0; i < (only && only !== 'established' ? 0 : RUNS + 1); i++) {
    const r = await trackCapture(f, 1 << 16);
    if (i === 0) console.log(`  ${f}: ${r.tracker.created.toLocaleString()} connections tracked`);
    else best = Math.max(best, r.packets / r.seconds);
  }
  if (!only || only === 'established') console.log(`  ${'established path: read + decode + track'.padEnd(44)} ${(best / 1e6).toFixed(2).padStart(7)} M packets/s   (target >= 3)`);
  const syns = path.join(DATA, 'syn-1m.pcap');
  if (!fs.existsSync(syns)) generateSyns(syns, 1_000_000);
  let bestNew = 0;
  for (let i = 0; i < (only && only !== 'new' ? 0 : RUNS + 1); i++) {
    const r = await trackCapture(syns, 1 << 20); // the default --max-conns
    if (i === 0) console.log(`  ${syns}: ${r.tracker.created.toLocaleString()} connections created`);
    else bestNew = Math.max(bestNew, r.tracker.created / r.seconds);
  }
  if (!only || only === 'new') console.log(`  ${'new connections: read + decode + track'.padEnd(44)} ${(bestNew / 1e6).toFixed(2).padStart(7)} M conns/s     (target >= 1.5)`);
  for (const n of only && only !== 'memory' ? [] : [1_000_000, 10_000_000]) {
    const out = execFileSync(process.execPath, ['--expose-gc', path.join(path.dirname(fileURLToPath(import.meta.url)), 'mem.js'), String(n)], { encoding: 'utf8' });
    const m = JSON.parse(out) as { bytes: number; seconds: number; tracked: number; maxPauseMs: number; warmupMaxMs: number };
    console.log(`  memory at ${(n / 1e6).toFixed(0).padStart(2)}M connections: ${m.bytes.toFixed(0)} bytes/connection (RSS growth in a fresh process / ${m.tracked.toLocaleString()} tracked)   (target <= 128)`);
    console.log(
      `  longest stall while they were created: ${m.maxPauseMs.toFixed(1)} ms per 1024 insertions after the first ${WARMUP / 1024}k (${m.warmupMaxMs.toFixed(1)} ms while the JIT warms up)   (target: no pause over 10 ms)`,
    );
  }
}

/** WARM_FULL warm-up runs, then RUNS timed ones: the best rate of those, and the last run's result */
async function bestAfterWarmup<R>(run: () => Promise<R>, rate: (r: R) => number): Promise<{ best: number; last: R }> {
  let best = 0;
  let last = await run();
  for (let i = 1; i < RUNS + WARM_FULL; i++) {
    last = await run();
    if (i >= WARM_FULL) best = Math.max(best, rate(last));
  }
  return { best, last };
}

export async function lbBench(): Promise<void> {
  console.log('\n## load balancer full path (issue 4): read + decode + conntrack + wrr + FNAT rewrite + pcap write');
  const f = ensure('lb-1m-v4.pcap', 1_000_000, 10_000, 0, 0);
  const { best, last } = await bestAfterWarmup(() => lbPath(f), (r) => r.packets / r.seconds);
  console.log(`  ${f}: ${last.packets.toLocaleString()} packets, ${last.conns.toLocaleString()} connections, ${last.emitted.toLocaleString()} emitted`);
  console.log(`  ${'full path'.padEnd(44)} ${(best / 1e6).toFixed(2).padStart(7)} M packets/s   (target >= 3)`);
}

export async function synproxyBench(): Promise<void> {
  console.log('\n## synproxy (issue 5): spoofed SYN flood, read + decode + conntrack + cookie + SYN-ACK in place + pcap write');
  const f = path.join(DATA, 'synflood-1m.pcap');
  if (!fs.existsSync(f)) generateFlood(f, 1_000_000);
  const { best, last } = await bestAfterWarmup(() => floodThroughSynproxy(f), (r) => r.synacks / r.seconds);
  console.log(`  ${f}: ${last.packets.toLocaleString()} SYNs, ${last.synacks.toLocaleString()} SYN-ACKs emitted, connections created: ${last.conns}, open at the end: ${last.openAtEnd}`);
  console.log(`  ${'SYN-ACKs generated (full path)'.padEnd(44)} ${(best / 1e6).toFixed(2).padStart(7)} M SYN-ACKs/s   (target >= 1.5)`);
  let bm = 0;
  let bc = 0;
  for (let i = 0; i < RUNS + 1; i++) {
    const r = cookieRate(2_000_000);
    if (i > 0) {
      bm = Math.max(bm, r.make);
      bc = Math.max(bc, r.check);
    }
  }
  console.log(`  ${'SYN cookie alone (one SipHash-2-4): make'.padEnd(44)} ${(bm / 1e6).toFixed(2).padStart(7)} M/s   check ${(bc / 1e6).toFixed(2)} M/s`);
}

/** flow accounting (issue 16): memory per flow at 1M, and the LB path with flows on vs off (fresh processes, alternating, medians) */
export async function flowsBench(): Promise<void> {
  console.log('\n## flow accounting (issue 16)');
  const here = path.dirname(fileURLToPath(import.meta.url));
  const m = JSON.parse(execFileSync(process.execPath, ['--expose-gc', path.join(here, 'flows-mem.js'), '1000000'], { encoding: 'utf8' })) as { flows: number; bytes: number; seconds: number };
  console.log(`  memory at 1M flows: ${m.bytes.toFixed(0)} bytes/flow (RSS growth in a fresh process / ${m.flows.toLocaleString()} flows; ${(m.flows / m.seconds / 1e6).toFixed(2)} M new flows/s)`);
  const rounds = Number(process.env.BENCH_AB_ROUNDS ?? 5);
  const vals: Record<string, number[]> = { off: [], on: [] };
  for (let i = 0; i < rounds; i++) {
    for (const k of i % 2 === 0 ? ['off', 'on'] : ['on', 'off']) {
      const out = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), 'lb'], { encoding: 'utf8', env: { ...process.env, BENCH_FLOWS: k === 'on' ? '1' : '0' } });
      vals[k]!.push(Number(/full path +([\d.]+)/.exec(out)![1]));
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  console.log(`  LB full path, flows off: ${vals.off!.join(' ')}  median ${med(vals.off!).toFixed(2)} M packets/s`);
  console.log(`  LB full path, flows on:  ${vals.on!.join(' ')}  median ${med(vals.on!).toFixed(2)} M packets/s`);
  console.log(`  flows on / off: ${((med(vals.on!) / med(vals.off!)) * 100).toFixed(1)}%   (target >= 90%; ${rounds} alternating fresh processes each)`);
}

/**
 * The replay report (issue 22) over 5M packets (the LB path, 20k clients whose connections open and close
 * every 50 packets): one whole replay per fresh process, with and without --report, alternating (medians);
 * the page's size, and the time Chromium takes to open and draw it (when Debian's chromium is there).
 */
export async function reportBench(): Promise<void> {
  console.log('\n## replay report (issue 22)');
  const f = ensure('lb-5m-v4.pcap', 5_000_000, 20_000, 50, 0);
  if (process.env.BENCH_REPORT_CHILD) {
    const r = await lbPath(f);
    console.log(`child ${r.seconds} ${r.packets} ${r.conns}`);
    return;
  }
  const out = path.join(DATA, 'report-5m.html');
  const rounds = Number(process.env.BENCH_AB_ROUNDS ?? 5);
  const vals: Record<string, number[]> = { off: [], on: [] };
  let conns = 0;
  for (let i = 0; i < rounds; i++) {
    for (const k of i % 2 === 0 ? ['off', 'on'] : ['on', 'off']) {
      const env = { ...process.env, BENCH_REPORT_CHILD: '1', BENCH_REPORT: k === 'on' ? out : '' };
      const o = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), 'report'], { encoding: 'utf8', env });
      const m = /child ([\d.]+) (\d+) (\d+)/.exec(o)!;
      vals[k]!.push(Number(m[1]));
      conns = Number(m[3]);
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  const fmt = (a: number[]) => a.map((x) => x.toFixed(2)).join(' ');
  console.log(`  ${f}: 5,000,000 packets, ${conns.toLocaleString()} connections`);
  console.log(`  whole replay (LB path, FNAT, output pcap), without --report: ${fmt(vals.off!)} s, median ${med(vals.off!).toFixed(2)} s`);
  console.log(`  whole replay with --report (sampling, top connections, page written): ${fmt(vals.on!)} s, median ${med(vals.on!).toFixed(2)} s`);
  console.log(`  report cost: ${((med(vals.on!) / med(vals.off!) - 1) * 100).toFixed(1)}% of replay time   (target <= 5%; ${rounds} alternating fresh processes each)`);
  console.log(`  report size: ${(fs.statSync(out).size / 1e6).toFixed(2)} MB   (target < 5 MB)`);
  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
  if (!chromium) {
    console.log('  opening it: no chromium here (apt-get install chromium)');
    return;
  }
  const { default: puppeteer } = await import('puppeteer-core');
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const b = await puppeteer.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    const page = await b.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const t0 = performance.now();
    await page.goto(`file://${out}`);
    await page.waitForFunction('window.__tsvsReady === true');
    times.push(performance.now() - t0);
    await b.close();
  }
  console.log(`  opened and drawn in Chromium (navigation to the page's script done), 5 fresh browsers: ${fmt(times.map((x) => x / 1000))} s, median ${(med(times) / 1000).toFixed(2)} s   (target < 2 s)`);
}

const PARTS: Record<string, () => Promise<void>> = { decode: decodeBench, conntrack: conntrackBench, lb: lbBench, synproxy: synproxyBench, flows: flowsBench, report: reportBench };

async function main(): Promise<void> {
  const only = process.argv[2];
  if (only === undefined) {
    console.log(`tsvs bench — node ${process.version}, ${RUNS} timed runs each after warm-up, best shown. Command: npm run bench [part]`);
    console.log(`V8 settings (src/runtime.ts, as tsvs runs): ${v8Tuned ? V8_FLAGS.join(' ') : 'V8 defaults (TSVS_V8_DEFAULTS=1)'}`);
    // each part in a process of its own, as each tsvs run is: code shared by the parts (reader, decoder,
    // tracker) would otherwise be optimized for all their workloads at once, and run slower than in any one
    for (const part of Object.keys(PARTS)) {
      execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), part], { stdio: 'inherit' });
    }
    return;
  }
  const run = PARTS[only];
  if (!run) throw new Error(`unknown part "${only}" (${Object.keys(PARTS).join(', ')})`);
  await run();
  console.log(`  peak RSS of this part: ${mib(process.resourceUsage().maxRSS * 1024)}   (command: npm run bench -- ${only})`);
}

await main();
