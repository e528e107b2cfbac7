/**
 * The control socket server against hostile and careless clients: every request shape is checked before use,
 * a handler's failure is an error reply, and connection listings page through the table without copying it.
 * The target is a real tracker filled with connections; the requests go through a real Unix socket where the
 * daemon's survival is the point.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { REPO, run } from '../helpers/corpus.js';
import { CtlServer, SCAN_BUDGET, type CtlTarget } from '../../src/ctl/server.js';
import { PacketRecord } from '../../src/capture/record.js';
import type { Conntrack } from '../../src/conntrack/conntrack.js';
import { Engine } from '../../src/engine.js';
import { deleteConns, EventFeed, pageConns } from '../../src/report/records.js';
import { flowPage, recentFlows } from '../../src/report/flows.js';
import { eth, ipv4, tcp, udp } from '../helpers/packets.js';

/** a tracker holding `n` connections: TCP SYNs from 10.1.x.y, every 7th a UDP flow */
let filledEngine: Engine | null = null;

function filled(n: number): Conntrack {
  const e = new Engine({ conntrack: { profile: 'netfilter', seed: 1, maxConns: 1 << 17 }, flows: { idle: 3600, max: 1 << 17, perSource: 100 } });
  filledEngine = e;
  const r = new PacketRecord();
  for (let i = 0; i < n; i++) {
    const src = `10.1.${(i >> 8) & 255}.${i & 255}`;
    const f = eth(0x0800, i % 7 === 0 ? ipv4({ proto: 17, src, dst: '10.9.9.9' }, udp({ src, dst: '10.9.9.9', sport: 1000 + (i >> 16), dport: 53 })) : ipv4({ proto: 6, src, dst: '10.9.9.9' }, tcp({ src, dst: '10.9.9.9', sport: 1000 + (i >> 16), dport: 80, flags: 0x02 })));
    Object.assign(r, { buf: f, off: 0, caplen: f.length, wirelen: f.length, linktype: 1, tsSec: 1_700_000_000, tsFrac: 0, digits: 6 });
    e.frame(r);
  }
  return e.ct;
}

function target(t: Conntrack, over: Partial<CtlTarget> = {}): CtlTarget {
  let feed: EventFeed | null = null;
  return {
    status: () => ({ packets: 0 }),
    snapshot: () => ({ version: 1 }),
    serviceList: () => [],
    counters: () => ({}),
    connPage: (from, limit, budget, filter) => pageConns(t, null, from, limit, budget, filter),
    flowPage: (from, limit, budget, filter, sort, recent) => {
      const e = filledEngine!;
      if (recent !== undefined) return { flows: recentFlows(e.flows!, e.time, recent), next: null, total: e.flows!.count };
      return flowPage(e.flows!, e.time, from, limit, budget, filter, sort);
    },
    zero: () => 0,
    flush: () => t.flush(),
    deleteConns: (filter) => deleteConns(t, filter),
    subscribe: (filter, types, send) => (feed ??= new EventFeed(t)).subscribe(filter, types, send),
    reload: () => 0,
    serviceConfigs: () => [],
    timeouts: () => ({ tcp: 900, tcpfin: 120, udp: 300 }),
    setTimeouts: (t) => ({ tcp: t.tcp || 900, tcpfin: t.tcpfin || 120, udp: t.udp || 300 }),
    templates: () => [],
    agents: () => null,
    replaceServices: () => ({ added: 0, changed: 0, deleted: 0 }),
    ...over,
  };
}

// (a synchronous target's answers are lines at once, not promises)
const parse = (line: string | Promise<string>) => JSON.parse(typeof line === 'string' ? line : assert.fail('a synchronous target answered later')) as { id: unknown; ok: boolean; result?: Record<string, unknown>; error?: { code: string; message: string } };

describe('control socket server', function () {
  const tracker = filled(45_797);
  const srv = new CtlServer(target(tracker), '/nonexistent');

  it('an id nested 100,000 deep is refused (it crashed the daemon in JSON.stringify); ids are strings, numbers or null', function () {
    const deep = `{"v":1,"id":${'['.repeat(100_000)}${']'.repeat(100_000)},"cmd":"hello"}`;
    const r = parse(srv.answer(deep));
    assert.deepEqual([r.ok, r.id, r.error?.code], [false, null, 'BAD_REQUEST']);
    assert.match(r.error!.message, /^id: /);
    for (const bad of ['{"a":1}', 'true', '{"x":"' + 'y'.repeat(300) + '"}']) assert.equal(parse(srv.answer(`{"v":1,"id":${bad},"cmd":"hello"}`)).error?.code, 'BAD_REQUEST');
    for (const good of ['"a"', '7', '-1.5', 'null']) assert.deepEqual(parse(srv.answer(`{"v":1,"id":${good},"cmd":"hello"}`)).id, JSON.parse(good));
    assert.equal(parse(srv.answer('{"v":1,"cmd":"hello"}')).ok, true);
  });

  it('every field is typed: limit "10", offset 1e308, cursor 5, unknown fields and bad filters are BAD_REQUEST', function () {
    const cases: Array<[string, RegExp]> = [
      ['{"v":1,"cmd":"conns","limit":"10"}', /^limit: Expected number, received string/],
      ['{"v":1,"cmd":"conns","offset":1e308}', /unknown field "offset"/],
      ['{"v":1,"cmd":"conns","cursor":5}', /^cursor: Expected string, received number/],
      ['{"v":1,"cmd":"conns","cursor":"x5"}', /^cursor: expected a cursor from a previous page/],
      ['{"v":1,"cmd":"conns","limit":0}', /^limit: /],
      ['{"v":1,"cmd":"conns","limit":1e9}', /^limit: /],
      ['{"v":1,"cmd":"conns","filter":{"state":"BOGUS"}}', /^filter: state: expected one of NONE, SYN_SENT/],
      ['{"v":1,"cmd":"conns","filter":{"src":"1.2.3"}}', /^filter: src: expected an address or a prefix/],
      ['{"v":1,"cmd":"conns","filter":{"proto":"sctp"}}', /^filter: proto: expected tcp, udp, icmp or icmpv6/],
      ['{"v":1,"cmd":"conns","filter":{"port":"80"}}', /^filter\.port: Expected number/],
      ['{"v":1,"cmd":"flush","all":true}', /unknown field "all"/],
      ['{"v":1,"cmd":"server.add","service":{"proto":"tcp","vip":"10.0.0.1","port":80},"server":"x"}', /^server: Expected object/],
      ['{"v":1,"cmd":"service.edit","service":{"proto":"tcp","vip":"10.0.0.1","port":80}}', /^set: Required/],
    ];
    for (const [req, re] of cases) {
      const r = parse(srv.answer(req));
      assert.equal(r.error?.code, 'BAD_REQUEST', req);
      assert.match(r.error!.message, re, req);
    }
    assert.equal(parse(srv.answer('{"v":2,"cmd":"hello"}')).error?.code, 'BAD_VERSION');
    assert.equal(parse(srv.answer('{"v":1,"cmd":"reboot"}')).error?.code, 'UNKNOWN_CMD');
    assert.equal(parse(srv.answer('{"v":1,')).error?.code, 'BAD_JSON');
    assert.equal(tracker.table.count, 45_797, 'nothing was flushed');
  });

  it('a handler that fails is an INTERNAL error reply, and the next request is answered', function () {
    const s = new CtlServer(target(tracker, { status: () => { throw new Error('boom'); } }), '/nonexistent');
    const r = parse(s.answer('{"v":1,"id":3,"cmd":"status"}'));
    assert.deepEqual([r.id, r.error?.code, r.error?.message], [3, 'INTERNAL', 'boom']);
    assert.equal(parse(s.answer('{"v":1,"cmd":"hello"}')).ok, true);
  });

  it('conns pages through 45,797 connections with stateless cursors: each connection once, in table order, nothing kept', function () {
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = parse(srv.answer(JSON.stringify({ v: 1, cmd: 'conns', limit: 5000, ...(cursor ? { cursor } : {}) })));
      assert.ok(r.ok, JSON.stringify(r.error));
      const res = r.result as { conns: Array<{ orig: { src: string; sport: number } }>; next: string | null; total: number };
      assert.equal(res.total, 45_797);
      assert.ok(res.conns.length <= 5000);
      for (const c of res.conns) {
        const k = `${c.orig.src}:${c.orig.sport}`;
        assert.ok(!seen.has(k), `listed twice: ${k}`);
        seen.add(k);
      }
      cursor = res.next;
      pages++;
    } while (cursor);
    assert.equal(seen.size, 45_797);
    assert.equal(pages, 10);
  });

  it('flows: pages with stateless cursors (each flow once), the top N by bytes merged over pages, CIDR filters, a source\'s last destinations, bad arguments refused', function () {
    // 45,797 packets, each from its own 10.1.x.y to 10.9.9.9: one flow per source
    const all = new Map<string, number>();
    let cursor: string | null = null;
    do {
      const r = parse(srv.answer(JSON.stringify({ v: 1, cmd: 'flows', limit: 7000, ...(cursor ? { cursor } : {}) })));
      assert.ok(r.ok, JSON.stringify(r.error));
      const res = r.result as { flows: Array<{ src: string; dst: string; pkts: number; bytes: number }>; next: string | null; total: number };
      for (const f of res.flows) {
        assert.ok(!all.has(f.src), `listed twice: ${f.src}`);
        all.set(f.src, f.bytes);
        assert.equal(f.dst, '10.9.9.9');
      }
      cursor = res.next;
    } while (cursor);
    assert.equal(all.size, 45_797);
    // top 5 by bytes over pages of 1000 flows: merged, it is the top 5 of everything (UDP flows are 28 B, TCP 40 B)
    const want = [...all.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 5).map((x) => x[1]);
    const got: number[] = [];
    cursor = null;
    do {
      const res = parse(srv.answer(JSON.stringify({ v: 1, cmd: 'flows', limit: 5, sort: 'bytes', ...(cursor ? { cursor } : {}) }))).result as { flows: Array<{ bytes: number }>; next: string | null };
      got.push(...res.flows.map((f) => f.bytes));
      cursor = res.next;
    } while (cursor);
    assert.deepEqual(got.sort((a, b) => b - a).slice(0, 5), want);
    const udpish = parse(srv.answer('{"v":1,"cmd":"flows","limit":10000,"filter":{"src":"10.1.0.0/24"}}')).result as { flows: Array<{ src: string }> };
    assert.equal(udpish.flows.length, 256);
    const recent = parse(srv.answer('{"v":1,"cmd":"flows","recent":"10.1.0.7"}')).result as { flows: Array<{ src: string; dst: string }> };
    assert.deepEqual(recent.flows.map((f) => `${f.src}>${f.dst}`), ['10.1.0.7>10.9.9.9']);
    for (const [line, re] of [
      ['{"v":1,"cmd":"flows","sort":"size"}', /^sort: /],
      ['{"v":1,"cmd":"flows","cursor":"c5"}', /^cursor: expected a cursor/],
      ['{"v":1,"cmd":"flows","filter":{"src":"10.1"}}', /^src: expected an address or a prefix/],
      ['{"v":1,"cmd":"flows","filter":{"port":80}}', /unknown field "port"/],
      ['{"v":1,"cmd":"flows","recent":"10.1.0.0/24"}', /^recent: expected an address/],
    ] as Array<[string, RegExp]>) {
      const r = parse(srv.answer(line));
      assert.equal(r.error?.code, 'BAD_REQUEST', line);
      assert.match(r.error!.message, re, line);
    }
  });

  it('a page looks at no more than the scan budget: a filter matching nothing returns at once with a cursor to go on', function () {
    assert.ok(SCAN_BUDGET > 45_797);
    const r = parse(srv.answer('{"v":1,"cmd":"conns","limit":1,"filter":{"dst":"192.0.2.0/24"}}'));
    assert.deepEqual(r.result, { conns: [], next: null, total: 45_797 });
    assert.deepEqual(pageConns(tracker, null, 0, 1, 1000, { dst: '192.0.2.0/24' }), { conns: [], next: 1000, total: 45_797 });
    assert.deepEqual(pageConns(tracker, null, 45_000, 1, 1000, { dst: '192.0.2.0/24' }), { conns: [], next: null, total: 45_797 });
    // filters: CIDR, state, protocol and port
    const udpConns = (parse(srv.answer('{"v":1,"cmd":"conns","limit":10000,"filter":{"proto":"udp","src":"10.1.0.0/24"}}')).result as { conns: unknown[] }).conns;
    assert.equal(udpConns.length, Math.ceil(256 / 7));
    const syn = parse(srv.answer('{"v":1,"cmd":"conns","limit":3,"filter":{"state":"syn_sent","port":80}}')).result as { conns: Array<{ state: string; orig: { dport: number } }> };
    assert.deepEqual(syn.conns.map((c) => [c.state, c.orig.dport]), [['SYN_SENT', 80], ['SYN_SENT', 80], ['SYN_SENT', 80]]);
  });

  it('through a real socket: 200 first pages at once and a 100k-deep id leave the server answering', async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-ctl-'));
    const sock = path.join(dir, 'ctl.sock');
    const s = new CtlServer(target(tracker), sock);
    await s.listen();
    try {
      const c = net.createConnection(sock);
      await new Promise((r) => c.once('connect', r));
      let buf = '';
      const lines: string[] = [];
      c.setEncoding('utf8');
      c.on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
      let reqs = '';
      for (let i = 0; i < 200; i++) reqs += '{"v":1,"cmd":"conns","limit":1}\n';
      reqs += `{"v":1,"id":${'['.repeat(100_000)}${']'.repeat(100_000)},"cmd":"hello"}\n{"v":1,"id":"last","cmd":"hello"}\n`;
      c.write(reqs);
      while (lines.length < 202) await new Promise((r) => setTimeout(r, 10));
      assert.ok(lines.slice(0, 200).every((l) => (parse(l).result as { conns: unknown[] }).conns.length === 1));
      assert.equal(parse(lines[200]!).error?.code, 'BAD_REQUEST');
      assert.deepEqual([parse(lines[201]!).id, parse(lines[201]!).ok], ['last', true]);
      c.destroy();
    } finally {
      await s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the socket is claimed before a daemon starts: a file or directory there is refused (and kept), a live daemon is refused by its PID, a stale socket is replaced; `tsvs run` on a taken socket exits 2 naming the PID', async function () {
    this.timeout(30000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-claim-'));
    try {
      const file = path.join(dir, 'a-file');
      fs.writeFileSync(file, 'keep me');
      await assert.rejects(CtlServer.claim(file), /exists and is not a socket \(a file\): refusing to replace it/);
      assert.equal(fs.readFileSync(file, 'utf8'), 'keep me');
      await assert.rejects(CtlServer.claim(dir), /not a socket \(a directory\)/);
      // a live daemon's socket
      const sock = path.join(dir, 'live.sock');
      const s = new CtlServer(target(tracker), sock);
      await s.listen();
      try {
        await assert.rejects(CtlServer.claim(sock), new RegExp(`another tsvs run is using it \\(pid ${process.pid}\\)`));
        // the real program, as a second daemon would start (it stops before capturing anything)
        const cfg = path.join(dir, 'lb.yaml');
        fs.writeFileSync(cfg, `live: { interfaces: [lo], socket: ${sock}, metrics: false }\nservices:\n  - { proto: tcp, vip: 127.0.0.9, port: 80, scheduler: rr, forward: nat, servers: [{ addr: 127.0.0.10, port: 80 }] }\n`);
        const r = await run(path.join(REPO, 'bin', 'tsvs'), ['run', '--config', cfg]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, new RegExp(`another tsvs run is using it \\(pid ${process.pid}\\)`));
        // and the first is still reachable
        assert.ok(fs.statSync(sock).isSocket());
        assert.equal(parse(s.answer('{"v":1,"cmd":"hello"}')).ok, true);
      } finally {
        await s.close();
      }
      assert.ok(!fs.existsSync(sock), 'close removed its own socket');
      // a stale socket: its process killed without cleaning up
      const stale = path.join(dir, 'stale.sock');
      const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`]);
      await new Promise<void>((r) => child.stdout.once('data', () => r()));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      assert.ok(fs.statSync(stale).isSocket());
      await CtlServer.claim(stale);
      assert.ok(!fs.existsSync(stale));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
