/**
 * Regressions of the defects found by fuzzing and flooding (issue 15), each against an independent oracle
 * where there is one (tshark reading what the LB emitted).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CORPUS, run, tsvs } from '../helpers/corpus.js';
import { parseConfig, parseConfigText } from '../../src/config.js';
import { LbLab } from '../helpers/lb-lab.js';
import { concat, eth, ipv4, ipv6, ngEpb, ngIdb, ngShb, tcp, udp } from '../helpers/packets.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-robust-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** the outer IPv4/UDP header of every packet (the service's L2TP datagrams carry PPP, and IP inside), checksums validated (a UDP checksum may be absent: 3) */
async function outerUdp(cap: string): Promise<Array<{ proto: string; src: string; dst: string; sport: number; dport: number; ipOk: boolean; udpOk: boolean }>> {
  const fields = ['ip.proto', 'ip.src', 'ip.dst', 'udp.srcport', 'udp.dstport', 'ip.checksum.status', 'udp.checksum.status'];
  const r = await run('tshark', ['-n', '-r', cap, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-E', 'occurrence=f', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => l.split('|'))
    .map((f) => ({ proto: f[0]!, src: f[1]!, dst: f[2]!, sport: Number(f[3]), dport: Number(f[4]), ipOk: f[5] === '1', udpOk: f[6] === '1' || f[6] === '3' }));
}

function file(name: string, text: string | Uint8Array): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
}

/** the one-line error of a configuration document named lb.yaml, or "accepted" */
function configError(doc: unknown): string {
  try {
    parseConfig(doc, 'lb.yaml');
  } catch (e) {
    return (e as Error).message;
  }
  return 'accepted';
}

describe('robustness regressions (issue 15)', function () {
  this.timeout(120000);

  it('one ICMP error does not break NAT: the L2TP/UDP service of dpkt-nb6-http.pcap stays translated after the ICMPv6 error', async function () {
    // the capture has an ICMPv6 error before the L2TP traffic to 95.136.242.99:1701; once it passed, every later
    // packet used to be handled as an ICMP error: sent untranslated, and TCP to port 80 (no service) emitted
    const cfg = file('l2tp.yaml', 'services:\n  - { proto: udp, vip: 95.136.242.99, port: 1701, scheduler: rr, forward: nat, servers: [{ addr: 10.0.0.1, port: 1701 }] }\n');
    const out = path.join(tmp, 'l2tp.pcap');
    const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, path.join(CORPUS, 'ipv6/dpkt-nb6-http.pcap')]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    const pkts = await outerUdp(out);
    assert.equal(pkts.length, j.lb.emitted);
    const s = j.lb.services[0];
    assert.equal(pkts.length, s.in_pkts + s.out_pkts, 'every packet of the service and nothing else');
    let inbound = 0;
    for (const p of pkts) {
      assert.ok(p.proto === '17' && p.ipOk && p.udpOk, `not UDP, or a bad checksum: ${JSON.stringify(p)}`);
      if (p.dst === '10.0.0.1') {
        assert.equal(p.dport, 1701);
        inbound++;
      } else assert.deepEqual([p.src, p.sport], ['95.136.242.99', 1701], `outbound from the VIP: ${JSON.stringify(p)}`);
    }
    assert.equal(inbound, s.in_pkts);
    assert.ok(inbound > 0 && s.out_pkts > 0);
  });

  it('the synproxy never writes beyond the captured bytes: SYNs cut by the snap length (editcap -s 60) are not answered, the file reads to its end', async function () {
    // zeek-http-get.pcap's SYN has 20 bytes of options: cut at 60 bytes, its SYN-ACK used to be built over the
    // next record's header ("corrupt record header")
    const cut = path.join(tmp, 'cut60.pcap');
    const e = await run('editcap', ['-F', 'pcap', '-s', '60', path.join(CORPUS, 'tcp/zeek-http-get.pcap'), cut]);
    assert.equal(e.code, 0, e.stderr);
    const cfg = file('sp-cut.yaml', 'services:\n  - { proto: tcp, vip: 192.150.187.43, port: 80, scheduler: rr, forward: nat, synproxy: true, servers: [{ addr: 10.0.0.1, port: 80 }] }\n');
    const out = path.join(tmp, 'sp-cut.out.pcap');
    const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, cut]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    const info = await run('capinfos', ['-M', '-c', cut]);
    assert.equal(j.packets, Number(/Number of packets:\s+(\d+)/.exec(info.stdout)![1]));
    assert.equal(j.lb.not_emitted.truncated, 1, JSON.stringify(j.lb));
    assert.equal(j.lb.synproxy.SYNPROXY_SYN_CNT, 0);
  });

  it('in process: a SYN whose options end where the buffer ends is not answered (a SYN-ACK used to be built beyond the captured bytes), the whole SYN is', function () {
    const lab = new LbLab('dpvs', [{ proto: 'tcp', vip: '10.9.9.9', port: 80, scheduler: 'rr', synproxy: true, servers: [{ addr: '10.0.0.1', port: 80 }] }]);
    const opts = Uint8Array.from([2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]);
    const syn = eth(0x0800, ipv4({ proto: 6, src: '192.0.2.1', dst: '10.9.9.9' }, tcp({ src: '192.0.2.1', dst: '10.9.9.9', sport: 5555, dport: 80, flags: 0x02, options: opts })));
    lab.frame(syn, { caplen: 60 }); // nothing beyond the captured bytes to write into
    lab.frame(syn);
    assert.deepEqual(lab.x.notEmitted, { truncated: 1 });
    assert.deepEqual(lab.sent.map((f) => f.length), [syn.length], 'the whole SYN is answered');
  });

  it('in process: a valid cookie ACK whose IPv6 extension headers leave no room for the server SYN is dropped, not a RangeError', function () {
    const lab = new LbLab('dpvs', [{ proto: 'tcp', vip: '2001:db8::9', port: 80, scheduler: 'rr', synproxy: true, servers: [{ addr: '2001:db8::10', port: 80 }] }]);
    const a = { v6: true, src: '2001:db8::1', dst: '2001:db8::9', sport: 5555, dport: 80 };
    lab.frame(eth(0x86dd, ipv6({ nh: 6, src: a.src, dst: a.dst }, tcp({ ...a, flags: 0x02, seq: 100 }))));
    assert.equal(lab.sent.length, 1, 'the SYN was answered');
    const cookie = new DataView(lab.sent[0]!.buffer).getUint32(14 + 40 + 4);
    const ext = Array.from({ length: 8 }, () => ({ type: 60, body: new Uint8Array(62) })); // 8 x 64 bytes of destination options
    lab.frame(eth(0x86dd, ipv6({ nh: 6, src: a.src, dst: a.dst, ext }, tcp({ ...a, flags: 0x10, seq: 101, ack: (cookie + 1) >>> 0 }))));
    assert.equal(lab.ct.table.count, 0, 'no connection opened');
    assert.equal(lab.x.notEmitted.synproxy, 1);
  });

  it('far-future timestamps do not hang replay: a pcapng time of 2^64-1 µs with --drain (26 s before), each connection destroyed at its own expiry', async function () {
    this.timeout(20000);
    const syn = eth(0x0800, ipv4({ proto: 6 }, tcp({ flags: 0x02 })));
    const dns = eth(0x0800, ipv4({ proto: 17 }, udp({})));
    const cap = file('far.pcapng', concat(ngShb(), ngIdb(1), ngEpb(0, 1_000_000_000_000_000n, syn), ngEpb(0, 0xffffffffffffffffn, dns)));
    const ev = path.join(tmp, 'far.events');
    const r = await tsvs(['replay', '--json', '--drain', '--events', ev, cap]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.conntrack.expired, 2);
    assert.match(j.warnings.join(), /1 packet timed after the year 2112/);
    const destroys = fs.readFileSync(ev, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'destroy').map((e) => Number(e.ts));
    // SYN_SENT 120 s after its SYN, UNREPLIED 30 s after the engine's last time (2^52 µs), plus the [0, 1 s) jitter
    assert.equal(destroys.length, 2);
    assert.ok(destroys[0]! >= 1_000_000_120 && destroys[0]! < 1_000_000_121, String(destroys[0]));
    assert.ok(destroys[1]! >= 2 ** 52 / 1e6 + 30 && destroys[1]! < 2 ** 52 / 1e6 + 31, String(destroys[1]));
  });

  it('timeouts are bounded (30 days) and a bad one names where it came from', async function () {
    const cap = path.join(CORPUS, 'tcp/zeek-http-get.pcap');
    let r = await tsvs(['replay', '--timeout', 'icmp=100000000000000', cap]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'tsvs: --timeout: icmp: expected seconds in [0, 2592000] (30 days), got 100000000000000\n');
    const cfg = file('big-timeout.yaml', 'timeouts: { established: 1e300 }\n');
    r = await tsvs(['replay', '--config', cfg, cap]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `tsvs: ${cfg}: timeouts.established: Number must be less than or equal to 2592000, got 1e+300\n`);
    const cfg2 = file('bad-state.yaml', 'timeouts: { synack: 5 }\n');
    r = await tsvs(['replay', '--config', cfg2, cap]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`^tsvs: ${cfg2}: timeouts.synack: unknown TCP state for profile netfilter`));
  });

  it('every numeric setting is bounded, with an error naming its key (mh tables, conhash rings, thresholds, timeouts)', function () {
    const svc = (extra: Record<string, unknown>, servers: unknown[] = [{ addr: '10.0.0.1', port: 80 }]) => ({ proto: 'tcp', vip: '10.9.9.9', port: 80, scheduler: 'mh', servers, ...extra });
    const err = configError;
    // these ran for minutes or died with "Invalid typed array length"; 8 is not a prime (a permutation cycle never ends)
    for (const ts of [1e9, 4294967311, 1e300]) assert.match(err({ services: [svc({ mh: { table_size: ts } })] }), /^lb\.yaml: services\[0\]\.mh\.table_size: Number must be less than or equal to 131071/);
    assert.match(err({ services: [svc({ mh: { table_size: 8 } })] }), /^lb\.yaml: services\[0\]\.mh\.table_size: expected a prime/);
    assert.equal(err({ services: [svc({ mh: { table_size: 251 } })] }), 'accepted');
    // 5000 services of 65537 slots were 7.3 s and 1.41 GB
    const many = Array.from({ length: 5000 }, (_, i) => ({ ...svc({}), port: 1 + i }));
    assert.match(err({ services: many }), /^lb\.yaml: services\[511\]\.mh\.table_size: the mh tables of services\[0\.\.511\] add up to 33554944 slots, more than 33554432/);
    assert.equal(err({ services: many.map((x) => ({ ...x, mh: { table_size: 4093 } })) }), 'accepted');
    const heavy = [{ addr: '10.0.0.1', port: 80, weight: 65535 }, { addr: '10.0.0.2', port: 80, weight: 1 }];
    assert.match(err({ services: [svc({ scheduler: 'conhash' }, heavy)] }), /^lb\.yaml: services\[0\]\.servers: conhash: the weights .* add up to 65536/);
    assert.equal(err({ services: [svc({ scheduler: 'conhash' }, [{ addr: '10.0.0.1', port: 80, weight: 65535 }, { addr: '10.0.0.2', port: 80, weight: 65535 }])] }), 'accepted');
    assert.match(err({ services: [svc({}, [{ addr: '10.0.0.1', port: 80, upper_threshold: 1e10 }])] }), /servers\[0\]\.upper_threshold: Number must be less than or equal to 2147483647/);
    assert.match(err({ services: [svc({ persistence: { timeout: 1e9 } })] }), /services\[0\]\.persistence\.timeout: Number must be less than or equal to 2592000/);
    assert.match(err({ services: [svc({ conn_timeout: 1e9 })] }), /services\[0\]\.conn_timeout: Number must be less than or equal to 2592000/);
    assert.match(err({ synproxy: { ack_storm_thresh: 1000 } }), /^lb\.yaml: synproxy\.ack_storm_thresh: Number must be less than or equal to 255/);
  });

  it('address families must agree across a service (VIP, local addresses, servers, tunnel source); a duplicate server, a DR server on another port and an empty file are errors (issue 21)', function () {
    const err = configError;
    const v6 = { proto: 'tcp', vip: '2001:db8::1', port: 80, scheduler: 'rr' };
    // an IPv6 VIP with an IPv4 FNAT local address sent from "a00:1::"
    assert.match(err({ services: [{ ...v6, forward: 'fnat', laddrs: ['10.0.1.1'], servers: [{ addr: '2001:db8::10', port: 8080 }] }] }), /^lb\.yaml: services\[0\]\.laddrs\[0\]: must be of the VIP's address family \(IPv6\)/);
    assert.match(err({ services: [{ ...v6, forward: 'fnat', laddrs: ['2001:db8::100'], servers: [{ addr: '10.0.0.10', port: 8080 }] }] }), /services\[0\]\.servers\[0\]\.addr: must be of the VIP's address family \(IPv6\)/);
    assert.match(err({ services: [{ ...v6, forward: 'tunnel', tunnel: { src: '10.0.0.5' }, servers: [{ addr: '2001:db8::10', port: 80 }] }] }), /services\[0\]\.tunnel\.src: must be of the VIP's address family/);
    assert.equal(err({ services: [{ ...v6, forward: 'fnat', laddrs: ['2001:db8::100'], servers: [{ addr: '2001:db8::10', port: 8080 }] }] }), 'accepted');
    const v4 = { proto: 'tcp', vip: '10.9.9.9', port: 80, scheduler: 'rr', forward: 'nat' };
    assert.match(err({ services: [{ ...v4, servers: [{ addr: '10.0.0.1', port: 8080 }, { addr: '10.0.0.2', port: 8080 }, { addr: '10.0.0.1', port: 8080, weight: 3 }] }] }), /^lb\.yaml: services\[0\]\.servers\[2\]: duplicate server 10\.0\.0\.1:8080 \(also servers\[0\]\)/);
    assert.equal(err({ services: [{ ...v4, servers: [{ addr: '10.0.0.1', port: 8080 }, { addr: '10.0.0.1', port: 8081 }] }] }), 'accepted');
    // agents' servers: one per agent and port (they all stand at one placeholder address)
    const gue = { ...v4, forward: 'tunnel', tunnel: { type: 'gue' } };
    const agents = { listen: '10.0.0.254:6080', keys: { a1: 'aa'.repeat(16), a2: 'bb'.repeat(16) } };
    assert.equal(err({ agents, services: [{ ...gue, servers: [{ agent: 'a1', port: 80 }, { agent: 'a2', port: 80 }, { agent: 'a1', port: 81 }] }] }), 'accepted');
    assert.match(err({ agents, services: [{ ...gue, servers: [{ agent: 'a1', port: 80 }, { agent: 'a1', port: 80, weight: 2 }] }] }), /^lb\.yaml: services\[0\]\.servers\[1\]: duplicate server agent a1 port 80 \(also servers\[0\]\)/);
    assert.match(err({ services: [{ ...v4, forward: 'dr', servers: [{ addr: '10.0.0.1', port: 8080, mac: '02:00:00:00:00:01' }] }] }), /services\[0\]\.servers\[0\]\.port: must be the VIP's port \(80\) for dr forwarding/);
    assert.throws(() => parseConfigText('', 'empty.yaml'), /^ConfigError: empty\.yaml: empty \(a configuration has at least services: or live:\)$|empty\.yaml: empty/);
    assert.throws(() => parseConfigText('# only a comment\n', 'c.yaml'), /c\.yaml: empty/);
  });

  it('an internal error names the file and record, exits 70 (not 2, a bad file), and keeps what came before (summary, --out, --conns)', async function () {
    const cap = path.join(CORPUS, 'tcp/zeek-http-get.pcap');
    const cfg = file('fault.yaml', 'services:\n  - { proto: tcp, vip: 192.150.187.43, port: 80, scheduler: rr, forward: nat, servers: [{ addr: 10.0.0.1, port: 80 }] }\n');
    const out = path.join(tmp, 'fault.out.pcap');
    const conns = path.join(tmp, 'fault.conns');
    const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, '--conns', conns, cap], { TSVS_TEST_FAULT_RECORD: '7' });
    assert.equal(r.code, 70);
    assert.deepEqual(r.stderr.trim().split('\n'), [
      `tsvs: internal error: ${cap}: record 7 at byte offset 2120: injected fault (TSVS_TEST_FAULT_RECORD=7)`,
      'tsvs: this is a bug in tsvs, not in the file: please report it with the file (TSVS_DEBUG=1 prints the stack)',
    ]);
    const j = JSON.parse(r.stdout);
    assert.equal(j.packets, 6);
    assert.match(j.error, /^internal error: /);
    const info = await run('capinfos', ['-M', '-c', out]);
    assert.equal(Number(/Number of packets:\s+(\d+)/.exec(info.stdout)![1]), j.lb.emitted);
    assert.equal(j.lb.emitted, 6);
    const lines = fs.readFileSync(conns, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((x) => [x.end, x.orig_pkts + x.reply_pkts]), [['open', 6]]);
  });

  it('frames the synproxy holds own their bytes: a capture buffer reused before the server answers does not change them (Buffer.slice is a view)', function () {
    const lab = new LbLab('dpvs', [{ proto: 'tcp', vip: '10.9.9.9', port: 80, scheduler: 'rr', synproxy: true, servers: [{ addr: '10.0.0.1', port: 8080 }] }]);
    const capBuf = Buffer.alloc(2048); // one buffer for every packet, as live capture and the reader's window are
    const pkt = (f: Uint8Array) => (capBuf.fill(0xee), lab.frame(f, { buf: capBuf }));
    const c = { src: '192.0.2.1', dst: '10.9.9.9', sport: 5555, dport: 80 };
    pkt(eth(0x0800, ipv4({ proto: 6, src: c.src, dst: c.dst }, tcp({ ...c, flags: 0x02, seq: 100 }))));
    const cookie = new DataView(lab.sent[0]!.buffer).getUint32(14 + 20 + 4);
    pkt(eth(0x0800, ipv4({ proto: 6, src: c.src, dst: c.dst }, tcp({ ...c, flags: 0x18, seq: 101, ack: (cookie + 1) >>> 0 }, new TextEncoder().encode('GET / HTTP/1.0\r\n\r\n'))))); // held; the server gets a SYN
    assert.equal(lab.sent.length, 2);
    const s = { src: '10.0.0.1', dst: c.src, sport: 8080, dport: 5555 };
    pkt(eth(0x0800, ipv4({ proto: 6, src: s.src, dst: s.dst }, tcp({ ...s, flags: 0x12, seq: 7000, ack: 101 }))));
    assert.equal(lab.x.notEmitted.decode_drop, undefined, JSON.stringify(lab.x.notEmitted));
    assert.equal(lab.sent.length, 3, 'the held request went to the server');
    const out = lab.sent[2]!;
    assert.equal(new TextDecoder().decode(out.subarray(14 + 20 + 20)), 'GET / HTTP/1.0\r\n\r\n');
    assert.deepEqual([...out.subarray(14 + 16, 14 + 20)], [10, 0, 0, 1], 'to the server');
  });

  it('under overload the synproxy answers no new SYN (dropped early, counted) but from verified sources, while established and handshake-completing traffic still goes', function () {
    let spare = 100; // room left in the transmit queue, as the live sink reports it
    const lab = new LbLab('dpvs', [{ proto: 'tcp', vip: '10.9.9.9', port: 80, scheduler: 'rr', synproxy: true, servers: [{ addr: '10.0.0.1', port: 8080 }] }], { reserve: 50, spare: () => spare, maxConns: 256 });
    const { sent, engine, x } = lab;
    const pkt = (f: Uint8Array) => lab.frame(f);
    const seg = (src: string, sport: number, dst: string, dport: number, flags: number, seq: number, ack = 0, data = '') =>
      eth(0x0800, ipv4({ proto: 6, src, dst }, tcp({ src, dst, sport, dport, flags, seq, ack }, new TextEncoder().encode(data))));
    const cookieOf = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset).getUint32(14 + 20 + 4);
    // a client that completes its handshake with the LB and with the server before the flood
    pkt(seg('192.0.2.1', 1000, '10.9.9.9', 80, 0x02, 100));
    const c1 = cookieOf(sent.at(-1)!);
    pkt(seg('192.0.2.1', 1000, '10.9.9.9', 80, 0x10, 101, c1 + 1));
    pkt(seg('10.0.0.1', 8080, '192.0.2.1', 1000, 0x12, 5000, 101));
    // another that got its SYN-ACK before the flood, and will answer it during
    pkt(seg('192.0.2.2', 2000, '10.9.9.9', 80, 0x02, 300));
    const c2 = cookieOf(sent.at(-1)!);
    const before = sent.length;
    spare = 50; // down to the reserve
    for (let i = 0; i < 20; i++) pkt(seg(`198.51.100.${i}`, 3000 + i, '10.9.9.9', 80, 0x02, 7)); // flood SYNs
    pkt(seg('198.51.100.99', 4000, '10.9.9.9', 80, 0x10, 8, 12345)); // a forged ACK: no RST either
    assert.equal(sent.length, before, 'nothing sent for the flood');
    assert.equal(x.notEmitted.synproxy_overload, 21);
    assert.equal(engine.sp!.counter('SYNPROXY_SYN_CNT'), 2, 'no cookie made for the flood');
    pkt(seg('192.0.2.1', 1000, '10.9.9.9', 80, 0x18, 101, c1 + 1, 'GET /'));
    pkt(seg('10.0.0.1', 8080, '192.0.2.1', 1000, 0x18, 5001, 106, 'HTTP/1.0 200'));
    pkt(seg('192.0.2.2', 2000, '10.9.9.9', 80, 0x10, 301, c2 + 1));
    assert.equal(sent.length, before + 3, 'the established connection both ways, and the SYN of the completed handshake to the server');
    assert.ok(x.overloadAtUs > 0);
    // a client that answered a cookie lately is still answered (a spoofed source cannot have)
    pkt(seg('192.0.2.1', 1001, '10.9.9.9', 80, 0x02, 900));
    assert.equal(sent.length, before + 4, 'a verified source gets its SYN-ACK under overload');
    pkt(seg('192.0.2.3', 1001, '10.9.9.9', 80, 0x02, 900));
    assert.equal(sent.length, before + 4, 'an unverified one does not');
    spare = 51;
    pkt(seg('198.51.100.200', 5000, '10.9.9.9', 80, 0x02, 7));
    assert.equal(sent.length, before + 5, 'answered again with room to spare');
  });
});

