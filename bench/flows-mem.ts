/**
 * `node --expose-gc dist/bench/flows-mem.js N`: bytes of memory per flow, in a fresh process: RSS growth from
 * before the flow table is made (default size, 1M flows) until N flows with distinct (source, destination)
 * pairs are in it, each having had a packet and every 16th a drop. Prints one JSON line.
 */
import '../src/runtime.js';
import { Flows } from '../src/flows/flows.js';

const n = Number(process.argv[2] ?? 1_000_000);
const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const rss0 = process.memoryUsage().rss;
const flows = new Flows({ idle: 3600, max: 1 << 20, perSource: 100 });
const src = new Uint32Array(4);
const dst = new Uint32Array(4);
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  // 1 source in 16 talks to 16 destinations (the per-source lists are used)
  src[0] = 0x0a000000 + (i >>> 4);
  dst[0] = 0xc0a80000 + (i & 15) * 65536 + (i >>> 12);
  const f = flows.packet(src, dst, false, 1500, 1e12 + i);
  if ((i & 15) === 0) flows.drop(f, 'no_dest', 60);
}
const seconds = (performance.now() - t0) / 1000;
gc?.();
const rss1 = process.memoryUsage().rss;
process.stdout.write(`${JSON.stringify({ n, flows: flows.count, bytes: (rss1 - rss0) / flows.count, seconds })}\n`);
