/** ctstat over a snapshot written by tsvs replay (bundled capture; tshark's conversation count as oracle). */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadFacts, REPO, run, tsvs } from '../helpers/corpus.js';

const CTSTAT = path.join(REPO, 'bin', 'ctstat');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-ctstat-'));
const snap = path.join(tmp, 'snap.json');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('ctstat', function () {
  this.timeout(60000);
  const fact = loadFacts()['tcp/dpkt-http.pcap']!; // the same bytes as pcaps/http-dns.pcap

  before(async function () {
    const r = await tsvs(['replay', '--snapshot', snap, path.join(REPO, 'pcaps', 'http-dns.pcap')]);
    assert.equal(r.code, 0, r.stderr);
  });

  it('-L lists every open connection with ipvsadm-style columns', async function () {
    const r = await run(CTSTAT, ['-L', '--snapshot', snap]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], 'IPVS connection entries');
    assert.match(lines[1]!, /^pro expire state\s+source\s+destination\s+reply source\s+reply destination$/);
    const rows = lines.slice(2);
    assert.equal(rows.length, fact.tcp_conversations! + fact.udp_conversations!);
    for (const row of rows) assert.match(row, /^(TCP|UDP) +\d\d+:\d\d +[A-Z_]+ +[\d.]+:\d+ +[\d.]+:\d+ +[\d.]+:\d+ +[\d.]+:\d+$/);
  });

  it('-o conntrack prints conntrack -L lines; filters select', async function () {
    const r = await run(CTSTAT, ['-L', '-o', 'conntrack', '--proto', 'tcp', '--snapshot', snap]);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, fact.tcp_conversations! + 1);
    for (const l of lines.slice(0, -1)) assert.match(l, /^tcp {6}6 \d+ [A-Z_]+ src=\S+ dst=\S+ sport=\d+ dport=\d+( \[UNREPLIED\])? src=\S+ dst=\S+ sport=\d+ dport=\d+( \[ASSURED\])? mark=0 use=1$/);
    const est = await run(CTSTAT, ['-L', '-o', 'json', '--state', 'established', '--snapshot', snap]);
    const conns = JSON.parse(est.stdout) as Array<{ state: string; orig: { dport: number } }>;
    assert.ok(conns.length >= 1 && conns.every((c) => c.state === 'ESTABLISHED'));
    const p53 = JSON.parse((await run(CTSTAT, ['-L', '-o', 'json', '--port', '53', '--snapshot', snap])).stdout) as unknown[];
    assert.equal(p53.length, fact.udp_conversations);
    const none = JSON.parse((await run(CTSTAT, ['-L', '-o', 'json', '--src', '192.0.2.99', '--snapshot', snap])).stdout) as unknown[];
    assert.equal(none.length, 0);
  });

  it('-S prints the nf_conntrack counters and gauges', async function () {
    const r = await run(CTSTAT, ['-S', '-o', 'json', '--snapshot', snap]);
    const j = JSON.parse(r.stdout) as { counters: Record<string, number>; gauges: { entries: number } };
    for (const k of ['found', 'new', 'invalid', 'insert', 'insert_failed', 'drop', 'early_drop', 'icmp_error', 'expired']) assert.ok(k in j.counters, k);
    assert.equal(j.counters.new, fact.tcp_conversations! + fact.udp_conversations!);
    assert.equal(j.gauges.entries, j.counters.new);
    const text = await run(CTSTAT, ['-S', '--snapshot', snap]);
    assert.match(text.stdout, /^counters$/m);
  });

  it('-l lists services and servers like ipvsadm -Ln; --stats their counters; -L shows each connection’s server', async function () {
    const cfg = path.join(tmp, 'lb.yaml');
    fs.writeFileSync(
      cfg,
      'services:\n  - proto: tcp\n    vip: 192.150.187.43\n    port: 80\n    scheduler: wrr\n    servers:\n      - { addr: 10.201.3.1, port: 8080, weight: 3 }\n      - { addr: 10.201.3.2, port: 8080, weight: 1 }\n',
    );
    const lbsnap = path.join(tmp, 'lbsnap.json');
    const r = await tsvs(['replay', '--config', cfg, '--snapshot', lbsnap, path.join(REPO, 'pcaps', 'http-get.pcap')]);
    assert.equal(r.code, 0, r.stderr);
    const l = (await run(CTSTAT, ['-l', '--snapshot', lbsnap])).stdout.trim().split('\n');
    assert.equal(l[1], 'Prot LocalAddress:Port Scheduler Flags');
    assert.equal(l[2], '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn');
    assert.equal(l[3], 'TCP  192.150.187.43:80 wrr');
    // the one connection ended in TIME_WAIT: inactive on the first server (wrr picks the heavier first)
    assert.match(l[4]!, /^ {2}-> 10\.201\.3\.1:8080 +Masq +3 +0 +1$/);
    assert.match(l[5]!, /^ {2}-> 10\.201\.3\.2:8080 +Masq +1 +0 +0$/);
    const st = (await run(CTSTAT, ['-l', '--stats', '--snapshot', lbsnap])).stdout.trim().split('\n');
    // 7 packets / 512 IP bytes in, 7 / 5379 out: Zeek's conn.log for this capture says the same
    assert.match(st[2]!, /^TCP {2}192\.150\.187\.43:80 +1 +7 +7 +512 +5379$/);
    const L = (await run(CTSTAT, ['-L', '--snapshot', lbsnap])).stdout.trim().split('\n');
    assert.match(L[2]!, /192\.150\.187\.43:80 +10\.201\.3\.1:8080 +141\.142\.228\.5:59856 +10\.201\.3\.1:8080$/);
  });

  it('--flows on a snapshot: each (source, destination) pair with the packets and IP bytes tshark counts; --top/--sort/--src/--recent; a snapshot without flows says so', async function () {
    const cap = path.join(REPO, 'pcaps', 'http-dns.pcap');
    const fsnap = path.join(tmp, 'flows-snap.json');
    const r0 = await tsvs(['replay', '--snapshot', fsnap, '--flows', path.join(tmp, 'f.jsonl'), cap]);
    assert.equal(r0.code, 0, r0.stderr);
    const t = await run('tshark', ['-n', '-r', cap, '-T', 'fields', '-E', 'separator=|', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'ip.len', '-E', 'occurrence=f']);
    const want = new Map<string, [number, number]>();
    for (const l of t.stdout.trim().split('\n')) {
      const [a, b, n] = l.split('|');
      const w = want.get(`${a}>${b}`) ?? [0, 0];
      want.set(`${a}>${b}`, [w[0] + 1, w[1] + Number(n)]);
    }
    const r = await run(CTSTAT, ['--flows', '-o', 'json', '--snapshot', fsnap]);
    assert.equal(r.code, 0, r.stderr);
    const flows = JSON.parse(r.stdout) as Array<{ src: string; dst: string; pkts: number; bytes: number }>;
    assert.deepEqual(new Map(flows.map((f) => [`${f.src}>${f.dst}`, [f.pkts, f.bytes]])), want);
    // largest first
    const byBytes = [...want.entries()].sort((a, b) => b[1][1] - a[1][1]);
    const top = (await run(CTSTAT, ['--flows', '--top', '2', '--snapshot', fsnap])).stdout.trim().split('\n');
    assert.equal(top.length, 3);
    assert.match(top[0]!, /^SOURCE +DESTINATION +PKTS +BYTES +FWD PKTS\/BYTES +TUN PKTS\/BYTES +DROPS$/);
    assert.deepEqual(top.slice(1).map((l) => l.split(/ +/).slice(0, 4).join(' ')), byBytes.slice(0, 2).map(([k, v]) => `${k.replace('>', ' ')} ${v[0]} ${v[1]}`));
    const one = byBytes[0]![0].split('>')[0]!;
    const src = JSON.parse((await run(CTSTAT, ['--flows', '-o', 'json', '--src', `${one}/32`, '--snapshot', fsnap])).stdout) as Array<{ src: string }>;
    assert.equal(src.length, [...want.keys()].filter((k) => k.startsWith(`${one}>`)).length);
    const rec = JSON.parse((await run(CTSTAT, ['--flows', '-o', 'json', '--recent', one, '--snapshot', fsnap])).stdout) as Array<{ src: string }>;
    assert.equal(rec.length, src.length);
    const none = await run(CTSTAT, ['--flows', '--snapshot', snap]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no flows in this snapshot/);
    const bad = await run(CTSTAT, ['--flows', '--sort', 'size', '--snapshot', fsnap]);
    assert.deepEqual([bad.code, bad.stderr.trim()], [2, 'ctstat: --sort: expected bytes, pkts or drops, got "size"']);
  });

  it('errors: no source, unreadable or foreign file, bad option values: one line, exit 2', async function () {
    const junk = path.join(tmp, 'junk.json');
    fs.writeFileSync(junk, '{"hello": 1}');
    for (const args of [['-L'], ['-L', '--snapshot', path.join(tmp, 'nope')], ['-L', '--snapshot', junk], ['-L', '-o', 'xml', '--snapshot', snap], ['--snapshot', snap], ['-L', '--port', 'x', '--snapshot', snap]]) {
      const r = await run(CTSTAT, args);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^ctstat: /);
    }
  });
});
