/**
 * Load balancing in NAT mode over real captures, checked by tshark (with IPv4/TCP/UDP checksum validation
 * on): the VIP is the server of the capture; every emitted packet must either go to a scheduled real server
 * (inbound) or come from the VIP (outbound), with no bad checksum.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CORPUS, haveTool, REPO, run, tsvs } from '../helpers/corpus.js';
import { replayIcmpPair, tsharkPackets } from '../helpers/tshark.js';
import { eth, ip4bytes, ip6bytes, ipv4, ipv6, pcapFile, portUnreachableCapture, tcp } from '../helpers/packets.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-lb-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function config(services: Array<{ proto: string; vip: string; port: number; scheduler?: string; servers: Array<[string, number, number]> }>): string {
  const p = path.join(tmp, `lb-${Math.random().toString(36).slice(2)}.yaml`);
  const y = services
    .map(
      (s) =>
        `  - proto: ${s.proto}\n    vip: "${s.vip}"\n    port: ${s.port}\n    scheduler: ${s.scheduler ?? 'wrr'}\n    forward: nat\n    servers:\n` +
        s.servers.map(([a, port, w]) => `      - { addr: "${a}", port: ${port}, weight: ${w} }\n`).join(''),
    )
    .join('');
  fs.writeFileSync(p, `services:\n${y}`);
  return p;
}

/** a UDP fnat service VIP:53 -> RS:5353 from one local address */
function fnatUdp(vip: string, laddr: string, rs: string): string {
  const p = path.join(tmp, `fnat-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(p, `services:\n  - proto: udp\n    vip: ${vip}\n    port: 53\n    scheduler: rr\n    forward: fnat\n    laddrs: [${laddr}]\n    servers:\n      - { addr: ${rs}, port: 5353 }\n`);
  return p;
}

function portUnreachable(name: string, client: string, vip: string, seenFrom: [string, number], server: string): string {
  const cap = path.join(tmp, name);
  fs.writeFileSync(cap, portUnreachableCapture(client, vip, seenFrom, server, 5353));
  return cap;
}

describe('load balancing, NAT mode (replay, tshark as oracle)', function () {
  this.timeout(120000);
  before(function () {
    if (!haveTool('tshark')) throw new Error('tshark is required');
  });

  const cases: Array<{ file: string; services: Parameters<typeof config>[0] }> = [
    { file: path.join(CORPUS, 'tcp/zeek-http-get.pcap'), services: [{ proto: 'tcp', vip: '192.150.187.43', port: 80, servers: [['10.201.3.1', 8080, 3], ['10.201.3.2', 8080, 1]] }] },
    {
      file: path.join(REPO, 'pcaps/http-dns.pcap'),
      services: [
        { proto: 'tcp', vip: '65.208.228.223', port: 80, scheduler: 'wlc', servers: [['10.201.3.1', 80, 1], ['10.201.3.2', 80, 1]] },
        { proto: 'udp', vip: '145.253.2.203', port: 53, scheduler: 'rr', servers: [['10.201.4.1', 5353, 1]] },
      ],
    },
    { file: path.join(CORPUS, 'ipv6/zeek-ftp-ipv6.pcap'), services: [{ proto: 'tcp', vip: '2001:470:4867:99::21', port: 21, scheduler: 'mh', servers: [['2001:db8::10', 2121, 1], ['2001:db8::11', 2121, 2]] }] },
  ];

  for (const c of cases) {
    it(`${path.basename(c.file)}: inbound to a real server, outbound from the VIP, checksums valid`, async function () {
      const out = path.join(tmp, `${path.basename(c.file)}.out.pcap`);
      const r = await tsvs(['replay', '--json', '--config', config(c.services), '--out', out, c.file]);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      const pkts = await tsharkPackets(out);
      assert.equal(pkts.length, j.lb.emitted);
      assert.ok(pkts.length > 0);
      const servers = new Map<string, number>();
      for (const s of c.services) for (const [a, p] of s.servers) servers.set(a, p);
      let inbound = 0;
      let outbound = 0;
      for (const p of pkts) {
        assert.ok(!p.ipBad && !p.l4Bad, `bad checksum in ${JSON.stringify(p)}`);
        if (servers.has(p.dst)) {
          assert.equal(p.dport, servers.get(p.dst), 'inbound packets carry the server port');
          inbound++;
        } else {
          assert.ok(
            c.services.some((s) => s.vip === p.src && s.port === p.sport),
            `outbound packet not from a VIP: ${JSON.stringify(p)}`,
          );
          outbound++;
        }
      }
      assert.ok(inbound > 0 && outbound > 0, `inbound ${inbound}, outbound ${outbound}`);
    });
  }

  it('fnat: inbound from a local address and port to the server, outbound from the VIP to the client; local ports unique', async function () {
    const p = path.join(tmp, 'fnat.yaml');
    fs.writeFileSync(
      p,
      'services:\n  - proto: tcp\n    vip: 10.10.10.10\n    port: 25565\n    scheduler: wrr\n    forward: fnat\n    laddrs: [10.201.9.1, 10.201.9.2]\n    servers:\n      - { addr: 10.201.3.1, port: 25565, weight: 1 }\n      - { addr: 10.201.3.2, port: 25565, weight: 1 }\n',
    );
    const out = path.join(tmp, 'fnat.pcap');
    const r = await tsvs(['replay', '--json', '--config', p, '--out', out, path.join(CORPUS, 'synflood/stopddos-pkt.TCP.synflood.spoofed.pcap')]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    const pkts = await tsharkPackets(out);
    assert.equal(pkts.length, j.lb.emitted);
    const locals = new Set<string>();
    for (const q of pkts) {
      assert.ok(!q.ipBad && !q.l4Bad, `bad checksum in ${JSON.stringify(q)}`);
      assert.ok(['10.201.9.1', '10.201.9.2'].includes(q.src), `source is a local address: ${q.src}`);
      assert.ok(['10.201.3.1', '10.201.3.2'].includes(q.dst) && q.dport === 25565);
      locals.add(`${q.src}:${q.sport}`);
    }
    assert.equal(locals.size, j.lb.services[0].conns, 'one local address:port per connection');
    assert.ok(j.lb.services[0].conns > 37000);
    // and replies: the HTTP capture with the VIP as its server
    const p2 = path.join(tmp, 'fnat2.yaml');
    fs.writeFileSync(p2, 'services:\n  - proto: tcp\n    vip: 192.150.187.43\n    port: 80\n    scheduler: rr\n    forward: fnat\n    laddrs: [10.201.9.1]\n    servers:\n      - { addr: 10.201.3.1, port: 8080 }\n');
    const out2 = path.join(tmp, 'fnat2.pcap');
    assert.equal((await tsvs(['replay', '--config', p2, '--out', out2, path.join(CORPUS, 'tcp/zeek-http-get.pcap')])).code, 0);
    const seen = (await tsharkPackets(out2)).map((q) => `${q.src}:${q.sport}>${q.dst}:${q.dport}|${q.ipBad || q.l4Bad}`);
    assert.deepEqual([...new Set(seen)].sort(), ['10.201.9.1:1025>10.201.3.1:8080|false', '192.150.187.43:80>141.142.228.5:59856|false']);
  });

  it('fnat with toa: the SYN and the packets acknowledging the SYN-ACK carry the client in TCP option 254 (IPv4 and IPv6); a SYN without room loses its timestamp option for it', async function () {
    const cases = [
      { file: 'tcp/zeek-http-get.pcap', vip: '192.150.187.43', port: 80, laddr: '10.201.9.1', rs: '10.201.3.1', olen: 8 },
      { file: 'ipv6/zeek-ftp-ipv6.pcap', vip: '2001:470:4867:99::21', port: 21, laddr: '2001:db8:9::1', rs: '2001:db8::10', olen: 20 },
    ];
    for (const k of cases) {
      const cfg = path.join(tmp, `toa-${k.port}.yaml`);
      fs.writeFileSync(cfg, `services:\n  - { proto: tcp, vip: "${k.vip}", port: ${k.port}, scheduler: rr, forward: fnat, toa: true, laddrs: ["${k.laddr}"], servers: [{ addr: "${k.rs}", port: ${k.port} }] }\n`);
      const out = path.join(tmp, `toa-${k.port}.pcap`);
      const input = path.join(CORPUS, k.file);
      const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, input]);
      assert.equal(r.code, 0, r.stderr);
      const fields = ['ip.src', 'ipv6.src', 'tcp.srcport', 'tcp.flags.syn', 'tcp.flags.ack', 'tcp.ack_raw', 'tcp.seq_raw', 'tcp.options', 'ip.len', 'ipv6.plen', 'tcp.checksum.status', 'ip.checksum.status', 'frame.time_epoch', 'tcp.hdr_len', 'tcp.options.timestamp.tsval'];
      const read = async (f: string, filter: string) =>
        (await run('tshark', ['-n', '-r', f, '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-Y', filter, '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((x) => ['-e', x])])).stdout.trim().split('\n').map((l) => l.split('|'));
      // the client's packets to the service as captured, and as emitted toward the server
      const sent = await read(input, `tcp.dstport == ${k.port}`);
      const fwd = await read(out, `tcp.dstport == ${k.port}`);
      const serverIsn = new Map<string, string>();
      for (const x of await read(input, `tcp.srcport == ${k.port} && tcp.flags.syn == 1`)) serverIsn.set(x[12]!, x[6]!);
      assert.equal(fwd.length, sent.length);
      let withToa = 0;
      let tsRemoved = 0;
      const acks = new Set([...serverIsn.values()].map((x) => String((Number(x) + 1) >>> 0)));
      for (let i = 0; i < fwd.length; i++) {
        const [o, x] = [sent[i]!, fwd[i]!];
        assert.equal(x[10], '1', 'TCP checksum good');
        if (x[11]) assert.equal(x[11], '1', 'IPv4 header checksum good');
        const opts = x[7]!;
        // TOA: kind fe, length, client port, client address (independently taken from the input packet)
        const client = o[0] || o[1]!;
        const addrHex = Buffer.from(client.includes(':') ? ip6bytes(client) : ip4bytes(client)).toString('hex');
        const toa = `fe${k.olen.toString(16).padStart(2, '0')}${Number(o[2]).toString(16).padStart(4, '0')}${addrHex}`;
        // (a TCP header has room for 40 bytes of options: an IPv6 TOA does not fit beside MSS, WS, TS,
        // SACK-permitted; in a SYN, as DPVS, the timestamp option goes to make room)
        const syn = o[3] === '1' && o[4] === '0';
        const fits = Number(o[13]) + k.olen <= 60;
        const tsOut = syn && !fits && o[14] !== '';
        const want = (syn || (o[3] === '0' && acks.has(o[5]!))) && (fits || tsOut);
        assert.equal(opts.includes(toa), want, `packet ${i}: TOA ${want ? 'expected' : 'not expected'} (${opts})`);
        const len = (p: string[]) => Number(p[8] || p[9]);
        if (tsOut) {
          assert.equal(x[14], '', `packet ${i}: the timestamp option removed (${opts})`);
          for (const keep of [/0204[0-9a-f]{4}/, /0303[0-9a-f]{2}/, /0402/]) assert.match(opts, keep, 'MSS, window scale and SACK-permitted kept');
          assert.equal(len(x) - len(o), Number(x[13]) - Number(o[13]), 'only the TCP header changed length');
          tsRemoved++;
        } else assert.equal(len(x), len(o) + (want ? k.olen : 0));
        if (want) withToa++;
      }
      assert.equal(JSON.parse(r.stdout).lb.toa_added, withToa);
      assert.ok(withToa >= 1, `${k.file}: ${withToa} packets with TOA`);
      if (k.olen === 20) assert.equal(tsRemoved, 1, 'the IPv6 SYN had no room: its timestamp option made it');
    }
  });

  it('a capture taken on the LB: the server’s own replies leave rewritten to the VIP', async function () {
    const C = '10.0.0.1';
    const VIP = '10.201.2.2';
    const RS = '10.201.3.1';
    const frames = [
      eth(0x0800, ipv4({ proto: 6, src: C, dst: VIP }, tcp({ src: C, dst: VIP, sport: 40000, dport: 80, flags: 0x02, seq: 100 }))),
      eth(0x0800, ipv4({ proto: 6, src: RS, dst: C }, tcp({ src: RS, dst: C, sport: 8080, dport: 40000, flags: 0x12, seq: 500, ack: 101 }))),
      eth(0x0800, ipv4({ proto: 6, src: C, dst: VIP }, tcp({ src: C, dst: VIP, sport: 40000, dport: 80, flags: 0x10, seq: 101, ack: 501 }))),
    ];
    const cap = path.join(tmp, 'lbside.pcap');
    fs.writeFileSync(cap, pcapFile(frames.map((data, i) => ({ sec: 1700000000, frac: i, data }))));
    const out = path.join(tmp, 'lbside.out.pcap');
    const r = await tsvs(['replay', '--json', '--events', path.join(tmp, 'lbside.ev'), '--config', config([{ proto: 'tcp', vip: VIP, port: 80, servers: [[RS, 8080, 1]] }]), '--out', out, cap]);
    assert.equal(r.code, 0, r.stderr);
    const pkts = await tsharkPackets(out);
    assert.deepEqual(
      pkts.map((p) => [p.src, p.sport, p.dst, p.dport, p.ipBad || p.l4Bad]),
      [
        [C, 40000, RS, 8080, false],
        [VIP, 80, C, 40000, false],
        [C, 40000, RS, 8080, false],
      ],
    );
    const states = fs
      .readFileSync(path.join(tmp, 'lbside.ev'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).state);
    assert.deepEqual(states, ['SYN_RECV', 'ESTABLISHED'], 'the dpvs profile by default with a configuration');
  });

  it('an ICMP port unreachable from the server reaches the client translated, outer and inner headers', async function () {
    const C = '10.0.0.1';
    const VIP = '10.201.2.2';
    const RS = '10.201.3.1';
    // what the server received (dst rewritten to it) and quotes back
    const cap = portUnreachable('icmp.pcap', C, VIP, [C, 33000], RS);
    const out = path.join(tmp, 'icmp.out.pcap');
    const r = await tsvs(['replay', '--json', '--config', config([{ proto: 'udp', vip: VIP, port: 53, servers: [[RS, 5353, 1]] }]), '--out', out, cap]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.lb.emitted, 2);
    assert.equal(j.conntrack.related, 1);
    const t = await run('tshark', [
      '-n', '-r', out, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-Y', 'icmp',
      '-T', 'fields', '-E', 'separator=|', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'udp.srcport', '-e', 'udp.dstport', '-e', 'ip.checksum.status', '-e', 'icmp.checksum.status',
    ]);
    const f = t.stdout.trim().split('|');
    assert.equal(f[0], `${VIP},${C}`, 'outer source is the VIP; the quoted packet came from the client');
    assert.equal(f[1], `${C},${VIP}`, 'the quoted packet went to the VIP');
    assert.equal(f[2], '33000');
    assert.equal(f[3], '53', 'the quoted destination port is the service port');
    assert.equal(f[4], '1,1', 'outer and quoted IPv4 header checksums are good');
    assert.equal(f[5], '1', 'the ICMP checksum is good');
  });

  it('decrement_ttl: forwarded packets leave one hop lower with a good header checksum; TTL 1 is answered with time exceeded', async function () {
    const C = '10.0.0.1';
    const VIP = '10.201.2.2';
    const RS = '10.201.3.1';
    const syn = (ttl: number, sport: number) => eth(0x0800, ipv4({ proto: 6, src: C, dst: VIP, ttl }, tcp({ src: C, dst: VIP, sport, dport: 80, flags: 0x02, seq: 100 })));
    const reply = eth(0x0800, ipv4({ proto: 6, src: RS, dst: C, ttl: 2 }, tcp({ src: RS, dst: C, sport: 8080, dport: 40000, flags: 0x12, seq: 500, ack: 101 })));
    const cap = path.join(tmp, 'ttl.pcap');
    fs.writeFileSync(cap, pcapFile([syn(64, 40000), reply, syn(1, 40001), syn(0, 40002), syn(255, 40003)].map((data, i) => ({ sec: 1700000000, frac: i, data }))));
    const services = `services:\n  - { proto: tcp, vip: "${VIP}", port: 80, scheduler: rr, forward: nat, servers: [{ addr: "${RS}", port: 8080 }] }\n`;
    const fields = ['ip.ttl', 'tcp.srcport', 'tcp.dstport', 'ip.checksum.status', 'tcp.checksum.status', 'ip.src', 'icmp.type', 'icmp.code', 'icmp.checksum.status'].flatMap((f) => ['-e', f]);
    const lines = async (out: string) =>
      (await run('tshark', ['-n', '-r', out, '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=|', ...fields])).stdout.trim().split('\n');
    for (const on of [false, true]) {
      const cfg = path.join(tmp, `ttl-${on}.yaml`);
      fs.writeFileSync(cfg, services + (on ? 'decrement_ttl: true\n' : ''));
      const out = path.join(tmp, `ttl-${on}.out.pcap`);
      const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, cap]);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      if (on) {
        assert.equal(j.lb.not_emitted.ttl_exceeded, 2, 'the SYNs with TTL 1 and 0');
        assert.deepEqual(j.lb.icmp_sent, { frag_needed: 0, time_exceeded: 2 });
        // each expiring SYN is answered from the VIP with ICMP time exceeded (11/0) quoting it as it arrived
        assert.deepEqual(await lines(out), [
          `63|40000|8080|1|1|${C}|||`,
          `1|80|40000|1|1|${VIP}|||`,
          `64,1|40001|80|1,1|1|${VIP},${C}|11|0|1`,
          `64,0|40002|80|1,1|1|${VIP},${C}|11|0|1`,
          `254|40003|8080|1|1|${C}|||`,
        ]);
      } else {
        assert.equal(j.lb.not_emitted.ttl_exceeded, undefined);
        assert.deepEqual((await lines(out)).map((l) => l.split('|').slice(0, 5).join('|')), ['64|40000|8080|1|1', '2|80|40000|1|1', '1|40001|8080|1|1', '0|40002|8080|1|1', '255|40003|8080|1|1']);
      }
    }
  });

  it('mtu: a DF packet too big for the path is answered with fragmentation needed / packet too big, quoting it (nat, tunnel, IPv6)', async function () {
    const C = '10.0.0.1';
    const VIP = '10.201.2.2';
    const RS = '10.201.3.1';
    const C6 = '2001:db8:1::1';
    const VIP6 = '2001:db8:2::2';
    const RS6 = '2001:db8:3::1';
    const data = (n: number) => new Uint8Array(n).fill(0x61);
    const seg = (df: boolean, sport: number, flags: number, n: number) => eth(0x0800, ipv4({ proto: 6, src: C, dst: VIP, df }, tcp({ src: C, dst: VIP, sport, dport: 80, flags, seq: 100 }, data(n))));
    const seg6 = (sport: number, flags: number, n: number) => eth(0x86dd, ipv6({ nh: 6, src: C6, dst: VIP6 }, tcp({ src: C6, dst: VIP6, sport, dport: 80, flags, seq: 100 }, data(n))));
    const cap = path.join(tmp, 'mtu.pcap');
    fs.writeFileSync(
      cap,
      pcapFile(
        [
          seg(true, 40000, 0x02, 0), // SYN
          seg(true, 40000, 0x18, 1460), // 1500 bytes, DF
          seg(false, 40000, 0x18, 1460), // 1500 bytes, may be fragmented: forwarded (as is: tsvs does not fragment)
          seg(true, 40000, 0x18, 1360), // 1400 bytes: fits
          seg6(40000, 0x02, 0),
          seg6(40000, 0x18, 1440), // 1500 bytes IPv6
        ].map((d, i) => ({ sec: 1700000000, frac: i, data: d })),
      ),
    );
    const fields = ['ip.src', 'ipv6.src', 'ip.dst', 'ipv6.dst', 'icmp.type', 'icmp.code', 'icmp.mtu', 'icmpv6.type', 'icmpv6.mtu', 'icmp.checksum.status', 'icmpv6.checksum.status', 'ip.checksum.status', 'frame.len'];
    const rows = async (out: string) =>
      (await run('tshark', ['-n', '-r', out, '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])])).stdout.trim().split('\n').map((l) => l.split('|'));
    const svc = (fwd: string) =>
      `  - { proto: tcp, vip: "${VIP}", port: 80, scheduler: rr, forward: ${fwd}, servers: [{ addr: "${RS}", port: 80 }] }\n  - { proto: tcp, vip: "${VIP6}", port: 80, scheduler: rr, forward: ${fwd}, servers: [{ addr: "${RS6}", port: 80 }] }\n`;
    // nat with a 1400-byte path: the 1500-byte DF segment and the IPv6 one are answered, the rest forwarded
    const cfg = path.join(tmp, 'mtu.yaml');
    fs.writeFileSync(cfg, `mtu: 1400\nservices:\n${svc('nat')}`);
    const out = path.join(tmp, 'mtu.out.pcap');
    const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, cap]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.lb.icmp_sent, { frag_needed: 2, time_exceeded: 0 });
    assert.equal(j.lb.not_emitted.frag_needed, 2);
    const got = await rows(out);
    const icmp = got.filter((f) => f[4] !== '' || f[7] !== '');
    assert.equal(got.length, 6, 'SYN, error, the non-DF segment, the 1400-byte segment, IPv6 SYN, error');
    // IPv4: 3/4 with next-hop MTU 1400 from the VIP to the client, 576 bytes of IP; IPv6: type 2, MTU 1400, 1280 bytes
    assert.deepEqual(icmp[0]!.slice(0, 7), [`${VIP},${C}`, '', `${C},${VIP}`, '', '3', '4', '1400']);
    assert.equal(icmp[0]![9], '1');
    assert.equal(icmp[0]![11], '1,1', 'outer and quoted IPv4 header checksums');
    assert.equal(Number(icmp[0]![12]), 14 + 576);
    assert.deepEqual([icmp[1]![1], icmp[1]![3], icmp[1]![7], icmp[1]![8], icmp[1]![10]], [`${VIP6},${C6}`, `${C6},${VIP6}`, '2', '1400', '1']);
    assert.equal(Number(icmp[1]![12]), 14 + 1280);
    const forwarded = got.filter((f) => f[4] === '' && f[7] === '');
    assert.deepEqual(forwarded.map((f) => [f[2] || f[3], Number(f[12])]), [[RS, 54], [RS, 1514], [RS, 1414], [RS6, 74]]);
    // tunnel over a 1500-byte path: IP-in-IP adds 20 bytes (IPv6: 40), so the path for the inner packet is 1480 / 1460
    const cfg2 = path.join(tmp, 'mtu-tun.yaml');
    fs.writeFileSync(cfg2, `services:\n${svc('tunnel')}`);
    const out2 = path.join(tmp, 'mtu-tun.out.pcap');
    const r2 = await tsvs(['replay', '--json', '--config', cfg2, '--out', out2, cap]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.deepEqual(JSON.parse(r2.stdout).lb.icmp_sent, { frag_needed: 2, time_exceeded: 0 });
    const errs = (await rows(out2)).filter((f) => f[4] === '3' || f[7] === '2');
    assert.deepEqual(errs.map((f) => f[6] || f[8]), ['1480', '1460']);
  });

  it('persistence keeps a client (and its /24) on one server until the template expires', async function () {
    const VIP = '10.201.2.2';
    const frames: Array<{ sec: number; frac: number; data: Uint8Array }> = [];
    // a complete short connection from client:port at time t (client side capture: replies from the VIP)
    const conn = (client: string, cport: number, t: number) => {
      const c2s = (flags: number, seq: number, ack: number, dt: number) =>
        frames.push({ sec: 1700000000 + t, frac: dt * 1000, data: eth(0x0800, ipv4({ proto: 6, src: client, dst: VIP }, tcp({ src: client, dst: VIP, sport: cport, dport: 80, flags, seq, ack }))) });
      const s2c = (flags: number, seq: number, ack: number, dt: number) =>
        frames.push({ sec: 1700000000 + t, frac: dt * 1000, data: eth(0x0800, ipv4({ proto: 6, src: VIP, dst: client }, tcp({ src: VIP, dst: client, sport: 80, dport: cport, flags, seq, ack }))) });
      c2s(0x02, 100, 0, 1);
      s2c(0x12, 500, 101, 2);
      c2s(0x10, 101, 501, 3);
      c2s(0x11, 101, 501, 4);
      s2c(0x11, 501, 102, 5);
      c2s(0x10, 102, 502, 6);
    };
    conn('10.0.0.1', 40001, 0);
    conn('10.0.0.1', 40002, 10);
    conn('10.0.0.77', 40003, 20); // same /24
    conn('10.0.9.9', 40004, 25); // another /24: scheduled (rr: the other server)
    conn('10.0.0.1', 40005, 200); // long after the template expired: scheduled again
    const cap = path.join(tmp, 'persist.pcap');
    fs.writeFileSync(cap, pcapFile(frames));
    const p = path.join(tmp, 'persist.yaml');
    fs.writeFileSync(
      p,
      `services:\n  - proto: tcp\n    vip: ${VIP}\n    port: 80\n    scheduler: rr\n    persistence: { timeout: 60, netmask: 24 }\n    servers:\n      - { addr: 10.201.3.1, port: 80 }\n      - { addr: 10.201.3.2, port: 80 }\n      - { addr: 10.201.3.3, port: 80 }\n`,
    );
    const out = path.join(tmp, 'persist.out.pcap');
    const r = await tsvs(['replay', '--json', '--config', p, '--out', out, cap]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    const server = new Map<number, Set<string>>();
    for (const q of await tsharkPackets(out)) {
      assert.ok(!q.ipBad && !q.l4Bad);
      if (q.dport === 80 && q.dst.startsWith('10.201.3.')) server.set(q.sport, (server.get(q.sport) ?? new Set()).add(q.dst));
    }
    const one = (port: number) => {
      const s = server.get(port)!;
      assert.equal(s.size, 1, `connection ${port} stays on one server`);
      return [...s][0];
    };
    assert.equal(one(40002), one(40001), 'same client, within the persistence timeout');
    assert.equal(one(40003), one(40001), 'same /24, within the persistence timeout');
    assert.notEqual(one(40004), one(40001), 'another /24 is scheduled (rr alternates)');
    // rr over three servers: 40001 -> first, 40004 -> second, 40005 (new template) -> third
    assert.notEqual(one(40005), one(40001), 'after the template expired the client is scheduled anew (rr moved on)');
    assert.notEqual(one(40005), one(40004));
    assert.deepEqual(j.lb.templates, { created: 3, expired: 2, open_at_end: 1 });
  });

  it('fnat: an ICMP port unreachable from the server reaches the client as the VIP’s, quoting client -> VIP', async function () {
    const C = '10.0.0.1';
    const VIP = '10.201.2.2';
    const RS = '10.201.3.1';
    const LADDR = '10.201.9.1';
    // the server got it from the local address and its first pooled port (1025), and quotes that
    const cap = portUnreachable('ficmp.pcap', C, VIP, [LADDR, 1025], RS);
    const [fwd, err] = await replayIcmpPair(fnatUdp(VIP, LADDR, RS), cap, path.join(tmp, 'ficmp.out.pcap'));
    assert.deepEqual(fwd!.slice(0, 5), [LADDR, RS, '1025', '5353', '1']);
    assert.equal(fwd![6], '1', 'the forwarded datagram’s UDP checksum is good');
    assert.deepEqual(err!.slice(0, 6), [`${VIP},${C}`, `${C},${VIP}`, '33000', '53', '1,1', '1']);
  });

  it('fnat: an ICMP error from the client about a reply reaches the server as the local address’s, quoting server -> local', async function () {
    const C = '10.0.0.1';
    const VIP = '10.201.2.2';
    const RS = '10.201.3.1';
    const LADDR = '10.201.9.1';
    // the client's query, then its port unreachable about the answer it got from VIP:53 (quoting VIP:53 -> C:33000)
    const cap = path.join(tmp, 'ficmp-in.pcap');
    fs.writeFileSync(cap, portUnreachableCapture(C, VIP, [VIP, 53], C, 33000));
    const [, err] = await replayIcmpPair(fnatUdp(VIP, LADDR, RS), cap, path.join(tmp, 'ficmp-in.out.pcap'));
    assert.deepEqual(err!.slice(0, 6), [`${LADDR},${RS}`, `${RS},${LADDR}`, '5353', '1025', '1,1', '1'], 'outer local -> server; quoted server:5353 -> local:1025; checksums good');
  });

  it('wrr over a 37.8k-SYN flood: connections split 3:1 between the servers', async function () {
    const out = path.join(tmp, 'flood.out.pcap');
    const r = await tsvs([
      'replay',
      '--json',
      '--config',
      config([{ proto: 'tcp', vip: '10.10.10.10', port: 25565, servers: [['10.201.3.1', 25565, 3], ['10.201.3.2', 25565, 1]] }]),
      path.join(CORPUS, 'synflood/stopddos-pkt.TCP.synflood.spoofed.pcap'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout).lb.services[0];
    const [a, b] = s.servers.map((x: { conns: number }) => x.conns);
    assert.equal(a + b, s.conns);
    assert.ok(Math.abs(a - 3 * b) <= 3, `wrr split ${a}:${b}`);
    assert.ok(s.conns > 37000);
    void out;
  });

  it('bad configurations exit 2 with the key path', async function () {
    const cap = path.join(REPO, 'pcaps/http-get.pcap');
    const bad: Array<[string, RegExp]> = [
      ['services:\n  - { proto: tcp, vip: 10.0.0.1, port: 80, scheduler: random, servers: [{ addr: 10.0.0.2, port: 80 }] }\n', /services\[0\]\.scheduler: expected one of rr, wrr, .*got "random"/],
      ['services:\n  - { proto: tcp, vip: 10.0.0, port: 80, scheduler: rr, servers: [{ addr: 10.0.0.2, port: 80 }] }\n', /services\[0\]\.vip: expected an IPv4 or IPv6 address, got "10\.0\.0"/],
      ['services:\n  - { proto: tcp, vip: 10.0.0.1, port: 80, scheduler: rr, servers: [{ addr: 10.0.0.2, port: 80, weight: -1 }] }\n', /services\[0\]\.servers\[0\]\.weight: .*-1/],
      [
        'services:\n  - { proto: tcp, vip: 10.0.0.1, port: 80, scheduler: rr, servers: [{ addr: 10.0.0.2, port: 80 }] }\n  - { proto: tcp, vip: 10.0.0.1, port: 80, scheduler: wrr, servers: [{ addr: 10.0.0.3, port: 80 }] }\n',
        /services\[1\]: duplicate service tcp 10\.0\.0\.1 80/,
      ],
      ['services: [\n', /line \d+, column \d+/],
      [
        'services:\n  - { proto: tcp, vip: 10.0.0.1, port: 80, scheduler: rr, forward: dr, synproxy: true, servers: [{ addr: 10.0.0.2, port: 80, mac: "02:00:00:00:00:01" }] }\n',
        /services\[0\]\.servers\[0\]\.forward: synproxy works with nat and fnat forwarding, not dr/,
      ],
      ['services: []\nsynproxy: { wscale: 15 }\n', /synproxy\.wscale: /],
    ];
    for (const [text, re] of bad) {
      const p = path.join(tmp, 'bad.yaml');
      fs.writeFileSync(p, text);
      const r = await tsvs(['replay', '--config', p, cap]);
      assert.equal(r.code, 2, text);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, new RegExp(`^tsvs: ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
      assert.match(lines[0]!, re);
    }
  });
});
