/**
 * `tsvs replay --report OUT.html` (issue 22): the real program writes the page; its data is checked against
 * independent oracles (capinfos/tshark counts and conversations, the wrr weights), and the page is opened in
 * Debian's headless Chromium with every request but the page blocked and counted: no console error, every
 * chart drew its data (pixels in its series' colours), a screenshot under test-output/.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ReportData } from '../../src/report/report.js';
import type { SampledSeries } from '../../src/report/sampler.js';
import { CORPUS, REPO, loadFacts, run, tsvs } from '../helpers/corpus.js';
import { CHROMIUM, openReport, type PageCheck } from '../helpers/browser.js';
import { eth, ipv4, pcapFile, udp, type Rec } from '../helpers/packets.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-report-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
/** screenshots stay after the run (CI keeps the work tree's test-output/) */
const SHOTS = path.join(REPO, 'test-output', 'report');

function dataOf(html: string): ReportData {
  const m = /<script id="data" type="application\/json">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, 'no data element in the page');
  return JSON.parse(m[1]!) as ReportData;
}

function series(d: ReportData, group: string, name: string): SampledSeries {
  const s = d.samples.series.find((x) => x.group === group && x.name === name);
  assert.ok(s, `no series ${group}/${name} (have ${d.samples.series.map((x) => `${x.group}/${x.name}`).join(', ')})`);
  return s;
}

/** the count a rate series adds up to over the points (rates are rounded to 4 digits: close, not exact) */
function integral(d: ReportData, s: SampledSeries): number {
  let n = 0;
  for (let i = 1; i < s.values.length; i++) n += s.values[i]! * (d.samples.t[i]! - d.samples.t[i - 1]!);
  return n;
}

async function report(args: string[], name: string): Promise<{ html: string; data: ReportData; stdout: string }> {
  const out = path.join(tmp, `${name}.html`);
  const r = await tsvs(['replay', ...args, '--report', out]);
  assert.equal(r.code, 0, r.stderr);
  const html = fs.readFileSync(out, 'utf8');
  return { html, data: dataOf(html), stdout: r.stdout };
}

async function inBrowser(name: string, html: string): Promise<PageCheck> {
  const file = path.join(tmp, `${name}.html`);
  fs.writeFileSync(file, html);
  fs.mkdirSync(SHOTS, { recursive: true });
  const shot = path.join(SHOTS, `${name}.png`);
  const p = await openReport(file, shot);
  assert.deepEqual(p.blocked, [], 'the page asked for something outside itself');
  assert.deepEqual(p.errors, [], 'console errors');
  assert.ok(p.charts.length > 0, 'no chart');
  for (const c of p.charts) {
    assert.ok(c.points >= 2, `${c.title}: ${c.points} points`);
    assert.ok(c.dataPixels >= 40, `${c.title}: only ${c.dataPixels} pixels in its series' colours`);
  }
  assert.ok(fs.statSync(shot).size > 10_000, 'screenshot');
  return p;
}

const ECHO = path.join(CORPUS, 'perf', 'zeek-echo-connections.pcap.gz');

describe('replay report (--report)', function () {
  this.timeout(300_000);
  before(function () {
    if (!CHROMIUM && !process.env.CI) this.skip(); // CI installs Debian's chromium (scripts/setup.sh): never skipped there
  });

  it('500 echo connections through wrr 3:2:1: totals, open connections and durations as tshark sees them; drawn in Chromium', async () => {
    const conf = path.join(tmp, 'echo.yaml');
    fs.writeFileSync(
      conf,
      'services:\n  - { proto: tcp, vip: 127.0.0.1, port: 7000, scheduler: wrr, forward: nat, servers: [{ addr: 10.0.0.1, port: 7000, weight: 3 }, { addr: 10.0.0.2, port: 7000, weight: 2 }, { addr: 10.0.0.3, port: 7000, weight: 1 }] }\n',
    );
    const { html, data } = await report(['--config', conf, '--flows', '/dev/null', ECHO], 'echo');
    const fact = loadFacts()['perf/zeek-echo-connections.pcap.gz']!;
    // packets: exact total (capinfos' count in facts.json), and the rates add up to it
    const pk = series(data, 'traffic', 'packets');
    assert.equal(pk.total, fact.packets);
    assert.ok(Math.abs(integral(data, pk) - fact.packets!) < fact.packets! * 0.005, `rates add up to ${integral(data, pk)}`);
    assert.equal(series(data, 'new', 'tcp').total, fact.tcp_conversations);
    assert.ok(data.samples.t.length >= 500 && data.samples.t.length <= 1000, `${data.samples.t.length} points`);
    assert.equal(data.samples.t[0]!.toFixed(6), fact.first_timestamp!.replace(/(\.\d{6})\d*$/, '$1'));

    // tshark's conversations: at every point, each conversation that had begun (by then) and not yet ended is open
    const conv = await run('tshark', ['-n', '-r', ECHO, '-q', '-z', 'conv,tcp']);
    const spans: Array<[number, number]> = [];
    for (const line of conv.stdout.split('\n')) {
      const m = /<->.*\s(\d+\.\d+)\s+(\d+\.\d+)\s*$/.exec(line);
      if (m) spans.push([Number(m[1]), Number(m[1]) + Number(m[2])]);
    }
    assert.equal(spans.length, 500);
    const t0 = Number(fact.first_timestamp);
    const open = series(data, 'open_proto', 'tcp');
    data.samples.t.forEach((t, i) => {
      const rel = t - t0;
      const active = spans.filter(([a, b]) => a < rel - 0.001 && b > rel).length;
      assert.ok(open.values[i]! >= active, `at +${rel.toFixed(3)} s: ${open.values[i]} open, tshark has ${active} conversations going on`);
    });
    // the longest connections: tshark's longest conversations (first to last packet)
    const longest = spans.map(([a, b]) => b - a).sort((a, b) => b - a);
    data.conns.duration.slice(0, 5).forEach((c, i) => assert.ok(Math.abs(c.duration - longest[i]!) < 6e-5, `${i}: ${c.duration} vs tshark (4 decimals) ${longest[i]}`));
    // the service: 500 connections at 3:2:1 (wrr: 83 cycles of A A B A B C, then A A)
    const svc = data.services[0]!;
    assert.deepEqual(
      svc.servers.map((x) => [x.server, x.conns]),
      [
        ['10.0.0.1:7000', 251],
        ['10.0.0.2:7000', 166],
        ['10.0.0.3:7000', 83],
      ],
    );
    for (const x of svc.servers) assert.ok(Math.abs(x.conn_share - x.weight_share) < 0.01);
    assert.equal(data.flows?.bytes[0]?.src, '127.0.0.1');
    assert.match(data.command, /^tsvs replay --config \S+echo\.yaml --flows \/dev\/null \S+zeek-echo-connections\.pcap\.gz --report \S+echo\.html$/);
    assert.match(data.config!, /scheduler: wrr/);
    assert.match(data.summary, /conns {5}500 tracked/);

    const p = await inBrowser('echo', html);
    const titles = p.charts.map((c) => c.title);
    for (const t of ['Connections open, by protocol', 'Connections open, by state', 'New connections per second', 'Packets per second', 'Flows open']) assert.ok(titles.includes(t), `missing chart ${t}`);
    assert.ok(titles.some((t) => /127\.0\.0\.1:7000: new connections per second, by server/.test(t)));
    assert.ok(p.readyMs < 2000, `ready after ${p.readyMs} ms`);
  });

  it('synproxy under a SYN flood: the synproxy chart counts every SYN tshark counts', async () => {
    const cap = path.join(REPO, 'pcaps', 'stopddos-dominate-syn.pcap');
    const { html, data } = await report(['--config', path.join(REPO, 'examples', 'sp.yaml'), cap], 'synproxy');
    const syns = await run('tshark', ['-n', '-r', cap, '-Y', 'tcp.flags.syn==1 && tcp.flags.ack==0']);
    assert.equal(series(data, 'synproxy', 'SYNPROXY_SYN_CNT').total, syns.stdout.trim().split('\n').length);
    const p = await inBrowser('synproxy', html);
    assert.ok(p.charts.some((c) => c.title === 'Synproxy counters per second'));
  });

  it('ICMP errors: as many as tshark finds (ICMPv6 types below 128)', async () => {
    const cap = path.join(CORPUS, 'icmp', 'zeek-communityid-icmp6.pcap');
    const { html, data } = await report([cap], 'icmp');
    const errs = await run('tshark', ['-n', '-r', cap, '-Y', 'icmpv6.type < 128']);
    assert.equal(series(data, 'icmp', 'ICMP errors seen').total, errs.stdout.trim().split('\n').length);
    assert.equal(data.services.length, 0);
    const p = await inBrowser('icmp', html);
    assert.ok(p.charts.some((c) => c.title === 'ICMP errors per second'));
  });

  it('a capture of 10 hours keeps between 500 and 1000 points, and exact totals', async () => {
    const recs: Rec[] = [];
    for (let i = 0; i < 36_000; i++) recs.push({ sec: 1_700_000_000 + i, frac: (i * 7919) % 1_000_000, data: eth(0x0800, ipv4({ src: '192.0.2.1', dst: '198.51.100.1', proto: 17 }, udp({ src: '192.0.2.1', dst: '198.51.100.1', sport: 1000 + (i % 50), dport: 53 }))) });
    const cap = path.join(tmp, 'long.pcap');
    fs.writeFileSync(cap, pcapFile(recs));
    const { data } = await report([cap], 'long');
    const n = data.samples.t.length;
    assert.ok(n >= 500 && n <= 1000, `${n} points`);
    assert.equal(series(data, 'traffic', 'packets').total, 36_000);
    assert.ok(Math.abs(integral(data, series(data, 'traffic', 'packets')) - 36_000) < 36, 'rates add up');
    // evenly spaced: every gap is the final interval (a sample lands on the first packet of its interval)
    const gaps = data.samples.t.slice(1, -1).map((t, i) => t - data.samples.t[i]!);
    assert.ok(gaps.every((g) => g > data.samples.interval * 0.5 && g < data.samples.interval * 1.5), `interval ${data.samples.interval}`);
  });

  it('one report per input with {}; an input is never overwritten; a broken capture still gets the report of what was read', async () => {
    const a = path.join(REPO, 'pcaps', 'http-get.pcap');
    const b = path.join(REPO, 'pcaps', 'http-dns.pcap');
    const r1 = await tsvs(['replay', a, b, '--report', path.join(tmp, 'two.html')]);
    assert.equal(r1.code, 2, r1.stderr);
    assert.match(r1.stderr, /put \{\} in the name/);
    const r2 = await tsvs(['replay', a, b, '--report', path.join(tmp, 'r-{}.html')]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok(fs.existsSync(path.join(tmp, 'r-http-get.html')) && fs.existsSync(path.join(tmp, 'r-http-dns.html')));
    const copy = path.join(tmp, 'in.pcap');
    fs.copyFileSync(a, copy);
    const r3 = await tsvs(['replay', copy, '--report', copy]);
    assert.notEqual(r3.code, 0);
    assert.match(r3.stderr, /refusing to overwrite/);
    assert.deepEqual(fs.readFileSync(copy), fs.readFileSync(a));
    // cut in the middle of the last record (a warning, as tcpdump gives), and a replay that fails at record 8:
    // each report holds the packets before
    const cut = path.join(tmp, 'cut.pcap');
    const full = fs.readFileSync(a);
    fs.writeFileSync(cut, full.subarray(0, full.length - 10));
    const r4 = await tsvs(['replay', cut, '--report', path.join(tmp, 'cut.html')]);
    assert.equal(r4.code, 0, r4.stderr);
    assert.match(r4.stderr, /file cut inside record 14/);
    assert.equal(series(dataOf(fs.readFileSync(path.join(tmp, 'cut.html'), 'utf8')), 'traffic', 'packets').total, 13);
    const r5 = await tsvs(['replay', a, '--report', path.join(tmp, 'fault.html')], { TSVS_TEST_FAULT_RECORD: '8' });
    assert.notEqual(r5.code, 0);
    const d = dataOf(fs.readFileSync(path.join(tmp, 'fault.html'), 'utf8'));
    assert.equal(series(d, 'traffic', 'packets').total, 7);
    assert.match(d.summary, /internal error/);
  });
});
