/**
 * Replay with worker threads (issue 20) against replay with one: the same per-connection records (tuples,
 * packets, bytes, final state, history, times) and the same counters, over corpus captures; the load
 * balancer's output pcap counted and ordered by capinfos; NAT replies that a tuple hash sends to the wrong
 * worker redirected to the connection's owner.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CORPUS, haveTool, REPO, run, tsvs } from '../helpers/corpus.js';
import { eth, ipv4, pcapFile, tcp, udp, type Rec } from '../helpers/packets.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-workers-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** replay with `workers`: the summary (its workers part apart) and the connection records, sorted */
async function replay(file: string, workers: number, extra: string[] = []): Promise<{ summary: Record<string, unknown>; records: string[]; events: number; workers?: { n: number; packets: number[]; redirected: number } }> {
  const conns = path.join(tmp, `c-${workers}-${Math.random().toString(36).slice(2)}.json`);
  const events = path.join(tmp, `e-${workers}-${Math.random().toString(36).slice(2)}.json`);
  const r = await tsvs(['replay', file, '--json', '--conns', conns, '--events', events, '--workers', String(workers), ...extra]);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as Record<string, unknown>;
  const w = summary.workers as { n: number; packets: number[]; redirected: number } | undefined;
  delete summary.workers;
  const records = fs
    .readFileSync(conns, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.stringify(JSON.parse(l)))
    .sort();
  return { summary, records, events: fs.readFileSync(events, 'utf8').split('\n').filter(Boolean).length, workers: w };
}

describe('replay with workers (tsvs replay --workers N)', function () {
  this.timeout(180000);

  const captures = ['mixed/zeek-wikipedia.pcap', 'mixed/ndpi-1kxun.pcap', 'mixed/ndpi-gnutella.pcap', 'icmp/dpkt-dns_icmp.pcap', 'icmp/zeek-icmp-destunreach-udp.pcap', 'ipv6/arkime-v6.pcap', 'tcp/zeek-http-get.pcap'];
  for (const c of captures) {
    it(`${c}: 3 workers make the records and counters 1 does (netfilter profile)`, async () => {
      const file = path.join(CORPUS, c);
      const one = await replay(file, 1, ['--profile', 'netfilter']);
      const three = await replay(file, 3, ['--profile', 'netfilter']);
      assert.ok(one.records.length > 0 || c.includes('destunreach'), 'records to compare');
      assert.deepEqual(three.records, one.records);
      assert.deepEqual(three.summary, one.summary);
      assert.equal(three.events, one.events);
      assert.equal(three.workers!.n, 3);
      // the records were spread: every packet went to exactly one worker
      assert.equal(three.workers!.packets.reduce((a, b) => a + b, 0), one.summary.packets);
    });
  }

  it('the whole corpus directory of pcapng and nanosecond captures: the same counters with 2 workers', async () => {
    for (const dir of ['pcapng', 'nanosecond']) {
      for (const f of fs.readdirSync(path.join(CORPUS, dir)).filter((x) => /\.(pcap|pcapng)$/.test(x))) {
        const file = path.join(CORPUS, dir, f);
        const a = await tsvs(['replay', file, '--json', '--profile', 'netfilter']);
        const b = await tsvs(['replay', file, '--json', '--profile', 'netfilter', '--workers', '2']);
        assert.equal(b.code, a.code, `${f}: ${b.stderr}`);
        if (a.code !== 0) continue;
        const sa = JSON.parse(a.stdout) as Record<string, unknown>;
        const sb = JSON.parse(b.stdout) as Record<string, unknown>;
        delete sb.workers;
        assert.deepEqual(sb, sa, f);
      }
    }
  });

  it('FNAT with a hash scheduler: the same connections, per-server counts and emitted packets; the output pcap in time order (capinfos)', async () => {
    if (!haveTool('capinfos')) throw new Error('capinfos (tshark) is required');
    const cfg = path.join(tmp, 'fnat-mh.yaml');
    fs.writeFileSync(cfg, fs.readFileSync(path.join(REPO, 'bench/lb.yaml'), 'utf8').replaceAll('scheduler: wrr', 'scheduler: mh'));
    // clients 10.0.0.x to VIPs 192.168.1.0-7 (the bench's generator, small)
    const { generate } = await import('../../bench/gen.js');
    const cap = path.join(tmp, 'gen.pcap');
    generate(cap, { packets: 60000, flows: 3000, perFlow: 20 });
    const outs: string[] = [];
    const sums: Array<Record<string, unknown>> = [];
    for (const n of [1, 2]) {
      const out = path.join(tmp, `out-${n}.pcap`);
      const r = await tsvs(['replay', cap, '--config', cfg, '--out', out, '--json', '--workers', String(n)]);
      assert.equal(r.code, 0, r.stderr);
      sums.push(JSON.parse(r.stdout) as Record<string, unknown>);
      outs.push(out);
    }
    const lb = sums.map((s) => s.lb as { emitted: number; services: Array<{ conns: number; servers: Array<{ server: string; conns: number; in_pkts: number }> }> });
    assert.equal(lb[1]!.emitted, lb[0]!.emitted);
    assert.ok(lb[0]!.emitted > 50000);
    assert.deepEqual(
      lb[1]!.services.map((s) => s.servers.map((x) => [x.server, x.conns, x.in_pkts])),
      lb[0]!.services.map((s) => s.servers.map((x) => [x.server, x.conns, x.in_pkts])),
    );
    assert.deepEqual(sums[1]!.conns, sums[0]!.conns);
    for (const out of outs) {
      const ci = await run('capinfos', ['-M', '-c', '-o', out]);
      assert.match(ci.stdout, new RegExp(`Number of packets:\\s+${lb[0]!.emitted}\\n`));
      assert.match(ci.stdout, /Strict time order:\s+True/);
    }
  });

  it('NAT, tuple dispatch: replies hashed to another worker are redirected to the owner; the records are those of one worker', async () => {
    // 40 clients to a NAT VIP 192.0.2.10:80 with 2 servers; each server answers from its own address and port
    const cfg = path.join(tmp, 'nat.yaml');
    fs.writeFileSync(cfg, 'services:\n  - proto: tcp\n    vip: 192.0.2.10\n    port: 80\n    scheduler: sh\n    forward: nat\n    servers:\n      - { addr: 10.9.0.1, port: 8080 }\n      - { addr: 10.9.0.2, port: 8080 }\n');
    const recs: Rec[] = [];
    let t = 0;
    const add = (src: string, dst: string, sport: number, dport: number, flags: number, seq: number, ack: number) => {
      t += 1000;
      recs.push({ sec: 1700000000 + Math.floor(t / 1e6), frac: t % 1e6, data: eth(0x0800, ipv4({ src, dst, proto: 6 }, tcp({ src, dst, sport, dport, flags, seq, ack }))) });
    };
    // which server sh picks is the engine's business: the capture carries both servers' answers, only the
    // scheduled one's matches its connection (the other is a packet of no connection, the same in both runs)
    for (let i = 0; i < 40; i++) {
      const c = `10.1.${i >> 4}.${(i & 15) + 1}`;
      const cp = 30000 + i;
      add(c, '192.0.2.10', cp, 80, 0x02, 100, 0);
      for (const rs of ['10.9.0.1', '10.9.0.2']) add(rs, c, 8080, cp, 0x12, 500, 101);
      add(c, '192.0.2.10', cp, 80, 0x10, 101, 501);
    }
    const cap = path.join(tmp, 'nat.pcap');
    fs.writeFileSync(cap, pcapFile(recs));
    const one = await replay(cap, 1, ['--config', cfg]);
    const two = await replay(cap, 2, ['--config', cfg, '--dispatch', 'tuple']);
    assert.ok(two.workers!.redirected > 0, `redirected: ${two.workers!.redirected}`);
    assert.deepEqual(two.records, one.records);
    assert.deepEqual(two.summary, one.summary);
    // every connection saw its server's SYN-ACK: replied, in the state the ACK after it leads to
    const rows = one.records.map((l) => JSON.parse(l) as { replied: boolean });
    assert.equal(rows.length, 40); // (the other server's answers belong to no connection)
    assert.equal(rows.filter((x) => x.replied).length, 40);
    // service dispatch (the default) needs no redirect for the same traffic
    const svc = await replay(cap, 2, ['--config', cfg]);
    assert.equal(svc.workers!.redirected, 0);
    assert.deepEqual(svc.records, one.records);
  });

  it('synproxy (NAT, the README\'s example over a SYN flood): the output pcap byte for byte that of one worker', async () => {
    const outs: Buffer[] = [];
    for (const n of [1, 2]) {
      const out = path.join(tmp, `sp-${n}.pcap`);
      const r = await tsvs(['replay', path.join(REPO, 'pcaps/stopddos-dominate-syn.pcap'), '--config', path.join(REPO, 'examples/sp.yaml'), '--out', out, '--workers', String(n)]);
      assert.equal(r.code, 0, r.stderr);
      outs.push(fs.readFileSync(out));
    }
    assert.ok(outs[0]!.length > 100000, `${outs[0]!.length} bytes`); // (thousands of SYN-ACKs the synproxy made)
    assert.ok(outs[1]!.equals(outs[0]!), 'the same bytes');
  });

  it('--snapshot: the union of the lanes\' tables and their summed counters, as one worker writes it (ctstat -S, -L)', async () => {
    const file = path.join(CORPUS, 'mixed/ndpi-1kxun.pcap');
    const snaps: Array<Record<string, unknown>> = [];
    const stats: string[] = [];
    const lists: string[] = [];
    for (const n of [1, 2]) {
      const out = path.join(tmp, `snap-${n}.json`);
      const r = await tsvs(['replay', file, '--profile', 'netfilter', '--snapshot', out, '--workers', String(n)]);
      assert.equal(r.code, 0, r.stderr);
      const doc = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<string, unknown> & { conns: unknown[] };
      doc.conns = doc.conns.map((c) => JSON.stringify(c)).sort();
      snaps.push(doc);
      const ctstat = path.join(REPO, 'bin/ctstat');
      stats.push((await run(ctstat, ['-S', '-o', 'json', '--snapshot', out])).stdout);
      lists.push((await run(ctstat, ['-L', '--snapshot', out])).stdout.split('\n').sort().join('\n'));
    }
    assert.ok((snaps[0]!.conns as unknown[]).length > 50);
    assert.deepEqual(snaps[1], snaps[0]);
    assert.equal(stats[1], stats[0]);
    assert.equal(lists[1], lists[0]);
  });

  it('the text summary says how many lanes and what each processed', async () => {
    const r = await tsvs(['replay', path.join(REPO, 'pcaps/http-dns.pcap'), '--workers', '3', '--profile', 'netfilter', '--no-color']);
    assert.equal(r.code, 0, r.stderr);
    const m = /^workers\s+3 lanes \(service dispatch\), packets (\d+) \/ (\d+) \/ (\d+)$/m.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.equal(Number(m[1]) + Number(m[2]) + Number(m[3]), 43);
  });

  it('refuses what it does not do yet, before writing anything', async () => {
    const out = path.join(tmp, 'never.html');
    const r = await tsvs(['replay', path.join(CORPUS, 'mixed/zeek-wikipedia.pcap'), '--workers', '2', '--report', out]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--report does not work with several workers yet/);
    assert.equal(fs.existsSync(out), false);
    const bad = await tsvs(['replay', path.join(CORPUS, 'mixed/zeek-wikipedia.pcap'), '--workers', '0']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--workers/);
  });
});

describe('replay with workers: bad input and failures', function () {
  this.timeout(60000);
  const wiki = path.join(CORPUS, 'mixed/zeek-wikipedia.pcap');

  it('a capture cut short: what was read is replayed, the same counts as one worker, exit 0', async () => {
    const cut = path.join(tmp, 'cut.pcap');
    fs.writeFileSync(cut, fs.readFileSync(wiki).subarray(0, 20000)); // (of 27,460 bytes)
    const a = await tsvs(['replay', cut, '--json', '--profile', 'netfilter']);
    const b = await tsvs(['replay', cut, '--json', '--profile', 'netfilter', '--workers', '2']);
    assert.equal(a.code, 0);
    assert.equal(b.code, 0, b.stderr);
    const sb = JSON.parse(b.stdout) as Record<string, unknown>;
    delete sb.workers;
    assert.deepEqual(sb, JSON.parse(a.stdout)); // (its warnings too)
    assert.ok((sb.warnings as string[]).some((w) => /cut/.test(w)), JSON.stringify(sb.warnings));
  });

  it('a record the engine fails on in a worker: one line naming the record, exit 70, no hang', async () => {
    const r = await tsvs(['replay', wiki, '--workers', '2', '--json'], { ...process.env, TSVS_TEST_FAULT_RECORD: '50' });
    assert.equal(r.code, 70);
    assert.match(r.stderr, /^tsvs: internal error: .*zeek-wikipedia\.pcap: record 50 at byte offset \d+: injected fault/m);
    assert.equal((r.stderr.match(/record 50/g) ?? []).length, 1);
  });

  it('a worker thread that ends without a word (as at its heap limit): one line naming the lane, exit 70, no hang', async () => {
    const t = Date.now();
    const r = await tsvs(['replay', wiki, '--workers', '2', '--json'], { ...process.env, TSVS_TEST_EXIT_RECORD: '50' });
    assert.equal(r.code, 70, r.stderr);
    assert.match(r.stderr, /^tsvs: internal error: .*zeek-wikipedia\.pcap: worker 1's thread ended without a word .*\(lane 1 of 2;/m);
    assert.ok(Date.now() - t < 20000, 'the reader noticed');
  });

  it("a worker thread that cannot start (its file missing from the install): the module's error in one line, exit 70, no hang", async () => {
    // a copy of the built program without worker.js; before the reader knew the worker thread's id from its
    // start, it waited for that worker for ever (the thread ended before it could say who it was)
    const inst = fs.mkdtempSync(path.join(tmp, 'inst-'));
    fs.cpSync(path.join(REPO, 'dist/bundle'), path.join(inst, 'bundle'), { recursive: true });
    fs.rmSync(path.join(inst, 'bundle/worker.js'));
    fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(inst, 'node_modules'));
    fs.copyFileSync(path.join(REPO, 'package.json'), path.join(inst, 'package.json'));
    const t = Date.now();
    for (const cap of [path.join(REPO, 'pcaps/http-get.pcap'), wiki]) {
      const r = await run(process.execPath, [path.join(inst, 'bundle/tsvs.js'), 'replay', cap, '--workers', '2'], { timeout: 30000 });
      assert.equal(r.code, 70, r.stderr);
      assert.match(r.stderr, /^tsvs: internal error: .*: worker thread: Cannot find module '.*worker\.js' \(lane 1 of 2;/m);
    }
    assert.ok(Date.now() - t < 20000, 'the reader noticed');
  });

  it('records larger than a window (up to the 262,144-byte snap length) among small ones: the same as one worker', async () => {
    const recs: Rec[] = [];
    for (let i = 0; i < 200; i++) {
      const big = i % 50 === 7;
      const payload = new Uint8Array(big ? 262144 - 14 - 20 - 8 : 60);
      recs.push({ sec: 1700000000 + i, frac: 0, data: eth(0x0800, ipv4({ src: `10.0.${i % 7}.1`, dst: '10.9.9.9', proto: 17 }, udp({ src: `10.0.${i % 7}.1`, dst: '10.9.9.9', sport: 1000 + (i % 13), dport: 53 }, payload))) });
    }
    const cap = path.join(tmp, 'big.pcap');
    fs.writeFileSync(cap, pcapFile(recs, { snaplen: 262144 }));
    const one = await replay(cap, 1, ['--profile', 'netfilter']);
    const two = await replay(cap, 2, ['--profile', 'netfilter']);
    assert.equal(one.summary.packets, 200);
    assert.deepEqual(two.records, one.records);
    assert.deepEqual(two.summary, one.summary);
  });

  it('a gzip-compressed capture and one on standard input: the same as one worker', async () => {
    const src = path.join(CORPUS, 'mixed/ndpi-1kxun.pcap');
    const gz = path.join(tmp, 'k.pcap.gz');
    await run('sh', ['-c', `gzip -c '${src}' > '${gz}'`]);
    const one = await replay(src, 1, ['--profile', 'netfilter']);
    const zipped = await replay(gz, 2, ['--profile', 'netfilter']);
    assert.equal(zipped.summary.compressed, true);
    zipped.summary.compressed = false;
    zipped.summary.file = one.summary.file;
    assert.deepEqual(zipped.records, one.records);
    assert.deepEqual(zipped.summary, one.summary);
    const piped = await run('sh', ['-c', `cat '${src}' | '${path.join(REPO, 'bin/tsvs')}' replay - --json --profile netfilter --workers 3`]);
    assert.equal(piped.code, 0, piped.stderr);
    const sp = JSON.parse(piped.stdout) as Record<string, unknown>;
    assert.deepEqual([sp.packets, sp.conns, sp.conntrack], [one.summary.packets, one.summary.conns, one.summary.conntrack]);
  });

  it('a capture out of time order (records going back by up to 40 s): the same records and counters as one worker', async () => {
    // 60 UDP flows with a 30 s timeout (udp_unreplied): whether a flow has expired when its next packet comes
    // depends on the engine's clock, which stays at the latest time so far, as one engine's would
    const recs: Rec[] = [];
    for (let i = 0; i < 600; i++) {
      const back = i % 7 === 3 ? 40 : 0;
      const t = 1700000000 + i * 0.5 - back;
      const c = `10.2.${i % 60}.1`;
      recs.push({ sec: Math.floor(t), frac: Math.round((t % 1) * 1e6), data: eth(0x0800, ipv4({ src: c, dst: '10.9.9.9', proto: 17 }, udp({ src: c, dst: '10.9.9.9', sport: 4000, dport: 53 }, new Uint8Array(8)))) });
    }
    const cap = path.join(tmp, 'unsorted.pcap');
    fs.writeFileSync(cap, pcapFile(recs));
    const one = await replay(cap, 1, ['--profile', 'netfilter']);
    const two = await replay(cap, 2, ['--profile', 'netfilter']);
    assert.ok((one.summary.conntrack as Record<string, number>).expired! > 0, "flows expire on the way");
    assert.deepEqual(two.records, one.records);
    assert.deepEqual(two.summary, one.summary);
  });

  it('not a capture: one line, exit 2', async () => {
    const g = path.join(tmp, 'g.pcap');
    fs.writeFileSync(g, 'garbage-not-a-pcap-file');
    const r = await tsvs(['replay', g, '--workers', '2']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a pcap or pcapng file/);
  });
});
