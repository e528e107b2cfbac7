/**
 * What a tcpdump / conntrack-tools / ipvsadm user types first (issue 21, "Unix habits"), against the real
 * programs: --version, NO_COLOR and --no-color on a terminal (a pseudo-terminal from script(1)), tsvs ctl
 * --help, ctstat's filters checked (and CIDR prefixes taken), options a view would ignore refused.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pool, REPO, run } from '../helpers/corpus.js';

const TSVS = path.join(REPO, 'bin', 'tsvs');
const CTSTAT = path.join(REPO, 'bin', 'ctstat');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-habits-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** `cmd` run on a pseudo-terminal (stdout is a TTY), its output */
async function onTerminal(cmd: string, env: Record<string, string> = {}): Promise<string> {
  // (chalk turns colours off where CI is set, as in the CI runner: the terminal is what is tested here)
  const base = { ...process.env };
  for (const k of ['CI', 'NO_COLOR', 'FORCE_COLOR']) delete base[k];
  const r = await run('script', ['-qec', cmd, '/dev/null'], { env: { ...base, ...env, TERM: 'xterm-256color' } });
  return r.stdout;
}

describe('Unix habits (CLI)', function () {
  this.timeout(60000);
  const snap = path.join(tmp, 'snap.json');
  before(async function () {
    assert.equal((await run(TSVS, ['replay', path.join(REPO, 'pcaps', 'http-dns.pcap'), '--snapshot', snap])).code, 0);
  });

  it('--version on every program prints package.json\'s version, exit 0', async function () {
    const want = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    for (const [cmd, args] of [
      [TSVS, ['--version']],
      [TSVS, ['-V']],
      [CTSTAT, ['--version']],
    ] as Array<[string, string[]]>) {
      const r = await run(cmd, args);
      assert.deepEqual([r.code, r.stdout.trim()], [0, want], `${cmd} ${args.join(' ')}`);
    }
  });

  it('colours on a terminal unless NO_COLOR is set or --no-color is given (tsvs replay, ctstat -L)', async function () {
    const esc = /\x1b\[/; // eslint-disable-line no-control-regex
    const cap = path.join(REPO, 'pcaps', 'http-get.pcap');
    assert.match(await onTerminal(`${TSVS} replay ${cap}`), esc, 'coloured on a terminal');
    assert.doesNotMatch(await onTerminal(`${TSVS} replay ${cap}`, { NO_COLOR: '1' }), esc);
    const plain = await onTerminal(`${TSVS} replay --no-color ${cap}`);
    assert.match(plain, /packets\s+14\b/);
    assert.doesNotMatch(plain, esc);
    assert.match(await onTerminal(`${CTSTAT} -L --snapshot ${snap}`), esc);
    assert.doesNotMatch(await onTerminal(`${CTSTAT} -L --snapshot ${snap}`, { NO_COLOR: '1' }), esc);
    const plainL = await onTerminal(`${CTSTAT} -L --no-color --snapshot ${snap}`);
    assert.match(plainL, /IPVS connection entries/);
    assert.doesNotMatch(plainL, esc);
  });

  it('tsvs ctl --help and -h print the verbs, exit 0', async function () {
    for (const h of ['--help', '-h']) {
      const r = await run(TSVS, ['ctl', h]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^usage: tsvs ctl COMMAND/);
      assert.match(r.stdout, /-A\|-E -t\|-u VIP:PORT/);
    }
  });

  it('combined short flags as ipvsadm takes them: ctstat -Ln, tsvs ctl -Ln and -lnc (parsed: the error is the missing daemon, not the flags)', async function () {
    const r = await run(CTSTAT, ['-Ln', '--snapshot', snap]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^IPVS connection entries/);
    for (const f of ['-Ln', '-lnc']) {
      const c = await run(TSVS, ['ctl', f, '--socket', path.join(tmp, 'none.sock')]);
      assert.equal(c.code, 2);
      assert.match(c.stderr, /none\.sock: cannot connect/, `${f}: ${c.stderr}`);
    }
    const bad = await run(TSVS, ['ctl', '-Lq', '--socket', path.join(tmp, 'none.sock')]);
    assert.match(bad.stderr, /unknown argument "-Lq"/);
  });

  it('ctstat checks its filters (a bad state or address is an error, not an empty list), takes CIDR prefixes, and refuses options its view ignores', async function () {
    for (const [args, re] of [
      [['-L', '--state', 'BOGUS'], /^ctstat: --state: expected one of .*ESTABLISHED.*, got "BOGUS"$/],
      [['-L', '--src', '1.2.3'], /^ctstat: --src: expected an address or a prefix like 10\.0\.0\.0\/8, got "1\.2\.3"$/],
      [['-L', '--proto', 'sctp'], /^ctstat: --proto: expected tcp, udp, icmp or icmpv6/],
      [['-L', '--rate'], /^ctstat: --rate: only with -l/],
      [['-L', '--top', '3'], /^ctstat: --top: only with --flows$/],
      [['--flows', '--state', 'ESTABLISHED'], /^ctstat: --state: not a flow filter/],
    ] as Array<[string[], RegExp]>) {
      const r = await run(CTSTAT, [...args, '--snapshot', snap]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr.trim(), re);
    }
    // the capture's client is 145.254.160.237: a /16 selects its connections, another /16 none
    const all = JSON.parse((await run(CTSTAT, ['-L', '-o', 'json', '--snapshot', snap])).stdout) as unknown[];
    const mine = JSON.parse((await run(CTSTAT, ['-L', '-o', 'json', '--src', '145.254.0.0/16', '--snapshot', snap])).stdout) as Array<{ orig: { src: string } }>;
    const none = JSON.parse((await run(CTSTAT, ['-L', '-o', 'json', '--src', '10.0.0.0/8', '--snapshot', snap])).stdout) as unknown[];
    assert.ok(mine.length > 0 && mine.length <= all.length && mine.every((c) => c.orig.src.startsWith('145.254.')));
    assert.equal(none.length, 0);
  });

  it('the README\'s configuration example for agents loads as written', async function () {
    const { parseConfigText } = await import('../../src/config.js');
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const block = (after: string) => {
      const a = readme.indexOf(after);
      assert.ok(a >= 0, after);
      const b = readme.indexOf('```yaml\n', a) + 8;
      return readme.slice(b, readme.indexOf('```', b));
    };
    const cfg = parseConfigText(block("On the hub (`tsvs run`'s configuration):"), 'README');
    assert.deepEqual(Object.keys(cfg.agents!.keys), ['edge-1', 'edge-2']);
    assert.deepEqual(cfg.services[0]!.servers.map((x) => x.agent), ['edge-1', 'edge-2']);
  });

  it('the README\'s replay examples run from the repository alone (examples/lb.yaml, examples/sp.yaml, pcaps/)', async function () {
    const out = path.join(tmp, 'lb-out.pcap');
    const lb = await run(TSVS, ['replay', '--config', path.join(REPO, 'examples', 'lb.yaml'), '--out', out, '--json', path.join(REPO, 'pcaps', 'http-get.pcap')]);
    assert.equal(lb.code, 0, lb.stderr);
    assert.equal((JSON.parse(lb.stdout) as { lb: { emitted: number } }).lb.emitted, 14);
    const sp = path.join(tmp, 'sp.json');
    const r = await run(TSVS, ['replay', '--config', path.join(REPO, 'examples', 'sp.yaml'), '--out', path.join(tmp, 'sp.pcap'), '--snapshot', sp, path.join(REPO, 'pcaps', 'stopddos-dominate-syn.pcap')]);
    assert.equal(r.code, 0, r.stderr);
    const st = await run(CTSTAT, ['-S', '--snapshot', sp]);
    assert.match(st.stdout, /SYNPROXY_SYN_CNT +9639\b/);
    assert.match(st.stdout, /entries +0\b/);
  });

  it('--filter takes tcpdump\'s expressions: per capture and expression, packets equals the count tcpdump -r gives (Ethernet, VLAN, SLL, raw IPv4/IPv6, big-endian); a bad expression is one line, exit 2', async function () {
    const C = path.join(REPO, '..', 'shared', 'pcaps');
    const files = ['mixed/ndpi-1kxun.pcap', 'vlan/arkime-dot1ad.pcap', 'rawip/tcpdump-LINKTYPE_IPV4.pcap', 'rawip/tcpdump-LINKTYPE_RAW_ipv6.pcap', 'ipv6/arkime-v6.pcap', 'icmp/zeek-5-pings.pcap', 'bigendian/arkime-bigendian.pcap', 'synflood/ndpi-synscan.pcap'];
    for (const sll of fs.readdirSync(path.join(C, 'sll')).filter((f) => f.endsWith('.pcap')).slice(0, 2)) files.push(`sll/${sll}`);
    const exprs = ['tcp', 'udp port 53', 'icmp or icmp6', 'ip6', 'tcp[tcpflags] & tcp-syn != 0', 'greater 200', 'vlan and udp', 'net 10.0.0.0/8'];
    let compared = 0;
    const cases = files.flatMap((f) => exprs.map((e) => [f, e] as const));
    const problems: string[] = [];
    await pool(cases, 4, async ([f, e]) => {
      const file = path.join(C, f);
      const t = await run('bash', ['-c', `tcpdump -r ${file} ${JSON.stringify(e)} 2>/dev/null | wc -l`]);
      const r = await run(TSVS, ['replay', '--json', '--filter', e, file]);
      if (r.code !== 0) return void problems.push(`${f} ${e}: exit ${r.code} ${r.stderr}`);
      const j = JSON.parse(r.stdout) as { packets: number; read: number };
      if (j.packets !== Number(t.stdout.trim())) problems.push(`${f} --filter '${e}': tsvs ${j.packets}, tcpdump ${t.stdout.trim()}`);
      compared += j.packets;
    });
    assert.deepEqual(problems, []);
    assert.ok(compared > 1000, `${compared} matching packets compared`);
    const bad = await run(TSVS, ['replay', '--filter', 'tcp port', path.join(REPO, 'pcaps', 'http-get.pcap')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr.trim(), /^tsvs: --filter "tcp port": .*syntax error/);
  });
});
