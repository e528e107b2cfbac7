/**
 * `npm run bench`: throughput and memory figures, printed with the command that reproduces them.
 * Each figure is the best of several runs over a capture in the page cache, single thread.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCapture } from '../src/capture/reader.js';
import { decode } from '../src/packet/decode.js';
import { PacketView } from '../src/packet/view.js';
import { DecodeStats } from '../src/stats/decode-stats.js';
import { generate } from './gen.js';

const DATA = path.resolve('bench/data');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

function ensure(name: string, packets: number, flows: number, perFlow = 0): string {
  const p = path.join(DATA, name);
  if (!fs.existsSync(p)) {
    const t0 = performance.now();
    generate(p, { packets, flows, perFlow });
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

async function main(): Promise<void> {
  console.log(`tsvs bench — node ${process.version}, ${RUNS} runs each, best shown. Command: npm run bench`);
  const only = process.argv[2];
  if (!only || only === 'decode') await decodeBench();
  console.log(`\npeak RSS: ${mib(process.resourceUsage().maxRSS * 1024)}`);
}

await main();
