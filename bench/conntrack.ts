/**
 * Connection-tracking figures (issue 3):
 * - established path: read + decode + track over a generated capture of 1M packets on 10k connections;
 * - new connections/s: a generated capture of 1M SYNs, every one a new connection;
 * - bytes of memory per tracked connection at 1M and 10M connections: RSS growth while N connections are
 *   created through the real path (decode + track of generated SYNs, in memory).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCapture } from '../src/capture/reader.js';
import { PcapWriter } from '../src/capture/writer.js';
import { PacketRecord } from '../src/capture/record.js';
import type { Conntrack } from '../src/conntrack/conntrack.js';
import { Engine } from '../src/engine.js';
import { wr16, wr32 } from '../src/packet/bytes.js';
import { ethIpv4 } from './gen.js';
import { setIpv4HeaderChecksum } from '../src/packet/checksum.js';

/** an Ethernet/IPv4/TCP SYN template */
export function synFrame(): Uint8Array {
  const f = ethIpv4(6, 20, 0);
  f[14 + 20 + 12] = 0x50;
  f[14 + 20 + 13] = 0x02;
  wr16(f, 14 + 20 + 14, 65535);
  return f;
}

/** the n-th SYN: a distinct (source address, source port) per n */
export function setSyn(f: Uint8Array, n: number): void {
  wr32(f, 26, (0x0a000000 + Math.floor(n / 50000)) >>> 0);
  wr32(f, 30, 0xc0a80101);
  wr16(f, 34, 1024 + (n % 50000));
  wr16(f, 36, 80);
  wr32(f, 38, n);
  setIpv4HeaderChecksum(f, 14, 20);
}

export function generateSyns(out: string, n: number): void {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const w = new PcapWriter(out, 1, 6);
  const f = synFrame();
  for (let i = 0; i < n; i++) {
    setSyn(f, i);
    const t = 1700000000 * 1e6 + i;
    w.write(Math.floor(t / 1e6), t % 1e6, f, 0, f.length);
  }
  w.close();
}

/** read + the engine's tracking path (decode, count, time, track), as `tsvs replay` without services */
export async function trackCapture(file: string, maxConns: number): Promise<{ packets: number; seconds: number; tracker: Conntrack }> {
  const engine = new Engine({ conntrack: { profile: 'netfilter', maxConns, seed: 1 } });
  let n = 0;
  const t0 = performance.now();
  await readCapture(file, (r) => {
    engine.frame(r);
    n++;
  });
  return { packets: n, seconds: (performance.now() - t0) / 1000, tracker: engine.ct };
}

/** insertions counted as the JIT's warm-up in bytesPerConn's pause figures */
export const WARMUP = 65536;

/** RSS growth per connection while `n` connections are created through decode + track (in memory). */
export function bytesPerConn(n: number): { bytes: number; seconds: number; tracked: number; maxPauseMs: number; warmupMaxMs: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().rss;
  const engine = new Engine({ conntrack: { profile: 'netfilter', maxConns: n, seed: 1 } });
  const tracker = engine.ct;
  const f = synFrame();
  const r = new PacketRecord();
  Object.assign(r, { buf: f, off: 0, caplen: f.length, wirelen: f.length, linktype: 1, tsSec: 1700000000, tsFrac: 0, digits: 6 });
  const t0 = performance.now();
  let maxPauseMs = 0;
  let warmupMaxMs = 0;
  let last = t0;
  for (let i = 0; i < n; i++) {
    setSyn(f, i);
    if (i % 1024 === 0) {
      // the longest stretch of 1024 insertions: a table resize or GC pause would show here
      const now = performance.now();
      // the first insertions run while the JIT compiles the path: reported apart. With the inlining budget
      // of src/runtime.ts the path is compiled in bigger pieces and the compiler's pauses last until ~26k
      // insertions (the longest windows, measured: 13.5 ms at 18k, 9.0 at 17k, 8.5 at 23k, then at most
      // ~5 ms), so the first 64k are the warm-up
      if (i <= WARMUP) warmupMaxMs = Math.max(warmupMaxMs, now - last);
      else if (now - last > maxPauseMs) maxPauseMs = now - last;
      last = now;
      r.tsFrac = i % 1000000;
    }
    engine.frame(r);
  }
  const seconds = (performance.now() - t0) / 1000;
  gc?.();
  const after = process.memoryUsage().rss;
  return { bytes: (after - before) / tracker.table.count, seconds, tracked: tracker.table.count, maxPauseMs, warmupMaxMs };
}
