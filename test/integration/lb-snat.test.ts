/**
 * SNAT forwarding over real captures, with tshark (checksum validation on) as the oracle: connections opened
 * by inside hosts leave from a SNAT address and a pooled port, their replies come back to the inside host.
 * Every emitted packet is matched to the input packet it came from (same timestamp, in order).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CORPUS, haveTool, REPO, run, tsvs } from '../helpers/corpus.js';
import { eth, ipv4, pcapFile, portUnreachableCapture, tcp } from '../helpers/packets.js';
import { replayIcmpPair, tsharkPackets, type Pkt } from '../helpers/tshark.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-snat-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
}

/** packets with their capture timestamps */
async function timed(file: string): Promise<Array<Pkt & { t: string }>> {
  const pk = await tsharkPackets(file);
  const ts = (await run('tshark', ['-n', '-r', file, '-T', 'fields', '-e', 'frame.time_epoch'])).stdout.trim().split('\n');
  assert.equal(ts.length, pk.length);
  return pk.map((p, i) => ({ ...p, t: ts[i]! }));
}

/**
 * Replay `cap` with `cfg` and check every emitted packet against its input packet: an outbound one (from an
 * inside address) leaves from a SNAT address and pooled port to the same destination, the same connection always
 * with the same address and port; a reply seen inside leaves unchanged. Returns the translations.
 */
async function check(cap: string, cfg: string, inside: (a: string) => boolean, snat: string[]): Promise<{ emitted: number; map: Map<string, string>; j: { lb: { emitted: number; not_emitted: Record<string, number> } } }> {
  const out = path.join(tmp, `${path.basename(cap)}.out.pcap`);
  const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, cap]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  const input = await timed(cap);
  const output = await timed(out);
  assert.equal(output.length, j.lb.emitted);
  const map = new Map<string, string>();
  const used = new Set<string>();
  let k = 0;
  for (const o of output) {
    assert.ok(!o.ipBad && !o.l4Bad, `bad checksum in ${JSON.stringify(o)}`);
    while (k < input.length && input[k]!.t !== o.t) k++;
    const i = input[k++];
    assert.ok(i, `no input packet at ${o.t}`);
    const conn = `${i.src}:${i.sport}>${i.dst}:${i.dport}`;
    if (inside(i.src)) {
      assert.ok(snat.includes(o.src), `outbound from a SNAT address: ${JSON.stringify(o)}`);
      assert.ok(o.sport >= 1025 && o.sport <= 65535);
      assert.deepEqual([o.dst, o.dport], [i.dst, i.dport], 'the destination is kept');
      const to = `${o.src}:${o.sport}`;
      const had = map.get(conn);
      if (had === undefined) {
        assert.ok(!used.has(`${to}>${i.dst}:${i.dport}`), `${to} given twice`);
        used.add(`${to}>${i.dst}:${i.dport}`);
        map.set(conn, to);
      } else assert.equal(to, had, `${conn} keeps its translation`);
    } else {
      assert.ok(inside(o.dst), `a reply reaches the inside host: ${JSON.stringify(o)}`);
      assert.deepEqual([o.src, o.sport, o.dst, o.dport], [i.src, i.sport, i.dst, i.dport], 'a reply seen inside is already the inside view');
    }
  }
  return { emitted: output.length, map, j };
}

describe('load balancing, SNAT mode (replay, tshark as oracle)', function () {
  this.timeout(120000);
  before(function () {
    if (!haveTool('tshark')) throw new Error('tshark is required');
  });

  it('http-dns.pcap: TCP and DNS from the inside host leave from SNAT addresses; replies come back', async function () {
    const cfg = write(
      'a.yaml',
      `services:
  - { proto: tcp, forward: snat, match: { src: 145.254.160.0/24 }, scheduler: rr, servers: [{ addr: 203.0.113.1 }, { addr: 203.0.113.2 }] }
  - { proto: udp, forward: snat, match: { src: 145.254.160.0/24, dst: 145.253.2.203/32, dport: 53 }, scheduler: rr, servers: [{ addr: 203.0.113.9 }] }
`,
    );
    const r = await check(path.join(REPO, 'pcaps/http-dns.pcap'), cfg, (a) => a === '145.254.160.237', ['203.0.113.1', '203.0.113.2', '203.0.113.9']);
    // the HTTP connection that opens with a SYN and the DNS query; the one to 216.239.59.99 starts mid-stream
    // (no SYN in the capture), which the dpvs profile does not pick up
    assert.deepEqual([...r.map.entries()].sort(), [
      ['145.254.160.237:3009>145.253.2.203:53', '203.0.113.9:1025'],
      ['145.254.160.237:3372>65.208.228.223:80', '203.0.113.1:1025'],
    ]);
    const mid = (await run('tshark', ['-n', '-r', path.join(REPO, 'pcaps/http-dns.pcap'), '-Y', 'ip.addr==216.239.59.99'])).stdout.trim().split('\n').length;
    assert.ok(r.j.lb.not_emitted.not_tracked! >= mid);
    assert.ok(r.emitted >= 30, `emitted ${r.emitted}`);
    // the text summary shows the same: what was emitted, what not and why, connections per SNAT address
    const text = await tsvs(['replay', '--config', cfg, path.join(REPO, 'pcaps/http-dns.pcap')]);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.split('\n');
    assert.ok(lines.includes(`lb        emitted ${r.emitted}  not emitted: not_tracked ${r.j.lb.not_emitted.not_tracked}`), text.stdout);
    assert.ok(lines.includes('service   tcp snat 145.254.160.0/24 rr snat  conns 1: 203.0.113.1:0 1, 203.0.113.2:0 0'), text.stdout);
  });

  it('a 37.8k-SYN flood from spoofed sources: rr over two SNAT addresses, one pooled port per connection', async function () {
    const cfg = write('flood.yaml', 'services:\n  - { proto: tcp, forward: snat, match: { src: 0.0.0.0/0, dst: 10.10.10.10 }, scheduler: rr, servers: [{ addr: 203.0.113.1 }, { addr: 203.0.113.2 }] }\n');
    const r = await check(path.join(CORPUS, 'synflood/stopddos-pkt.TCP.synflood.spoofed.pcap'), cfg, () => true, ['203.0.113.1', '203.0.113.2']);
    const per = new Map<string, number>();
    for (const to of r.map.values()) per.set(to.split(':')[0]!, (per.get(to.split(':')[0]!) ?? 0) + 1);
    const [a, b] = [per.get('203.0.113.1') ?? 0, per.get('203.0.113.2') ?? 0];
    assert.ok(r.map.size > 37000, `${r.map.size} connections`);
    assert.ok(Math.abs(a - b) <= 1, `rr split ${a}:${b}`);
  });

  it('IPv6 (zeek-ftp-ipv6.pcap): the client’s connections translated; the server’s active-FTP connections are not SNAT’s', async function () {
    const C = '2001:470:1f11:81f:c999:d94:aa7c:2e3e';
    const cfg = write('v6.yaml', `services:\n  - { proto: tcp, forward: snat, match: { src: "2001:470:1f11:81f::/64" }, scheduler: rr, servers: [{ addr: "2001:db8:5::1" }] }\n`);
    const r = await check(path.join(CORPUS, 'ipv6/zeek-ftp-ipv6.pcap'), cfg, (a) => a === C, ['2001:db8:5::1']);
    assert.equal(r.map.size, 4, 'the control connection and three passive data connections');
    // tshark: the connections the server opens (active FTP data) and their packets
    const tk = async (filter: string) => {
      const t = await run('tshark', ['-n', '-r', path.join(CORPUS, 'ipv6/zeek-ftp-ipv6.pcap'), '-Y', filter]);
      assert.equal(t.code, 0, t.stderr);
      return t.stdout.trim().split('\n').length;
    };
    const serverSyns = await tk(`ipv6.src==2001:470:4867:99::21 && tcp.flags.syn==1 && tcp.flags.ack==0`);
    const serverPkts = await tk('tcp.port == 55785 || tcp.port == 55647');
    assert.equal(serverSyns, 2);
    const j = r.j as unknown as { conntrack: { unmatched: number }; lb: { not_emitted: { not_tracked: number } } };
    assert.equal(j.conntrack.unmatched, serverSyns, 'the SYNs of the connections the server opens match no service');
    assert.equal(j.lb.not_emitted.not_tracked, serverPkts, 'and none of their packets is emitted');
  });

  it('a capture taken outside: the remote’s reply to the SNAT address and port goes to the inside host', async function () {
    const IN = '192.168.1.10';
    const R = '198.51.100.7';
    const S = '203.0.113.1';
    const frames = [
      eth(0x0800, ipv4({ proto: 6, src: IN, dst: R }, tcp({ src: IN, dst: R, sport: 40000, dport: 443, flags: 0x02, seq: 100 }))),
      eth(0x0800, ipv4({ proto: 6, src: R, dst: S }, tcp({ src: R, dst: S, sport: 443, dport: 1025, flags: 0x12, seq: 500, ack: 101 }))),
      eth(0x0800, ipv4({ proto: 6, src: IN, dst: R }, tcp({ src: IN, dst: R, sport: 40000, dport: 443, flags: 0x10, seq: 101, ack: 501 }))),
      // not ours: to the SNAT address at another port, and from an outside host
      eth(0x0800, ipv4({ proto: 6, src: R, dst: S }, tcp({ src: R, dst: S, sport: 443, dport: 1026, flags: 0x12, seq: 500, ack: 101 }))),
      eth(0x0800, ipv4({ proto: 6, src: R, dst: IN }, tcp({ src: R, dst: IN, sport: 443, dport: 40001, flags: 0x02, seq: 1 }))),
    ];
    const cap = write('outside.pcap', '');
    fs.writeFileSync(cap, pcapFile(frames.map((data, i) => ({ sec: 1700000000, frac: i, data }))));
    const cfg = write('o.yaml', `services:\n  - { proto: tcp, forward: snat, match: { src: 192.168.1.0/24 }, scheduler: rr, servers: [{ addr: ${S} }] }\n`);
    const out = path.join(tmp, 'outside.out.pcap');
    const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, cap]);
    assert.equal(r.code, 0, r.stderr);
    const pkts = await tsharkPackets(out);
    assert.deepEqual(
      pkts.map((p) => [p.src, p.sport, p.dst, p.dport, p.ipBad || p.l4Bad]),
      [
        [S, 1025, R, 443, false],
        [R, 443, IN, 40000, false],
        [S, 1025, R, 443, false],
      ],
    );
    assert.deepEqual(JSON.parse(r.stdout).lb.not_emitted, { not_tracked: 2 });
  });

  it('an ICMP port unreachable from the remote reaches the inside host, quoting inside -> remote', async function () {
    const IN = '192.168.1.10';
    const R = '198.51.100.7';
    const S = '203.0.113.1';
    // the remote got the query from the SNAT address and its first pooled port, and quotes that
    const cap = write('icmp.pcap', '');
    fs.writeFileSync(cap, portUnreachableCapture(IN, R, [S, 1025], R, 53));
    const cfg = write('i.yaml', `services:\n  - { proto: udp, forward: snat, match: { src: 192.168.1.0/24 }, scheduler: rr, servers: [{ addr: ${S} }] }\n`);
    const [fwd, err] = await replayIcmpPair(cfg, cap, path.join(tmp, 'icmp.out.pcap'));
    assert.deepEqual(fwd!.slice(0, 5), [S, R, '1025', '53', '1']);
    assert.equal(fwd![6], '1', 'the forwarded datagram’s UDP checksum is good');
    assert.deepEqual(err!.slice(0, 6), [`${R},${IN}`, `${IN},${R}`, '33000', '53', '1,1', '1'], 'outer to the inside host; quoted inside:33000 -> remote:53; checksums good (a quoted 8-byte UDP header cannot be verified)');
  });

  it('bad snat configurations exit 2 with the key path', async function () {
    const cap = path.join(REPO, 'pcaps/http-get.pcap');
    const bad: Array<[string, RegExp]> = [
      ['services:\n  - { proto: tcp, forward: snat, scheduler: rr, servers: [{ addr: 10.0.0.2 }] }\n', /services\[0\]\.match: required for snat/],
      ['services:\n  - { proto: tcp, forward: snat, match: { src: 10.0.0.0/33 }, scheduler: rr, servers: [{ addr: 10.0.0.2 }] }\n', /services\[0\]\.match\.src: expected an address prefix/],
      ['services:\n  - { proto: tcp, forward: snat, vip: 10.0.0.1, match: { src: 10.0.0.0/8 }, scheduler: rr, servers: [{ addr: 10.0.0.2 }] }\n', /services\[0\]\.vip: not used by snat/],
      ['services:\n  - { proto: tcp, forward: snat, match: { src: 10.0.0.0/8 }, scheduler: rr, servers: [{ addr: "2001:db8::1" }] }\n', /services\[0\]\.servers\[0\]\.addr: must be of the address family/],
      ['services:\n  - { proto: tcp, vip: 10.0.0.1, port: 80, scheduler: rr, servers: [{ addr: 10.0.0.2 }] }\n', /services\[0\]\.servers\[0\]\.port: required/],
    ];
    for (const [text, re] of bad) {
      const r = await tsvs(['replay', '--config', write('bad.yaml', text), cap]);
      assert.equal(r.code, 2, text);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, re);
    }
  });
});
