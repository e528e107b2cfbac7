/**
 * Flow accounting: eviction in virtual time against a model written here from the rules (DERP's
 * amortized eviction: two flows checked round robin per new flow, idle > flows.idle, swap-remove; the least
 * recently active evicted when the table is full; rough last activity written at most once a minute), through
 * `bin/tsvs replay --flows` on generated captures spanning hours; the per-source list of last destinations
 * against a model; drops attributed on the flows of a corpus SYN flood (tshark counts per source) and of clients
 * of a service whose servers all have weight 0.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Flows } from '../../src/flows/flows.js';
import type { FlowRecord } from '../../src/report/flows.js';
import { CORPUS, run, tsvs } from '../helpers/corpus.js';
import { eth, ipv4, pcapFile, tcp, udp, type Rec } from '../helpers/packets.js';
import { LbLab } from '../helpers/lb-lab.js';
import { rng } from '../helpers/rng.js';

interface Pkt {
  us: number;
  src: string;
  dst: string;
  bytes: number;
}

interface ModelFlow {
  src: string;
  dst: string;
  created: number;
  last: number;
  pkts: number;
  bytes: number;
}

/** the fields of a --flows line this test compares */
type Out = Pick<FlowRecord, 'src' | 'dst' | 'created' | 'last' | 'pkts' | 'bytes' | 'evicted' | 'eviction'>;

const fmt = (us: number): string => `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, '0')}`;

/** the rules, plainly: what is written at eviction (in order) and what is left at the end (dense order) */
function model(pkts: Pkt[], idleS: number, max: number): { evicted: Out[]; open: Out[] } {
  const dense: ModelFlow[] = [];
  const byKey = new Map<string, ModelFlow>();
  let lru: ModelFlow[] = [];
  let rr = 0;
  const evicted: Out[] = [];
  const out = (f: ModelFlow): Out => ({ src: f.src, dst: f.dst, created: fmt(f.created), last: fmt(f.last), pkts: f.pkts, bytes: f.bytes });
  const evict = (f: ModelFlow, now: number, why: 'idle' | 'full') => {
    evicted.push({ ...out(f), evicted: fmt(now), eviction: why });
    byKey.delete(`${f.src}>${f.dst}`);
    const at = dense.indexOf(f);
    const lastF = dense.pop()!;
    if (lastF !== f) dense[at] = lastF;
    lru = lru.filter((x) => x !== f);
  };
  for (const p of pkts) {
    const key = `${p.src}>${p.dst}`;
    let f = byKey.get(key);
    if (!f) {
      for (let i = 0; i < 2 && dense.length > 0; i++) {
        rr++;
        if (rr >= dense.length) rr = 0;
        const old = dense[rr]!;
        if (p.us - old.last > idleS * 1e6) evict(old, p.us, 'idle');
      }
      if (dense.length >= max) evict(lru[0]!, p.us, 'full');
      f = { src: p.src, dst: p.dst, created: p.us, last: p.us, pkts: 0, bytes: 0 };
      byKey.set(key, f);
      dense.push(f);
      lru.push(f);
    } else if (p.us - f.last > 60e6) {
      f.last = p.us;
      lru = lru.filter((x) => x !== f);
      lru.push(f);
    }
    f.pkts++;
    f.bytes += p.bytes;
  }
  return { evicted, open: dense.map(out) };
}

/** a capture of UDP packets spanning `hours`: pairs active in windows, some coming back after a long silence */
function traffic(seed: number, hours: number, nPairs: number): Pkt[] {
  const r = rng(seed);
  const span = hours * 3600e6;
  const pkts: Pkt[] = [];
  for (let i = 0; i < nPairs; i++) {
    const src = `10.1.0.${1 + (i % 7)}`;
    const dst = `10.2.${i >> 8}.${i & 255}`;
    const windows = r() < 0.4 ? 2 : 1;
    for (let w = 0; w < windows; w++) {
      const start = r() * span * 0.8;
      const len = r() < 0.5 ? r() * 300e6 : r() * 3000e6;
      const n = 1 + Math.floor(r() * 12);
      for (let k = 0; k < n; k++) pkts.push({ us: Math.floor(start + r() * len), src, dst, bytes: 28 + Math.floor(r() * 1000) });
    }
  }
  pkts.sort((a, b) => a.us - b.us);
  // distinct, increasing times (a tie would leave the order to the sort)
  for (let i = 1; i < pkts.length; i++) if (pkts[i]!.us <= pkts[i - 1]!.us) pkts[i]!.us = pkts[i - 1]!.us + 1;
  const t0 = 1_750_000_000e6;
  for (const p of pkts) p.us += t0;
  return pkts;
}

function capture(pkts: Pkt[]): Uint8Array {
  const recs: Rec[] = pkts.map((p) => ({
    sec: Math.floor(p.us / 1e6),
    frac: p.us % 1e6,
    data: eth(0x0800, ipv4({ src: p.src, dst: p.dst, proto: 17 }, udp({ src: p.src, dst: p.dst, sport: 4000, dport: 53 }, new Uint8Array(p.bytes - 28)))),
  }));
  return pcapFile(recs);
}

describe('flow accounting (src/flows)', function () {
  this.timeout(120_000);
  let tmp = '';
  before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-flowt-'))));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  async function replayFlows(pkts: Pkt[], config?: string): Promise<{ lines: Out[]; json: { flows: { count: number; evicted: number; evicted_full: number } } }> {
    const cap = path.join(tmp, 'gen.pcap');
    fs.writeFileSync(cap, capture(pkts));
    const out = path.join(tmp, 'flows.jsonl');
    const args = ['replay', cap, '--json', '--flows', out];
    if (config) {
      fs.writeFileSync(path.join(tmp, 'c.yaml'), config);
      args.push('--config', path.join(tmp, 'c.yaml'));
    }
    const r = await tsvs(args);
    assert.equal(r.code, 0, r.stderr);
    const lines = fs
      .readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Out & Record<string, unknown>)
      .map((o) => ({ src: o.src, dst: o.dst, created: o.created, last: o.last, pkts: o.pkts, bytes: o.bytes, ...(o.evicted ? { evicted: o.evicted, eviction: o.eviction } : {}) }));
    return { lines, json: JSON.parse(r.stdout.trim().split('\n')[0]!) };
  }

  it('a replay spanning 3 hours evicts idle flows in virtual time: every eviction, its time and counts as the model has them', async function () {
    const pkts = traffic(7, 3, 400);
    const m = model(pkts, 3600, 1 << 20);
    assert.ok(m.evicted.length > 50, `the capture makes evictions (${m.evicted.length})`);
    const { lines, json } = await replayFlows(pkts);
    assert.deepEqual(lines.slice(0, m.evicted.length), m.evicted);
    assert.deepEqual(lines.slice(m.evicted.length), m.open);
    assert.equal(json.flows.evicted, m.evicted.length);
    assert.equal(json.flows.count, m.open.length);
    // every packet and byte is on some flow record (a pair split by eviction sums up)
    assert.equal(lines.reduce((s, l) => s + l.pkts, 0), pkts.length);
    assert.equal(lines.reduce((s, l) => s + l.bytes, 0), pkts.reduce((s, p) => s + p.bytes, 0));
  });

  it('flows.idle and flows.max from the configuration: idle 600 s, at most 40 flows over 4 hours (the least recently active goes, counted)', async function () {
    const pkts = traffic(11, 4, 300);
    const m = model(pkts, 600, 40);
    const full = m.evicted.filter((e) => e.eviction === 'full').length;
    assert.ok(full > 20 && m.evicted.length - full > 20, `both kinds of eviction happen (${full} full of ${m.evicted.length})`);
    const { lines, json } = await replayFlows(pkts, 'flows: { idle: 600, max: 40 }\n');
    assert.deepEqual(lines.slice(0, m.evicted.length), m.evicted);
    assert.deepEqual(lines.slice(m.evicted.length), m.open);
    assert.equal(json.flows.evicted_full, full);
  });

  it('each source keeps exactly its last 100 destinations, most recent first (in process, against a model)', function () {
    const flows = new Flows({ idle: 3600, max: 10000, perSource: 100 });
    const r = rng(3);
    const A = new Uint32Array([0x0a000001, 0, 0, 0]);
    const B = new Uint32Array([0x0a000002, 0, 0, 0]);
    const recent = new Map<number, number[]>([[A[0]!, []], [B[0]!, []]]);
    const d = new Uint32Array(4);
    for (let i = 0; i < 3000; i++) {
      const src = r() < 0.7 ? A : B;
      d[0] = 0xc0a80000 + Math.floor(r() * 260);
      flows.packet(src, d, false, 100, 1e12 + i * 1000);
      const l = recent.get(src[0]!)!.filter((x) => x !== d[0]);
      l.unshift(d[0]!);
      recent.set(src[0]!, l);
      if (i % 500 === 499 || i === 2999) {
        for (const s of [A, B]) {
          const got = flows.recentOf(s, false).map((f) => (flows.addrOf(f, 'dst', d), d[0]!));
          assert.deepEqual(got, recent.get(s[0]!)!.slice(0, 100), `after ${i + 1} packets`);
        }
      }
    }
    assert.ok(recent.get(A[0]!)!.length > 200, 'A has had more than 100 destinations');
  });

  it('a table that grows while full of flows from ever new sources keeps every flow findable (max 5000: capacities that are not powers of two; it once lost a source chain and looped)', function () {
    const flows = new Flows({ idle: 3600, max: 5000, perSource: 100 });
    const r = rng(5);
    const s = new Uint32Array(4);
    const d = new Uint32Array([0x0a4d0901, 0, 0, 0]);
    for (let i = 0; i < 40_000; i++) {
      s[0] = (r() * 2 ** 32) >>> 0;
      flows.drop(flows.packet(s, d, false, 40, 1e12 + i), 'synproxy_cookie', 40);
    }
    assert.equal(flows.count, 5000);
    assert.equal(flows.evictedFull, 35_000);
    const src = new Uint32Array(4);
    for (const f of flows.handles()) {
      flows.addrOf(f, 'src', src);
      assert.equal(flows.find(src, d, false), f);
      assert.deepEqual(flows.recentOf(src, false), [f]);
      assert.deepEqual(flows.dropsOf(f).pkts, { synproxy_cookie: 1 });
    }
  });

  it('under overload a packet without a connection makes no flow (a spoofed flood cannot fill the table): counted unaccounted, its drop unattributed; flows that exist still count', function () {
    let spare = 100;
    const lab = new LbLab('dpvs', [{ proto: 'tcp', vip: '10.9.9.9', port: 80, scheduler: 'rr', synproxy: true, servers: [{ addr: '10.0.0.1', port: 8080 }] }], { reserve: 50, spare: () => spare, maxConns: 256, flows: true });
    const syn = (src: string, sport: number) => eth(0x0800, ipv4({ proto: 6, src, dst: '10.9.9.9' }, tcp({ src, dst: '10.9.9.9', sport, dport: 80, flags: 0x02, seq: 7 })));
    lab.frame(syn('192.0.2.1', 1000)); // a client's flow, before
    spare = 50;
    for (let i = 0; i < 200; i++) lab.frame(syn(`198.51.${i >> 8}.${i & 255}`, 3000 + i));
    lab.frame(syn('192.0.2.1', 1001)); // the client again, during (unverified: dropped too)
    const flows = lab.engine.flows!;
    // the first flood SYN came before any overload drop: it made its flow; the other 199 did not
    assert.equal(flows.count, 2);
    assert.equal(flows.unaccounted, 199);
    assert.equal(flows.unattributed, 199);
    assert.equal(flows.dropTotals.get('synproxy_overload'), 201);
    const c = flows.find(new Uint32Array([0xc0000201, 0, 0, 0]), new Uint32Array([0x0a090909, 0, 0, 0]), false);
    assert.deepEqual([flows.countsOf(c).pkts, flows.dropsOf(c).pkts], [2, { synproxy_cookie: 1, synproxy_overload: 1 }]);
  });

  it('drops are attributed: the corpus DOMINATE SYN flood against a synproxy service puts each source\'s SYNs (answered with cookies) and RSTs (no connection) on its flow, as tshark counts them', async function () {
    const file = path.join(CORPUS, 'synflood/stopddos-pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng');
    const cfg = path.join(tmp, 'sp.yaml');
    fs.writeFileSync(cfg, 'services:\n  - { proto: tcp, vip: 10.10.10.10, port: 30120, scheduler: rr, forward: nat, synproxy: true, servers: [{ addr: 192.168.50.1, port: 80 }] }\n');
    const out = path.join(tmp, 'sp.jsonl');
    const r = await tsvs(['replay', file, '--config', cfg, '--flows', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const t = await run('tshark', ['-n', '-r', file, '-T', 'fields', '-E', 'separator=|', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'tcp.flags.syn', '-e', 'tcp.flags.reset']);
    const want = new Map<string, { syn: number; rst: number }>();
    for (const l of t.stdout.trim().split('\n')) {
      const [s, dd, syn, rst] = l.split('|');
      const k = `${s}>${dd}`;
      const w = want.get(k) ?? { syn: 0, rst: 0 };
      if (syn === '1' || syn === 'True') w.syn++;
      if (rst === '1' || rst === 'True') w.rst++;
      want.set(k, w);
    }
    const got = new Map<string, { syn: number; rst: number }>();
    for (const l of fs.readFileSync(out, 'utf8').trim().split('\n')) {
      const f = JSON.parse(l) as { src: string; dst: string; drops: Record<string, number> };
      assert.deepEqual(Object.keys(f.drops).filter((x) => x !== 'synproxy_cookie' && x !== 'not_tracked'), [], l);
      got.set(`${f.src}>${f.dst}`, { syn: f.drops.synproxy_cookie ?? 0, rst: f.drops.not_tracked ?? 0 });
    }
    assert.ok(want.size > 9000);
    assert.deepEqual(got, want);
    const j = JSON.parse(r.stdout.trim().split('\n')[0]!) as { flows: { drops: Record<string, number> } };
    assert.deepEqual(j.flows.drops, { synproxy_cookie: 9639, not_tracked: 239 });
  });

  it('a service whose servers all have weight 0 shows no_dest drops on its clients\' flows (and none on the servers\')', async function () {
    const file = path.join(CORPUS, 'tcp/zeek-http-get.pcap');
    const cfg = path.join(tmp, 'w0.yaml');
    fs.writeFileSync(cfg, 'services:\n  - { proto: tcp, vip: 192.150.187.43, port: 80, scheduler: wrr, forward: nat, servers: [{ addr: 10.201.3.1, port: 8080, weight: 0 }, { addr: 10.201.3.2, port: 8080, weight: 0 }] }\n');
    const out = path.join(tmp, 'w0.jsonl');
    const r = await tsvs(['replay', file, '--config', cfg, '--flows', out]);
    assert.equal(r.code, 0, r.stderr);
    const t = await run('tshark', ['-n', '-r', file, '-Y', 'ip.dst == 192.150.187.43 && tcp.dstport == 80 && tcp.flags.syn == 1 && tcp.flags.ack == 0', '-T', 'fields', '-e', 'ip.src']);
    const syns = t.stdout.trim().split('\n').filter(Boolean);
    assert.ok(syns.length > 0);
    const flows = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { src: string; dst: string; pkts: number; fwd_pkts: number; drops: Record<string, number> });
    const client = flows.find((f) => f.dst === '192.150.187.43')!;
    assert.equal(client.src, syns[0]);
    assert.equal(client.drops.no_dest, syns.length, JSON.stringify(client));
    assert.equal(client.fwd_pkts, 0);
    for (const f of flows) if (f.dst !== '192.150.187.43') assert.equal(f.drops.no_dest, undefined, JSON.stringify(f));
  });
});
