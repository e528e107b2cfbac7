/**
 * What the fuzzer feeds and what it checks. Each target makes input `index` from its generator (a pure
 * function of the run seed and the index), runs it, and throws a FuzzFailure when the program under test
 * did something it must never do: throw anything but its own user-facing error, write outside a buffer,
 * leave a resource behind after every connection expired, answer a control request with anything but one
 * JSON line. The targets:
 *  - reader: mutated pcap/pcapng files through the streaming reader (small windows, so units straddle them)
 *  - decode: mutated frames under every link type; a reused view must read like a fresh one
 *  - engine: sequences of mutated packets through the whole load balancer (every forwarding mode, synproxy,
 *    persistence, both profiles, reloads and flushes mid-run, a transmit queue that fills), then drained:
 *    no connection, port, template, held frame or timer may be left
 *  - config: configuration documents with a value anywhere replaced, as YAML or JSON text, sometimes cut
 *  - ctl: control requests with a value anywhere replaced, against a daemon-like target with connections
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { readCapture } from '../../src/capture/reader.js';
import { CaptureError, PacketRecord, RecordHandlerError } from '../../src/capture/record.js';
import { checkTimeouts, ConfigError, parseConfig, parseConfigText, type Config } from '../../src/config.js';
import { deleteConns, EventFeed, pageConns } from '../../src/report/records.js';
import { flowPage, recentFlows } from '../../src/report/flows.js';
import { lbSummaryOf } from '../../src/report/summary.js';
import { CtlServer, type CtlTarget } from '../../src/ctl/server.js';
import { Engine, type Sink } from '../../src/engine.js';
import { decode } from '../../src/packet/decode.js';
import { PacketView } from '../../src/packet/view.js';
import { Services } from '../../src/service/services.js';
import { replaySecret } from '../../src/synproxy/synproxy.js';
import type { Rng } from '../../src/timer/rng.js';
import { concat, eth, icmp, ipv4, ipv6, ngEpb, ngIdb, ngShb, pcapFile, tcp, udp } from '../helpers/packets.js';
import { viewSnap } from '../helpers/view-snap.js';
import { mutateBytes, mutateDoc, pick } from './mutate.js';
import { AgentLink, AgentRegistry, encodeHeartbeat } from '../../src/agents/heartbeat.js';
import { encodeControl, openControl, T_CTL_UP } from '../../src/agents/control.js';
import { Kcp } from '../../src/agents/kcp.js';
import { ReplayWindow } from '../../src/agents/window.js';
import { LatencyModel } from '../../src/lb/region-driver.js';
import { Dispatcher } from '../../src/workers/dispatch.js';
import { slotTable } from '../../src/workers/layout.js';

export class FuzzFailure extends Error {
  override name = 'FuzzFailure';
}

export interface Target {
  name: string;
  /** input `r` makes, as bytes to save for a failure (and its file extension) */
  make(r: Rng): { bytes: Uint8Array; ext: string; run: () => void | Promise<void> };
}

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', '..');

/* ---------------- the traffic the inputs are made of ---------------- */

const VIP = '10.9.0.1';
const VIP6 = '2001:db8::9';
const enc = (s: string) => new TextEncoder().encode(s);
const OPTS = Uint8Array.from([2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]);

interface PoolPacket {
  frame: Uint8Array;
  /** an ACK to the VIP that the harness points at the cookie it saw for the client (synproxy step 2) */
  cookieAck?: boolean;
  /** from a server to a local address: the harness points it at a local port the LB used (FNAT, SNAT replies) */
  toLocal?: boolean;
}

function pool(): PoolPacket[] {
  const out: PoolPacket[] = [];
  const v4 = (src: string, dst: string, l4: Uint8Array, proto: number, o: Partial<Parameters<typeof ipv4>[0]> = {}) => eth(0x0800, ipv4({ proto, src, dst, ...o }, l4));
  const v6 = (src: string, dst: string, l4: Uint8Array, nh: number, ext?: Parameters<typeof ipv6>[0]['ext']) => eth(0x86dd, ipv6({ nh, src, dst, ext }, l4));
  for (const [c, cport] of [['192.0.2.1', 40000], ['192.0.2.2', 40001], ['198.51.100.7', 5555]] as Array<[string, number]>) {
    const t = (src: string, dst: string, sport: number, dport: number, flags: number, o: { seq?: number; ack?: number; data?: string; options?: Uint8Array } = {}) =>
      v4(src, dst, tcp({ src, dst, sport, dport, flags, seq: o.seq ?? 1000, ack: o.ack ?? 0, options: o.options }, enc(o.data ?? '')), 6);
    out.push({ frame: t(c, VIP, cport, 80, 0x02, { options: OPTS }) });
    out.push({ frame: t(c, VIP, cport, 80, 0x10, { seq: 1001, ack: 1 }), cookieAck: true });
    out.push({ frame: t(c, VIP, cport, 80, 0x18, { seq: 1001, ack: 1, data: 'GET / HTTP/1.0\r\n\r\n' }), cookieAck: true });
    out.push({ frame: t(VIP, c, 80, cport, 0x12, { seq: 5000, ack: 1001, options: OPTS }) });
    out.push({ frame: t('10.0.0.1', c, 8080, cport, 0x12, { seq: 5000, ack: 1001, options: OPTS }) });
    out.push({ frame: t('10.0.0.1', c, 8080, cport, 0x18, { seq: 5001, ack: 1019, data: 'HTTP/1.0 200 OK\r\n\r\nhi' }) });
    out.push({ frame: t('10.0.0.2', '10.0.1.1', 8080, 1025, 0x12, { seq: 5000, ack: 1001 }), toLocal: true });
    out.push({ frame: t('10.0.0.1', '10.0.1.1', 8080, 1025, 0x18, { seq: 5001, ack: 1019, data: 'ok' }), toLocal: true });
    out.push({ frame: t(c, VIP, cport, 80, 0x11, { seq: 1019, ack: 5020 }) });
    out.push({ frame: t('10.0.0.1', c, 8080, cport, 0x11, { seq: 5020, ack: 1020 }) });
    out.push({ frame: t(c, VIP, cport, 80, 0x04, { seq: 1020 }) });
    const q = udp({ src: c, dst: VIP, sport: cport, dport: 53 }, enc('query'));
    out.push({ frame: v4(c, VIP, q, 17) });
    out.push({ frame: v4('10.0.0.2', c, udp({ src: '10.0.0.2', dst: c, sport: 5353, dport: cport }, enc('answer')), 17) });
    out.push({ frame: v4('10.0.0.3', '10.0.1.1', udp({ src: '10.0.0.3', dst: '10.0.1.1', sport: 5353, dport: 1025 }, enc('answer')), 17), toLocal: true });
    // ICMP errors quoting each side, echo, fragments
    const quoted = ipv4({ proto: 17, src: '10.0.1.1', dst: '10.0.0.3' }, udp({ src: '10.0.1.1', dst: '10.0.0.3', sport: 1025, dport: 5353 }, enc('query'))).subarray(0, 28);
    out.push({ frame: v4('10.0.0.3', '10.0.1.1', icmp({ type: 3, code: 3 }, quoted), 1), toLocal: true });
    out.push({ frame: v4(c, VIP, icmp({ type: 3, code: 4, rest: 1400 }, ipv4({ proto: 6, src: VIP, dst: c }, tcp({ src: VIP, dst: c, sport: 80, dport: cport, flags: 0x10, seq: 5001 })).subarray(0, 28)), 1) });
    out.push({ frame: v4(c, VIP, icmp({ type: 8, rest: 0x12340001 }, enc('ping')), 1) });
    out.push({ frame: v4(c, VIP, udp({ src: c, dst: VIP, sport: cport, dport: 53, len: 600 }, new Uint8Array(64)), 17, { mf: true, id: 7 }) });
    out.push({ frame: v4(c, VIP, new Uint8Array(64), 17, { fragOffset: 72, id: 7 }) });
    out.push({ frame: v4(c, VIP, tcp({ src: c, dst: VIP, sport: cport, dport: 80, flags: 0x10, seq: 1001, ack: 1 }, new Uint8Array(1600)), 6, { df: true, ttl: 1 }) });
  }
  // SNAT: an inside host to the outside, and the answer to a SNAT address
  out.push({ frame: eth(0x0800, ipv4({ proto: 6, src: '192.168.1.5', dst: '203.0.113.9' }, tcp({ src: '192.168.1.5', dst: '203.0.113.9', sport: 33000, dport: 443, flags: 0x02 }))) });
  out.push({ frame: eth(0x0800, ipv4({ proto: 6, src: '203.0.113.9', dst: '10.0.2.1' }, tcp({ src: '203.0.113.9', dst: '10.0.2.1', sport: 443, dport: 1025, flags: 0x12, ack: 1001 }))), toLocal: true });
  // IPv6, with extension headers
  const c6 = '2001:db8:1::1';
  const t6 = (src: string, dst: string, sport: number, dport: number, flags: number, data = '') => tcp({ v6: true, src, dst, sport, dport, flags, seq: 7, ack: flags & 0x10 ? 9 : 0 }, enc(data));
  out.push({ frame: v6(c6, VIP6, t6(c6, VIP6, 41000, 80, 0x02), 6) });
  out.push({ frame: v6(c6, VIP6, t6(c6, VIP6, 41000, 80, 0x10), 6), cookieAck: true });
  out.push({ frame: v6('2001:db8::10', c6, t6('2001:db8::10', c6, 8080, 41000, 0x12), 6) });
  out.push({ frame: v6(c6, VIP6, t6(c6, VIP6, 41000, 80, 0x18, 'data'), 6, [{ type: 60, body: new Uint8Array(6) }]) });
  out.push({ frame: v6(c6, VIP6, udp({ v6: true, src: c6, dst: VIP6, sport: 41001, dport: 53 }, enc('q6')), 17) });
  out.push({ frame: v6('2001:db8::10', c6, icmp({ v6: true, type: 1, code: 4 }, ipv6({ nh: 17, src: c6, dst: '2001:db8::10' }, udp({ v6: true, src: c6, dst: '2001:db8::10', sport: 41001, dport: 5353 })).subarray(0, 48)), 58) });
  out.push({ frame: eth(0x0800, ipv4({ proto: 6, src: '192.0.2.1', dst: VIP }, tcp({ src: '192.0.2.1', dst: VIP, sport: 40000, dport: 80, flags: 0x02 })), [{ vid: 5 }]) });
  return out;
}

/* ---------------- load-balancer configurations ---------------- */

const SERVERS = [{ addr: '10.0.0.1', port: 8080, weight: 3, mac: '02:00:00:00:00:01' }, { addr: '10.0.0.2', port: 8080, weight: 1, mac: '02:00:00:00:00:02' }, { addr: '10.0.0.3', port: 5353, mac: '02:00:00:00:00:03' }];
const SERVERS6 = [{ addr: '2001:db8::10', port: 8080 }, { addr: '2001:db8::11', port: 8080, weight: 2 }];
const svc = (proto: string, forward: string, extra: Record<string, unknown> = {}, servers: unknown[] = SERVERS) => ({ proto, vip: VIP, port: proto === 'tcp' ? 80 : 53, scheduler: 'wrr', forward, servers, ...extra });

export const CONFIG_DOCS: Array<Record<string, unknown>> = [
  { services: [svc('tcp', 'nat'), svc('udp', 'nat', { scheduler: 'rr' })], profile: 'dpvs' },
  { services: [svc('tcp', 'nat', { persistence: { timeout: 60, netmask: 24 }, scheduler: 'lc' }), svc('udp', 'fnat', { laddrs: ['10.0.1.1'] })], profile: 'netfilter', decrement_ttl: true, mtu: 576 },
  { services: [svc('tcp', 'fnat', { laddrs: ['10.0.1.1', '10.0.1.2'], toa: true, scheduler: 'mh', mh: { table_size: 251, port: true, fallback: true } }), svc('udp', 'fnat', { laddrs: ['10.0.1.1'], conn_timeout: 5 })] },
  { services: [svc('tcp', 'dr', { scheduler: 'sh' }, SERVERS.map((s) => ({ ...s, port: 80 }))), svc('udp', 'tunnel', { tunnel: { type: 'gue', port: 6080 }, scheduler: 'dh' })], decrement_ttl: true },
  { services: [svc('tcp', 'tunnel', { scheduler: 'conhash' }), { proto: 'tcp', forward: 'snat', match: { src: '192.168.0.0/16' }, scheduler: 'rr', servers: [{ addr: '10.0.2.1' }, { addr: '10.0.2.2' }] }] },
  { services: [svc('tcp', 'nat', { synproxy: true, servers: SERVERS.slice(0, 2).map((x) => ({ ...x, upper_threshold: 2 })) })], synproxy: { max_ack_saved: 1, rs_syn_max_retry: 1 } },
  { services: [svc('tcp', 'fnat', { synproxy: true, toa: true, laddrs: ['10.0.1.1'], servers: SERVERS.slice(0, 2) })], synproxy: { defer_rs_syn: true, wscale: false, conn_reuse_state: ['close', 'time_wait', 'fin_wait'] }, profile: 'netfilter' },
  { services: [{ ...svc('tcp', 'nat', { synproxy: true, expire_quiescent: true, scheduler: 'sed' }, SERVERS6), vip: VIP6 }, { ...svc('udp', 'fnat', { laddrs: ['2001:db8::100'], scheduler: 'nq' }, SERVERS6), vip: VIP6 }] },
  { services: [] },
  {
    services: [{ ...svc('tcp', 'nat', { scheduler: 'mh', region_select: 'nearest' }), servers: SERVERS.map((x, i) => ({ ...x, region: ['eu', 'us', 'ap'][i] })) }, svc('tcp', 'fnat', { port: 443, laddrs: ['10.0.1.1'], proxy_protocol: 'v2' })],
    regions: { incremental_interval: 1, full_interval: 5, probe: 'http', probe_path: '/probe', rule: 'tailscale', score: { eu: 1.5 } },
    agents: { listen: '10.0.9.1:6080', keys: { 'edge-1': 'a5'.repeat(32) }, timeout: 2 },
  },
];

/* ---------------- targets ---------------- */

/** a capture file of `n` pool packets with times from `r` (mostly ms apart, sometimes minutes, rarely decades) */
function captureOf(r: Rng, pkts: PoolPacket[], n: number, nano: boolean): Uint8Array {
  let sec = 1_700_000_000;
  let frac = 0;
  const recs = [];
  for (let i = 0; i < n; i++) {
    const g = r.below(100);
    if (g < 80) frac += r.below(5000);
    else if (g < 97) sec += r.below(400);
    else sec = (sec + r.below(2 ** 31)) >>> 0;
    if (frac >= 1e6) {
      sec += Math.floor(frac / 1e6);
      frac %= 1e6;
    }
    recs.push({ sec: sec >>> 0, frac: nano ? frac * 1000 : frac, data: pick(r, pkts).frame });
  }
  return pcapFile(recs, { nano });
}

export function readerTarget(): Target {
  const pkts = pool();
  const seeds: Uint8Array[] = ['http-get.pcap', 'http-dns.pcap', 'ftp-ipv6.pcap'].map((f) => new Uint8Array(fs.readFileSync(path.join(REPO, 'pcaps', f))));
  return {
    name: 'reader',
    make(r) {
      let file: Uint8Array;
      const k = r.below(4);
      if (k === 0) file = pick(r, seeds).slice();
      else if (k === 1) file = captureOf(r, pkts, 1 + r.below(20), r.below(2) === 0);
      else {
        const le = r.below(3) > 0;
        const blocks = [ngShb(le), ngIdb(1, le, pick(r, [undefined, 6, 9, 0x8a, 0]), r.below(2) ? 0 : 64)];
        for (let i = 0; i < 1 + r.below(8); i++) blocks.push(r.below(10) === 0 ? ngShb(le) : ngEpb(0, BigInt(r.u32()) * 4096n, pick(r, pkts).frame, le));
        file = concat(...blocks);
      }
      const bytes = mutateBytes(r, file, 1 + r.below(8), 256);
      const window = pick(r, [64, 100, 512, 4096]);
      return {
        bytes,
        ext: 'cap',
        run: async () => {
          try {
            await readCapture('fuzz', (rec) => {
              if (rec.off < 0 || rec.off + rec.caplen > rec.buf.length) throw new FuzzFailure(`record ${rec.index} outside the window: ${rec.off}+${rec.caplen} > ${rec.buf.length}`);
            }, { data: bytes, window });
          } catch (e) {
            // the file's fault: a one-line error naming it and where; anything else is ours
            if (e instanceof CaptureError && !e.message.includes('\n') && e.message.startsWith('fuzz: ')) return;
            if (e instanceof RecordHandlerError && e.cause instanceof FuzzFailure) throw e.cause;
            throw e;
          }
        },
      };
    },
  };
}

export function decodeTarget(): Target {
  const frames = pool().map((p) => p.frame);
  const shared = new PacketView();
  // replay with workers: which lane a packet goes to, read in place (the fast path) and through decode() must agree
  const svcs = new Services(CONFIG_DOCS.flatMap((d, i) => parseConfig(d, `fuzz config ${i}`).services));
  const slots = slotTable(3, 0.2);
  const fast = new Dispatcher(slots, svcs, 'service');
  const full = new Dispatcher(slots, svcs, 'service');
  full.full = true;
  const lts = [1, 1, 1, 101, 228, 229, 113, 276, 0, 108, 12, 147];
  return {
    name: 'decode',
    make(r) {
      const f = mutateBytes(r, pick(r, frames).slice(), 1 + r.below(6), 80);
      const lt = pick(r, lts);
      const off = r.below(4);
      const buf = new Uint8Array(off + f.length + r.below(8));
      buf.set(f, off);
      const caplen = r.below(5) === 0 ? r.below(f.length + 1) : f.length;
      const wire = caplen + (r.below(4) === 0 ? r.below(2000) : 0);
      return {
        bytes: f,
        ext: `lt${lt}.bin`,
        run: () => {
          const st = decode(buf, off, caplen, wire, lt, shared);
          const fresh = new PacketView();
          if (decode(buf, off, caplen, wire, lt, fresh) !== st) throw new FuzzFailure('a fresh view decodes to another status');
          const a = JSON.stringify(viewSnap(shared));
          const b = JSON.stringify(viewSnap(fresh));
          if (a !== b) throw new FuzzFailure(`the reused view differs from a fresh one:\n${a}\n${b}`);
          if (shared.hasL4 && (shared.l4Off < off || shared.l4Off > off + caplen)) throw new FuzzFailure(`L4 offset ${shared.l4Off} outside the frame`);
          const a1 = fast.workerOf(buf, off, caplen, wire, lt);
          const a2 = full.workerOf(buf, off, caplen, wire, lt);
          if (!(a1 >= 0 && a1 < 3) || (a1 !== a2 && fullDecodes(buf, off, caplen, wire, lt))) throw new FuzzFailure(`lane ${a1} read in place, ${a2} through decode()`);
        },
      };
    },
  };
}

/** a packet the general decoder tracks (the lane of one it drops is only counted: any lane will do) */
function fullDecodes(buf: Uint8Array, off: number, caplen: number, wire: number, lt: number): boolean {
  const v = new PacketView();
  decode(buf, off, caplen, wire, lt, v);
  return v.status === 0 && v.hasL4;
}

export function engineTarget(): Target {
  const pkts = pool();
  const configs: Config[] = CONFIG_DOCS.map((d, i) => parseConfig(d, `fuzz config ${i}`));
  const rec = new PacketRecord();
  return {
    name: 'engine',
    make(r) {
      const ci = r.below(configs.length);
      const cfg = configs[ci]!;
      const n = 1 + r.below(60);
      const seq: Array<{ p: PoolPacket; frame: Uint8Array; caplen: number; gapUs: number; op: number }> = [];
      for (let i = 0; i < n; i++) {
        const p = pick(r, pkts);
        const frame = r.below(2) === 0 ? mutateBytes(r, p.frame.slice(), 1 + r.below(4), 80) : p.frame.slice();
        const g = r.below(100);
        const gapUs = g < 85 ? r.below(20_000) : g < 98 ? r.below(400e6) : r.below(2 ** 31) * 1e6;
        seq.push({ p, frame, caplen: r.below(10) === 0 ? r.below(frame.length + 1) : frame.length, gapUs, op: r.below(200) });
      }
      const profile = r.below(2) === 0 ? 'dpvs' : 'netfilter';
      const jitter = r.below(2) === 0;
      const fullEvery = r.below(3) === 0 ? 1 + r.below(5) : 0;
      const spare = r.below(3) === 0;
      const reloadTo = configs[r.below(configs.length)]!;
      const bytes = enc(JSON.stringify({ config: ci, profile, jitter, packets: seq.map((x) => ({ hex: Buffer.from(x.frame).toString('hex'), caplen: x.caplen, gapUs: x.gapUs, op: x.op })) }));
      return {
        bytes,
        ext: 'json',
        run: () => {
          const services = new Services(cfg.services);
          const cookies = new Map<string, number>();
          const lports: number[] = [];
          let sent = 0;
          const sink: Sink = {
            send(_r, buf, off, len, _wire, l2len) {
              if (off < 0 || len < 0 || off + len > buf.length || l2len > len) throw new FuzzFailure(`emitted frame outside its buffer: ${off}+${len} of ${buf.length}, l2 ${l2len}`);
              sent++;
              // learn what the inputs need to get further: cookies of SYN-ACKs, local ports toward servers
              const l3 = off + l2len;
              if (len >= l2len + 40 && buf[l3]! >> 4 === 4 && buf[l3 + 9] === 6) {
                const l4 = l3 + ((buf[l3]! & 15) << 2);
                if (l4 + 20 <= off + len) {
                  const dv = new DataView(buf.buffer, buf.byteOffset);
                  if ((buf[l4 + 13]! & 0x12) === 0x12) cookies.set(`${dv.getUint32(l3 + 16)}:${dv.getUint16(l4 + 2)}`, dv.getUint32(l4 + 4));
                  if (buf[l3 + 16] === 10 && buf[l3 + 17] === 0 && buf[l3 + 18] === 0) lports.push(dv.getUint16(l4));
                }
              }
              return fullEvery && sent % fullEvery === 0 ? 'tx_queue_full' : null;
            },
            ...(spare ? { spare: () => (sent % 7) } : {}),
          };
          const lbOn = services.size > 0;
          const engine = new Engine({
            conntrack: { profile, seed: 7, maxConns: 128, jitter },
            lb: lbOn ? { services, decrementTtl: cfg.decrement_ttl, mtu: cfg.mtu, synproxy: { cfg: cfg.synproxy, secret: replaySecret(undefined, 3) }, reserve: spare ? 3 : 0 } : undefined,
            sink: lbOn ? sink : undefined,
          });
          const tracker = engine.ct;
          let us = 1_700_000_000e6;
          for (const x of seq) {
            const f = x.frame;
            if (x.p.cookieAck && f.length >= 54 && f[12] === 8 && f[13] === 0) {
              const dv = new DataView(f.buffer, f.byteOffset);
              const ck = cookies.get(`${dv.getUint32(26)}:${dv.getUint16(34)}`);
              if (ck !== undefined) dv.setUint32(42, (ck + 1) >>> 0);
            }
            if (x.p.toLocal && lports.length && f.length >= 54 && f[12] === 8 && f[13] === 0) new DataView(f.buffer, f.byteOffset).setUint16(36, lports[x.op % lports.length]!);
            us += x.gapUs;
            const sec = Math.floor(us / 1e6);
            Object.assign(rec, { buf: f, off: 0, caplen: x.caplen, wirelen: f.length, linktype: 1, tsSec: sec, tsFrac: us - sec * 1e6, digits: 6 });
            engine.frame(rec);
            if (x.op === 1) tracker.flush();
            if (x.op === 2 && lbOn) services.apply(reloadTo.services);
          }
          engine.drain();
          // every connection expired: nothing of any may be left
          if (tracker.table.count !== 0) throw new FuzzFailure(`${tracker.table.count} connections left after drain`);
          if (tracker.wheel.armed !== 0) throw new FuzzFailure(`${tracker.wheel.armed} timers left after drain`);
          const tm = engine.lb?.templates;
          if (tm && tm.count !== 0) throw new FuzzFailure(`${tm.count} persistence templates left`);
          if (engine.sp && engine.sp.pendingCount !== 0) throw new FuzzFailure(`${engine.sp.pendingCount} synproxy connections still hold frames`);
          for (const s of services.list) {
            for (let i = 0; i < s.dests.count; i++) if (s.dests.active[i] !== 0 || s.dests.inactive[i] !== 0) throw new FuzzFailure(`${s.label} server ${i}: ${s.dests.active[i]} active, ${s.dests.inactive[i]} inactive after drain`);
            if (s.pool && s.pool.inUse !== 0) throw new FuzzFailure(`${s.label}: ${s.pool.inUse} local ports still taken`);
          }
        },
      };
    },
  };
}

export function configTarget(): Target {
  const live = { interfaces: ['eth0'], socket: '/run/x.sock', metrics: '127.0.0.1:9640', health: { interval: 2 } };
  const docs = [...CONFIG_DOCS, { ...CONFIG_DOCS[0], live }, { ...CONFIG_DOCS[2], timeouts: { established: 60, udp_oneway: 5 }, seed: 5, max_conns: 4096 }];
  return {
    name: 'config',
    make(r) {
      const doc = mutateDoc(r, pick(r, docs), 1 + r.below(3));
      let text = r.below(2) === 0 ? YAML.stringify(doc) : JSON.stringify(doc);
      if (r.below(5) === 0) text = new TextDecoder().decode(mutateBytes(r, enc(text), 1 + r.below(4)));
      const bytes = enc(text);
      return {
        bytes,
        ext: 'yaml',
        run: () => {
          let cfg: Config;
          try {
            cfg = parseConfigText(text, 'fuzz.yaml');
          } catch (e) {
            if (e instanceof ConfigError && !e.message.includes('\n') && e.message.startsWith('fuzz.yaml: ')) return;
            throw e;
          }
          checkTimeouts(cfg.timeouts, cfg.profile ?? 'dpvs');
          const s = new Services(cfg.services);
          s.apply(cfg.services);
        },
      };
    },
  };
}

export function ctlTarget(): Target {
  const cfg = parseConfig(CONFIG_DOCS[2], 'fuzz');
  const frames = pool().map((p) => p.frame);
  const reqs: Array<Record<string, unknown>> = [
    { v: 1, id: 1, cmd: 'hello' },
    { v: 1, id: 'a', cmd: 'status' },
    { v: 1, cmd: 'snapshot' },
    { v: 1, cmd: 'counters' },
    { v: 1, cmd: 'conns', limit: 5, filter: { proto: 'tcp', state: 'SYN_RECV', src: '192.0.2.0/24', port: 80 } },
    { v: 1, cmd: 'conns', limit: 2, cursor: 'c3' },
    { v: 1, cmd: 'flows', limit: 3, sort: 'bytes', filter: { src: '192.0.2.0/24' } },
    { v: 1, cmd: 'flows', cursor: 'f2', limit: 2 },
    { v: 1, cmd: 'flows', recent: '192.0.2.1' },
    { v: 1, cmd: 'flush' },
    { v: 1, cmd: 'zero' },
    { v: 1, cmd: 'service.edit', service: { proto: 'tcp', vip: VIP, port: 80 }, set: { scheduler: 'rr' } },
    { v: 1, cmd: 'service.add', service: { proto: 'udp', vip: VIP, port: 54 }, set: { scheduler: 'rr', servers: [{ addr: '10.0.0.9', port: 53 }] } },
    { v: 1, cmd: 'service.delete', service: { proto: 'udp', vip: VIP, port: 53 } },
    { v: 1, cmd: 'server.add', service: { proto: 'tcp', vip: VIP, port: 80 }, server: { addr: '10.0.0.9', port: 8080, weight: 2 } },
    { v: 1, cmd: 'server.edit', service: { proto: 'tcp', vip: VIP, port: 80 }, server: { addr: '10.0.0.1', port: 8080, weight: 0 } },
    { v: 1, cmd: 'server.delete', service: { proto: 'tcp', vip: VIP, port: 80 }, server: { addr: '10.0.0.2', port: 8080 } },
  ];
  return {
    name: 'ctl',
    make(r) {
      const lines: string[] = [];
      for (let i = 0; i < 1 + r.below(4); i++) {
        let line = JSON.stringify(mutateDoc(r, pick(r, reqs), r.below(4)));
        if (r.below(6) === 0) line = new TextDecoder().decode(mutateBytes(r, enc(line), 1 + r.below(3)));
        lines.push(line.replace(/\n/g, ' '));
      }
      const nConns = r.below(60);
      return {
        bytes: enc(lines.join('\n')),
        ext: 'jsonl',
        run: () => {
          let services = cfg.services;
          const sv = new Services(services);
          const engine = new Engine({ conntrack: { profile: 'dpvs', seed: 1, maxConns: 128 }, lb: { services: sv }, sink: { send: () => null }, flows: { idle: 3600, max: 64, perSource: 4 } });
          const tracker = engine.ct;
          const rec = new PacketRecord();
          for (let i = 0; i < nConns; i++) {
            const f = frames[i % frames.length]!;
            Object.assign(rec, { buf: f, off: 0, caplen: f.length, wirelen: f.length, linktype: 1, tsSec: 1_700_000_000, tsFrac: i, digits: 6 });
            engine.frame(rec);
          }
          const target: CtlTarget = {
            status: () => ({ packets: nConns }),
            snapshot: () => ({ version: 1 }),
            serviceList: () => lbSummaryOf(engine).services,
            counters: () => ({}),
            connPage: (from, limit, budget, filter) => pageConns(tracker, engine.lb, from, limit, budget, filter),
            flowPage: (from, limit, budget, filter, sort, recent) =>
              recent !== undefined ? { flows: recentFlows(engine.flows!, engine.time, recent), next: null, total: engine.flows!.count } : flowPage(engine.flows!, engine.time, from, limit, budget, filter, sort),
            zero: () => 0,
            flush: () => tracker.flush(),
            deleteConns: (filter) => deleteConns(tracker, filter),
            subscribe: (filter, types, send) => new EventFeed(tracker).subscribe(filter, types, send),
            reload: () => services.length,
            serviceConfigs: () => services,
            timeouts: () => ({ tcp: 900, tcpfin: 120, udp: 300 }),
            setTimeouts: (t) => ({ tcp: t.tcp || 900, tcpfin: t.tcpfin || 120, udp: t.udp || 300 }),
            templates: () => [],
            agents: () => null,
            replaceServices: (list) => {
              services = parseConfig({ services: list }, 'request').services;
              return sv.apply(services);
            },
          };
          const srv = new CtlServer(target, '/nonexistent');
          for (const line of lines) {
            const out = srv.answer(line);
            if (typeof out !== 'string') throw new FuzzFailure('a synchronous target answered later');
            if (!out.endsWith('\n') || out.indexOf('\n') !== out.length - 1) throw new FuzzFailure(`the reply is not one line: ${out.slice(0, 200)}`);
            const j = JSON.parse(out) as { v: number; ok: boolean; error?: { code: string } };
            if (j.v !== 1 || typeof j.ok !== 'boolean') throw new FuzzFailure(`not a reply: ${out.slice(0, 200)}`);
            if (j.error?.code === 'INTERNAL') throw new FuzzFailure(`internal error for ${line.slice(0, 300)}: ${out.slice(0, 300)}`);
          }
        },
      };
    },
  };
}

/**
 * agents: heartbeats, replies, control datagrams and bare KCP datagrams with bytes changed anywhere, at the
 * hub, at the agent and into a KCP receiver, and latency models (replay --latency) with a value replaced:
 * nothing may throw but the parser's own one-line error, no changed datagram may be accepted, and an
 * unchanged one must be
 */
export function agentsTarget(): Target {
  const key = new Uint8Array(32).fill(0xa5);
  const beats = [1, 2, 3, 500, 2 ** 40].map((n) => encodeHeartbeat({ id: 'edge-1', counter: n, timeMs: n * 1000 }, key));
  // an agent's heartbeat and the hub's reply to it (the link remembers the heartbeat: the reply is good)
  const exchange = (i: number) => {
    const link = new AgentLink('edge-1', key, () => 1e15 + i);
    const r = new AgentRegistry(new Map([['edge-1', key]]), 5000, () => ({ services: [{ vip: '10.9.9.9', port: 80 }] }));
    const x = r.handle(link.due(0)!, i % 2 ? { addr: '2001:db8::7', port: 40000 + i } : { addr: '198.51.100.7', port: 40000 + i }, 1000);
    return { link, reply: 'reply' in x ? x.reply : Buffer.alloc(0) };
  };
  const replies = [0, 1, 2, 3].map((i) => exchange(i).reply);
  // the control channel: KCP datagrams (a message in fragments, ACKs) and their authenticated framing
  const kcpOut: Buffer[] = [];
  const k = new Kcp(7, (d) => kcpOut.push(d));
  k.setMtu(200);
  k.send(Buffer.alloc(500, 0x61));
  k.send(Buffer.from('{"t":"stats"}'));
  k.update(0);
  k.update(100);
  const controls = kcpOut.map((d, i) => encodeControl(T_CTL_UP, 'edge-1', 1000 + i, d, key));
  const model = [{ t: 0, region: 'eu', rtt_ms: 50 }, { t: 30, region: 'us', rtt_ms: null }, { t: 60.5, region: 'ap', rtt_ms: 120.25 }];
  return {
    name: 'agents',
    make(r) {
      const kind = r.below(5);
      if (kind === 2) {
        const doc = mutateDoc(r, model, 1 + r.below(3));
        const text = (Array.isArray(doc) ? doc : [doc]).map((x) => JSON.stringify(x) ?? '').join('\n');
        return {
          bytes: enc(text),
          ext: 'jsonl',
          run: () => {
            try {
              const m = LatencyModel.parse(text, 'model');
              for (const reg of m.regions) m.at(reg, r.below(100));
            } catch (e) {
              if (!(e instanceof Error) || e.constructor !== Error || /\n/.test(e.message)) throw new FuzzFailure(`not a one-line error: ${String(e)}`);
            }
          },
        };
      }
      // 0 heartbeats at the hub, 1 replies at the agent, 3 KCP datagrams into a receiver (never a throw),
      // 4 framed control datagrams (never accepted changed)
      const src = pick(r, [beats, replies, [], kcpOut, controls][kind]!);
      const b = mutateBytes(r, Uint8Array.from(src), 1 + r.below(4));
      const same = b.length === src.length && b.every((x, i) => x === src[i]);
      return {
        bytes: b,
        ext: 'bin',
        run: () => {
          if (kind === 3) {
            const rx = new Kcp(7, () => {});
            rx.update(0);
            rx.input(b);
            rx.update(100);
            while (rx.recv() !== null);
          } else if (kind === 4) {
            const x = openControl(b, T_CTL_UP, 'edge-1', key, new ReplayWindow());
            if (typeof x !== 'string' && !same) throw new FuzzFailure('a changed control datagram was accepted');
            if (typeof x === 'string' && same) throw new FuzzFailure(`a good control datagram was refused (${x})`);
          } else if (kind === 0) {
            const hub = new AgentRegistry(new Map([['edge-1', key]]));
            const x = hub.handle(b, { addr: '198.51.100.7', port: 40000 }, 1000);
            if ('reply' in x && !same) throw new FuzzFailure('a changed heartbeat was accepted');
          } else {
            // (the link that sent the heartbeat this reply answers)
            const { link } = exchange(replies.indexOf(src as Buffer));
            const got = link.receive(b, 10);
            if (got !== null && !same) throw new FuzzFailure('a changed reply was accepted');
            if (got === null && same) throw new FuzzFailure('a good reply was refused');
          }
        },
      };
    },
  };
}

export const TARGETS: Record<string, () => Target> = { reader: readerTarget, decode: decodeTarget, engine: engineTarget, config: configTarget, ctl: ctlTarget, agents: agentsTarget };
export const TARGET_NAMES = Object.keys(TARGETS);
