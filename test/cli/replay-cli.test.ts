/** `bin/tsvs replay` as a user runs it: exit codes, one-line errors, truncated captures (tshark as oracle). */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CORPUS, haveTool, REPO, run, tsvs } from '../helpers/corpus.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-cli-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function tsharkCount(file: string): Promise<number> {
  const r = await run('tshark', ['-n', '-r', file, '-T', 'fields', '-e', 'frame.number']);
  return r.stdout.split('\n').filter(Boolean).length;
}

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l && !l.startsWith('tsvs: warning:'));
}

describe('tsvs replay (CLI)', function () {
  this.timeout(120000);

  it('prints a readable table by default and JSON with --json', async function () {
    const f = path.join(CORPUS, 'tcp/zeek-http-get.pcap');
    const t = await tsvs(['replay', f]);
    assert.equal(t.code, 0);
    assert.match(t.stdout, /packets\s+14\b/);
    assert.match(t.stdout, /decoded\s+ipv4 14\s+ipv6 0\s+tcp 14/);
    const j = await tsvs(['replay', '--json', f]);
    const o = JSON.parse(j.stdout) as Record<string, unknown>;
    for (const k of ['file', 'format', 'linktypes', 'packets', 'bytes', 'first_ts', 'last_ts', 'decoded', 'drops', 'warnings']) assert.ok(k in o, k);
    assert.deepEqual(Object.keys(o.decoded as object).sort(), ['fragments', 'icmp', 'icmpv6', 'ipv4', 'ipv6', 'other', 'tcp', 'udp']);
  });

  it('--verify-checksums agrees with the Zeek checksum samples (bad ones counted, good ones clean, IPv6 routing headers included)', async function () {
    const dir = path.join(CORPUS, 'malformed');
    const files = fs.readdirSync(dir).filter((f) => /^zeek-chksum-.*\.pcap$/.test(f));
    assert.equal(files.length, 19);
    for (const f of files) {
      const r = await tsvs(['replay', '--json', '--verify-checksums', path.join(dir, f)]);
      const c = JSON.parse(r.stdout).checksums as { ipv4_bad: number; l4_bad: number; l4_unverified: number };
      const bad = f.includes('-bad');
      const ipHeader = f === 'zeek-chksum-ip4-bad.pcap';
      assert.deepEqual(c, { ipv4_bad: bad && ipHeader ? 1 : 0, l4_bad: bad && !ipHeader ? 1 : 0, l4_unverified: 0 }, f);
    }
  });

  for (const src of ['tcp/zeek-http-get.pcap', 'pcapng/zeek-pcapng-multi-interface.pcapng', 'ipv6/zeek-ftp-ipv6.pcap']) {
    it(`hand-cut truncations of ${src}: whole records, a warning, exit 0 (tshark counts the same packets)`, async function () {
      if (!haveTool('tshark')) this.skip();
      const img = fs.readFileSync(path.join(CORPUS, src));
      const cuts = [0.13, 0.29, 0.5, 0.77, 0.91].map((x) => Math.floor(img.length * x)).concat([img.length - 1]);
      for (const cut of cuts) {
        const p = path.join(tmp, `cut-${cut}-${path.basename(src)}`);
        fs.writeFileSync(p, img.subarray(0, cut));
        const r = await tsvs(['replay', '--json', p]);
        assert.equal(r.code, 0, `${p}: ${r.stderr}`);
        assert.equal(errorLines(r.stderr).length, 0);
        assert.match(r.stderr, /tsvs: warning: .* file cut inside/);
        assert.equal(JSON.parse(r.stdout).packets, await tsharkCount(p), `cut at ${cut}`);
      }
    });
  }

  it('bad files: one stderr line naming the file and where, exit 2, no stack trace', async function () {
    const empty = path.join(tmp, 'empty.pcap');
    fs.writeFileSync(empty, '');
    const junk = path.join(tmp, 'junk.pcap');
    fs.writeFileSync(junk, 'this is not a capture file at all');
    const cases: Array<[string, RegExp]> = [
      [empty, /empty\.pcap: byte offset 0: empty file/],
      [junk, /junk\.pcap: byte offset 0: not a pcap or pcapng file/],
      [tmp, /is a directory/],
      [path.join(tmp, 'missing.pcap'), /missing\.pcap: open: no such file/],
      [path.join(CORPUS, 'malformed/suricata-tls_DER-incomplete-header-corrupt-record.pcap'), /record 7 at byte offset \d+: corrupt record header.*\(after 6 packets\)/],
      [path.join(CORPUS, 'malformed/libpcap-shb-option-too-long.pcapng'), /block 1 at byte offset 0: block total length in header \d+ and trailer \d+ don't match/],
    ];
    for (const [f, re] of cases) {
      const r = await tsvs(['replay', f]);
      assert.equal(r.code, 2, f);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, re);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });

  it('a bad file among good ones: the good ones are still reported, exit 2', async function () {
    const good = path.join(CORPUS, 'udp/tcpdump-dns_udp.pcap');
    const r = await tsvs(['replay', '--json', good, path.join(tmp, 'missing.pcap'), good]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout.trim().split('\n').length, 2);
  });

  it('a corrupt record mid-file still reports the packets read before it', async function () {
    const r = await tsvs(['replay', '--json', path.join(CORPUS, 'malformed/suricata-smtp-to-comma-corrupt-record.pcap')]);
    assert.equal(r.code, 2);
    const j = JSON.parse(r.stdout);
    assert.equal(j.packets, 18);
    assert.match(j.error, /record 19/);
  });

  it('tracking: the same seed gives byte-identical events and records; another seed other expiry times (--drain)', async function () {
    // the jitter applies to a connection's first timeout (DPVS dp_vs_conn_new): a lone SYN keeps it
    const cap = path.join(REPO, 'pcaps', 'http-dns.pcap');
    const syn = path.join(CORPUS, 'tcp/zeek-syn.pcap');
    const outs = [];
    for (const seed of ['7', '7', '8']) {
      const ev = path.join(tmp, `ev-${outs.length}.jsonl`);
      const cn = path.join(tmp, `cn-${outs.length}.jsonl`);
      const r = await tsvs(['replay', '--json', '--drain', '--seed', seed, '--events', ev, '--conns', cn, cap, syn]);
      assert.equal(r.code, 0, r.stderr);
      outs.push({ json: JSON.parse(r.stdout.split('\n')[0]!), ev: fs.readFileSync(ev, 'utf8'), cn: fs.readFileSync(cn, 'utf8') });
    }
    assert.equal(outs[0]!.ev, outs[1]!.ev);
    assert.equal(outs[0]!.cn, outs[1]!.cn);
    assert.notEqual(outs[0]!.ev, outs[2]!.ev, 'a different seed moves the jittered expiry times');
    const j = outs[0]!.json;
    assert.equal(j.conns.total, 3);
    assert.equal(j.conns.open_at_end, 0, '--drain expires everything');
    const destroys = outs[0]!.ev.split('\n').filter((l: string) => l.includes('"destroy"')).length;
    assert.equal(destroys, 4);
    assert.equal(outs[0]!.cn.trim().split('\n').length, 4);
  });

  it('--timeout overrides a timeout (the events carry it); --json has per-protocol and per-state gauges', async function () {
    const ev = path.join(tmp, 'ev-timeout.jsonl');
    const r = await tsvs(['replay', '--json', '--timeout', 'established=3600', '--timeout', 'udp_unreplied=5', '--events', ev, path.join(REPO, 'pcaps', 'http-dns.pcap')]);
    assert.equal(r.code, 0, r.stderr);
    const evs = fs.readFileSync(ev, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { state: string; timeout: number; proto: string });
    assert.ok(evs.some((e) => e.state === 'ESTABLISHED' && e.timeout === 3600));
    assert.ok(evs.some((e) => e.proto === 'udp' && e.state === 'UNREPLIED' && e.timeout === 5));
    const j = JSON.parse(r.stdout);
    // with a 5 s UDP timeout the DNS flow expires before the capture ends 30 s later
    assert.equal(j.conntrack.expired, 1);
    assert.equal(j.gauges.entries, 2);
    assert.deepEqual(j.gauges.by_proto, { tcp: 2 });
    assert.equal(Object.values(j.gauges.by_state as Record<string, number>).reduce((a, b) => a + b, 0), 2);
  });

  it('bad tracking options: one line, exit 2', async function () {
    const cap = path.join(REPO, 'pcaps', 'http-get.pcap');
    for (const args of [['--profile', 'ipvs'], ['--seed', '-1'], ['--max-conns', 'lots'], ['--events', path.join(tmp, 'no', 'such', 'dir', 'x')], ['--timeout', 'bogus=1'], ['--timeout', 'established'], ['--timeout', 'udp_x=1']]) {
      const r = await tsvs(['replay', ...args, cap]);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });

  it('usage errors exit 2', async function () {
    assert.equal((await tsvs(['replay'])).code, 2);
    assert.equal((await tsvs(['frobnicate'])).code, 2);
  });

  it('no output may be an input or another output (checked before anything is written); several inputs need {} in --out and --snapshot', async function () {
    const a = path.join(tmp, 'a.pcap');
    const b = path.join(tmp, 'b.pcap.gz');
    fs.copyFileSync(path.join(REPO, 'pcaps', 'http-get.pcap'), a);
    fs.writeFileSync(b, (await import('node:zlib')).gzipSync(fs.readFileSync(path.join(REPO, 'pcaps', 'http-dns.pcap'))));
    const cfg = path.join(tmp, 'out-lb.yaml');
    fs.writeFileSync(cfg, 'services:\n  - { proto: tcp, vip: 192.150.187.43, port: 80, scheduler: rr, forward: nat, servers: [{ addr: 10.201.3.1, port: 8080 }] }\n');
    const before = fs.readFileSync(a);
    const link = path.join(tmp, 'a-link.pcap');
    fs.symlinkSync(a, link);
    for (const [args, re] of [
      [['--config', cfg, '--out', a], /^tsvs: --out .*a\.pcap: is the input .*a\.pcap: refusing to overwrite it$/],
      [['--events', a], /^tsvs: --events .*a\.pcap: is the input/],
      [['--conns', link], /^tsvs: --conns .*a-link\.pcap: is the input .*a\.pcap/],
      [['--flows', cfg], /^tsvs: --flows .*out-lb\.yaml: is the input/],
      [['--events', path.join(tmp, 'x.jsonl'), '--conns', path.join(tmp, 'x.jsonl')], /^tsvs: --conns .*x\.jsonl: also the output of --events$/],
    ] as Array<[string[], RegExp]>) {
      const r = await tsvs(['replay', a, ...(args.includes('--config') ? [] : ['--config', cfg]), ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr.trim(), re);
      assert.deepEqual(fs.readFileSync(a), before, 'the input is intact');
    }
    // several inputs: one output per input, named by "{}"
    const one = await tsvs(['replay', a, b, '--config', cfg, '--out', path.join(tmp, 'o.pcap')]);
    assert.equal(one.code, 2);
    assert.match(one.stderr, /--out .*o\.pcap: 2 inputs would write one after another into it: put \{\} in the name .*o-\{\}\.pcap/);
    const r = await tsvs(['replay', a, b, '--config', cfg, '--out', path.join(tmp, 'o-{}.pcap'), '--snapshot', path.join(tmp, 's-{}.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await tsharkCount(path.join(tmp, 'o-a.pcap')), 14);
    assert.ok(fs.existsSync(path.join(tmp, 'o-b.pcap')));
    assert.equal((JSON.parse(fs.readFileSync(path.join(tmp, 's-a.json'), 'utf8')) as { source: string }).source, a);
    assert.equal((JSON.parse(fs.readFileSync(path.join(tmp, 's-b.json'), 'utf8')) as { source: string }).source, b);
  });

  it('output into a closed pipe ends quietly with status 141 (as SIGPIPE would), no stack trace: tsvs replay --events /dev/stdout | head, ctstat -L | head', async function () {
    const flood = path.join(CORPUS, 'synflood/stopddos-pkt.TCP.synflood.spoofed.pcap');
    const snap = path.join(tmp, 'flood-snap.json');
    assert.equal((await tsvs(['replay', flood, '--snapshot', snap])).code, 0);
    const cmds = [
      `${path.join(REPO, 'bin', 'tsvs')} replay ${flood} --events /dev/stdout`,
      `${path.join(REPO, 'bin', 'tsvs')} replay ${flood} --conns /dev/stdout --drain`,
      `${path.join(REPO, 'bin', 'ctstat')} -L -o conntrack --snapshot ${snap}`,
    ];
    for (const c of cmds) {
      const r = await run('bash', ['-c', `${c} 2>${tmp}/pipe.err | head -1 >/dev/null; echo "\${PIPESTATUS[0]}"`]);
      assert.equal(r.stdout.trim(), '141', c);
      assert.equal(fs.readFileSync(path.join(tmp, 'pipe.err'), 'utf8'), '', `${c}: nothing on stderr`);
    }
  });

  it('reads standard input (-), pipes and FIFOs (no seeking), gzip included; writes --out -, --events - to standard output (the summary then goes to stderr)', async function () {
    const cap = path.join(REPO, 'pcaps', 'http-dns.pcap');
    const tsvsBin = path.join(REPO, 'bin', 'tsvs');
    const want = JSON.parse((await tsvs(['replay', '--json', cap])).stdout) as Record<string, unknown>;
    const same = (out: string, compressed: boolean) => {
      const j = JSON.parse(out) as Record<string, unknown>;
      assert.deepEqual({ ...j, file: cap, compressed: false }, want);
      assert.equal(j.compressed, compressed);
    };
    const stdin = await run('bash', ['-c', `cat ${cap} | ${tsvsBin} replay --json -`]);
    assert.equal(stdin.code, 0, stdin.stderr);
    same(stdin.stdout, false);
    const gz = await run('bash', ['-c', `gzip -c ${cap} | ${tsvsBin} replay --json -`]);
    assert.equal(gz.code, 0, gz.stderr);
    same(gz.stdout, true);
    const fifo = path.join(tmp, 'cap.fifo');
    const f = await run('bash', ['-c', `mkfifo ${fifo} && (gzip -c ${cap} > ${fifo} &) && ${tsvsBin} replay --json ${fifo}`]);
    assert.equal(f.code, 0, f.stderr);
    same(f.stdout, true);
    // --out - into tshark; the summary on stderr
    const cfg = path.join(tmp, 'stdout-lb.yaml');
    fs.writeFileSync(cfg, 'services:\n  - { proto: tcp, vip: 192.150.187.43, port: 80, scheduler: rr, forward: nat, servers: [{ addr: 10.201.3.1, port: 8080 }] }\n');
    const get = path.join(REPO, 'pcaps', 'http-get.pcap');
    const o = await run('bash', ['-c', `${tsvsBin} replay ${get} --config ${cfg} --out - 2>${tmp}/sum.txt | tshark -n -r - -T fields -e ip.dst -e ip.src`]);
    assert.equal(o.code, 0, o.stderr);
    const rows = o.stdout.trim().split('\n');
    assert.equal(rows.length, 14);
    assert.equal(rows.filter((r) => r.startsWith('10.201.3.1\t')).length, 7, 'the client packets, to the server');
    assert.match(fs.readFileSync(path.join(tmp, 'sum.txt'), 'utf8'), /packets\s+14\b/);
    const ev = await run('bash', ['-c', `${tsvsBin} replay ${get} --events - 2>/dev/null`]);
    const lines = ev.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    assert.deepEqual([lines[0]!.type, lines.length > 2], ['new', true]);
  });
});
