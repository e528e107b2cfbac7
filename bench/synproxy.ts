/**
 * Synproxy figures (issue 5): a spoofed SYN flood of 1M SYNs (each from another source address and port,
 * with the options a Linux client sends: MSS, SACK-permitted, timestamps, window scale) replayed through the
 * full path (read + decode + conntrack miss + cookie + SYN-ACK built in place + pcap write to /dev/null)
 * to a synproxy service; and the cookie alone (make + check) per second.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PcapWriter } from '../src/capture/writer.js';
import { wr16, wr32 } from '../src/packet/bytes.js';
import { ethIpv4 } from './gen.js';
import { setIpv4HeaderChecksum } from '../src/packet/checksum.js';
import { parseConfig } from '../src/config.js';
import { replayFile } from '../src/replay.js';
import { Services } from '../src/service/services.js';
import { CookieOpts, Cookies, cookieData } from '../src/synproxy/cookie.js';
import { replaySecret } from '../src/synproxy/synproxy.js';

/** 1M spoofed SYNs to 192.168.1.1:80 with Linux's SYN options (MSS 1460, SACK-permitted, TS, WS 7) */
export function generateFlood(out: string, n: number): void {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const w = new PcapWriter(out, 1, 6);
  const f = ethIpv4(6, 40, 0);
  wr32(f, 30, 0xc0a80101);
  wr16(f, 36, 80);
  f[46] = 0xa0;
  f[47] = 0x02;
  wr16(f, 48, 64240);
  f.set([2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 7], 54);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    wr32(f, 26, (0x0b000000 | (x >>> 8)) >>> 0); // spoofed 11.x.y.z
    wr16(f, 34, 1024 + (x & 0x7fff));
    wr32(f, 38, Math.imul(x, 2654435761) >>> 0);
    wr32(f, 60, i); // TSval
    setIpv4HeaderChecksum(f, 14, 20);
    const t = 1700000000 * 1e6 + i;
    w.write(Math.floor(t / 1e6), t % 1e6, f, 0, f.length);
  }
  w.close();
}

export async function floodThroughSynproxy(file: string): Promise<{ packets: number; seconds: number; synacks: number; conns: number; openAtEnd: number; emitted: number }> {
  const cfg = parseConfig(
    { services: [{ proto: 'tcp', vip: '192.168.1.1', port: 80, scheduler: 'rr', forward: 'fnat', laddrs: ['10.201.9.1'], synproxy: true, servers: [{ addr: '10.201.1.1', port: 8080 }] }] },
    'bench',
  );
  // the configuration is read once per tsvs run, before the first packet: not part of the packet path
  const services = new Services(cfg.services);
  const t0 = performance.now();
  const s = await replayFile(file, {
    track: { profile: 'dpvs', seed: 1, maxConns: 1 << 20 },
    lb: { services, out: os.devNull, synproxy: { cfg: cfg.synproxy, secret: replaySecret(undefined, 1) } },
  });
  return { packets: s.packets, seconds: (performance.now() - t0) / 1000, synacks: s.lb!.synproxy!.SYNPROXY_SYN_CNT!, conns: s.conns!.total, openAtEnd: s.conns!.open_at_end, emitted: s.lb!.emitted };
}

/** cookies made and checked per second (IPv4 tuple) */
export function cookieRate(n: number): { make: number; check: number } {
  const c = new Cookies(replaySecret(undefined, 1));
  const src = new Uint32Array(4);
  const dst = Uint32Array.of(0xc0a80101, 0, 0, 0);
  const o = new CookieOpts();
  const data = cookieData(3, 7, true, true);
  let sink = 0;
  let t0 = performance.now();
  for (let i = 0; i < n; i++) {
    src[0] = i;
    sink ^= c.make(false, src, dst, 1024 + (i & 0x7fff), 80, i, 28_333_333, data);
  }
  const make = n / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  for (let i = 0; i < n; i++) {
    src[0] = i;
    sink ^= c.check(false, src, dst, 1024 + (i & 0x7fff), 80, i, sink, 28_333_333, o);
  }
  const check = n / ((performance.now() - t0) / 1000);
  if (sink === 0.5) console.log(sink);
  return { make, check };
}
