import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { decode, decodeGeneral } from '../../src/packet/decode.js';
import { formatAddr } from '../../src/packet/bytes.js';
import { DROP_REASONS, NUM_STATUS, statusName } from '../../src/packet/status.js';
import { PacketView } from '../../src/packet/view.js';
import { viewSnap } from '../helpers/view-snap.js';
import { bytes, concat, eth, icmp, ipv4, ipv6, loopback, sll, sll2, tcp, udp } from '../helpers/packets.js';

const v = new PacketView();
const seen = new Set<string>();

function dec(frame: Uint8Array, linktype = 1, wirelen = frame.length): string {
  // decode at a non-zero offset inside a larger buffer, as the reader hands out views into its window
  const buf = new Uint8Array(frame.length + 13);
  buf.set(frame, 7);
  decode(buf, 7, frame.length, wirelen, linktype, v);
  const name = statusName(v.status);
  seen.add(name);
  return name;
}

const tcpOpts = bytes(2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 30, 0, 0, 0, 40, 0, 0);

describe('decode', function () {
  describe('link layers', function () {
    const ip = ipv4({ proto: 6 }, tcp({ flags: 0x02 }));
    const cases: Array<[string, Uint8Array, number]> = [
      ['Ethernet', eth(0x0800, ip), 1],
      ['SLL', sll(0x0800, ip), 113],
      ['SLL2', sll2(0x0800, ip), 276],
      ['RAW 101', ip, 101],
      ['RAW 12', ip, 12],
      ['IPV4 228', ip, 228],
      ['NULL (host order)', loopback(2, ip), 0],
      ['LOOP (network order)', loopback(2, ip, true), 108],
    ];
    for (const [name, frame, lt] of cases) {
      it(`${name} → IPv4/TCP`, function () {
        assert.equal(dec(frame, lt), 'ok');
        assert.equal(v.ipVersion, 4);
        assert.equal(v.proto, 6);
        assert.equal(v.sport, 40000);
        assert.equal(v.dport, 80);
        assert.equal(formatAddr(v.src, 4), '10.0.0.1');
        assert.equal(formatAddr(v.dst, 4), '10.0.0.2');
      });
    }

    it('IPv6 over RAW 101, IPV6 229, NULL family 30 and 24, SLL2', function () {
      const p6 = ipv6({ nh: 17 }, udp({ v6: true }, bytes(1, 2, 3)));
      for (const [f, lt] of [
        [p6, 101],
        [p6, 229],
        [loopback(30, p6), 0],
        [loopback(24, p6, true), 108],
        [sll2(0x86dd, p6), 276],
      ] as Array<[Uint8Array, number]>) {
        assert.equal(dec(f, lt), 'ok');
        assert.equal(v.ipVersion, 6);
        assert.equal(v.proto, 17);
        assert.equal(formatAddr(v.src, 6), '2001:db8::1');
        assert.equal(v.payloadLen, 3);
      }
    });

    it('802.1Q, 802.1ad + 802.1Q (QinQ), and three stacked tags', function () {
      const ip = ipv4({ proto: 17 }, udp({}));
      assert.equal(dec(eth(0x0800, ip, [{ vid: 100 }])), 'ok');
      assert.deepEqual([v.vlanCount, v.vlans[0]], [1, 100]);
      assert.equal(dec(eth(0x0800, ip, [{ tpid: 0x88a8, vid: 10 }, { vid: 20 }])), 'ok');
      assert.deepEqual([v.vlanCount, v.vlans[0], v.vlans[1]], [2, 10, 20]);
      assert.equal(dec(eth(0x0800, ip, [{ vid: 1 }, { vid: 10 }, { vid: 100 }])), 'ok');
      assert.deepEqual([v.vlanCount, v.vlans[2], v.proto], [3, 100, 17]);
    });

    it('MPLS label stack and PPPoE session', function () {
      const ip = ipv4({ proto: 17 }, udp({}));
      assert.equal(dec(eth(0x8847, concat(bytes(0, 1, 0, 64, 0, 2, 1, 64), ip))), 'ok');
      assert.equal(v.mplsLabels, 2);
      assert.equal(v.proto, 17);
      assert.equal(dec(eth(0x8864, concat(bytes(0x11, 0, 0, 1, 0, ip.length + 2, 0, 0x21), ip))), 'ok');
      assert.equal(v.ipVersion, 4);
    });

    it('non-IP frames are counted as not_ip, not dropped', function () {
      assert.equal(dec(eth(0x0806, new Uint8Array(28))), 'not_ip');
      assert.equal(dec(loopback(7, new Uint8Array(20)), 0), 'not_ip');
    });
  });

  describe('IPv4', function () {
    it('header fields, options, DF, TTL', function () {
      const f = eth(0x0800, ipv4({ proto: 17, ttl: 9, df: true, id: 77, options: bytes(1, 1, 1, 0) }, udp({}, bytes(9))));
      assert.equal(dec(f), 'ok');
      assert.deepEqual([v.ipHdrLen, v.ttl, v.df, v.ipId, v.isFragment, v.payloadLen], [24, 9, true, 77, false, 1]);
      assert.equal(v.l4Off, 7 + 14 + 24);
    });

    it('first fragment decodes L4, a non-first fragment has none', function () {
      assert.equal(dec(eth(0x0800, ipv4({ proto: 17, mf: true }, udp({ len: 100 }, new Uint8Array(16))))), 'ok');
      assert.deepEqual([v.isFragment, v.hasL4, v.moreFragments, v.sport], [true, true, true, 5353]);
      assert.equal(dec(eth(0x0800, ipv4({ proto: 17, fragOffset: 24 }, new Uint8Array(16)))), 'ok');
      assert.deepEqual([v.isFragment, v.hasL4, v.fragOffset], [true, false, 24]);
    });

    it('total length 0 (TSO super-packet) takes the length from the capture', function () {
      const f = eth(0x0800, ipv4({ proto: 6, totalLen: 0 }, tcp({}, new Uint8Array(100))));
      assert.equal(dec(f), 'ok');
      assert.equal(v.ipTotalLen, 140);
      assert.equal(v.payloadLen, 100);
    });

    it('snap-length cut: IP length beyond the capture but within the wire length', function () {
      const full = eth(0x0800, ipv4({ proto: 6 }, tcp({}, new Uint8Array(500))));
      assert.equal(dec(full.subarray(0, 80), 1, full.length), 'ok');
      assert.equal(v.ipTruncated, true);
      assert.equal(v.payloadLen, 500);
    });

    it('Ethernet padding after a short IP packet is not payload', function () {
      const f = concat(eth(0x0800, ipv4({ proto: 17 }, udp({}, bytes(7)))), new Uint8Array(17));
      assert.equal(dec(f), 'ok');
      assert.equal(v.payloadLen, 1);
      assert.equal(v.ipEnd - v.l3Off, 29);
    });
  });

  describe('IPv6 extension headers', function () {
    it('hop-by-hop, routing, destination options, AH → TCP', function () {
      const ext = [
        { type: 0, body: bytes(1, 4, 0, 0, 0, 0) },
        { type: 43, body: bytes(0, 0, 0, 0, 0, 0) },
        { type: 60, body: bytes(1, 4, 0, 0, 0, 0) },
        { type: 51, body: new Uint8Array(14) },
      ];
      assert.equal(dec(eth(0x86dd, ipv6({ nh: 6, ext }, tcp({ v6: true, flags: 0x12 })))), 'ok');
      assert.equal(v.proto, 6);
      assert.equal(v.ipHdrLen, 40 + 8 + 8 + 8 + 16);
      assert.equal(v.tcpFlags, 0x12);
    });

    it('fragment header: first fragment, non-first fragment, atomic fragment', function () {
      const first = ipv6({ nh: 17, ext: [{ type: 44, body: bytes(0, 1, 0, 0, 0, 9) }] }, udp({ v6: true, len: 200 }, new Uint8Array(8)));
      assert.equal(dec(eth(0x86dd, first)), 'ok');
      assert.deepEqual([v.isFragment, v.hasL4, v.ipId], [true, true, 9]);
      const later = ipv6({ nh: 17, ext: [{ type: 44, body: bytes(0, 0x40, 0, 0, 0, 9) }] }, new Uint8Array(16));
      assert.equal(dec(eth(0x86dd, later)), 'ok');
      assert.deepEqual([v.isFragment, v.hasL4, v.fragOffset], [true, false, 64]);
      const atomic = ipv6({ nh: 6, ext: [{ type: 44, body: bytes(0, 0, 0, 0, 0, 1) }] }, tcp({ v6: true }));
      assert.equal(dec(eth(0x86dd, atomic)), 'ok');
      assert.deepEqual([v.isFragment, v.hasL4], [false, true]);
    });

    it('payload length 0 without a jumbo option (BIG TCP) takes the length from the capture', function () {
      const f = ipv6({ nh: 6, payloadLen: 0 }, tcp({ v6: true }, new Uint8Array(1000)));
      assert.equal(dec(f, 229), 'ok');
      assert.equal(v.ipTotalLen, 40 + 20 + 1000);
    });
  });

  describe('TCP', function () {
    it('options: MSS, window scale, SACK-permitted, timestamps, SACK blocks', function () {
      assert.equal(dec(eth(0x0800, ipv4({ proto: 6 }, tcp({ options: tcpOpts, seq: 0xfffffff0, ack: 7, flags: 0x18, win: 512 }, bytes(1, 2))))), 'ok');
      assert.deepEqual([v.mss, v.wscale, v.sackPerm, v.hasTs, v.tsVal, v.tsEcr, v.sackCount], [1460, 7, true, true, 1, 2, 2]);
      assert.deepEqual([v.seq, v.ack, v.tcpFlags, v.window, v.tcpHdrLen, v.payloadLen], [0xfffffff0, 7, 0x18, 512, 60, 2]);
      assert.equal(v.sackOff, v.l4Off + 20 + 22);
      assert.equal(v.tcpOptBad, false);
    });

    it('an option with an impossible length stops option parsing without dropping', function () {
      assert.equal(dec(eth(0x0800, ipv4({ proto: 6 }, tcp({ options: bytes(2, 4, 1, 0, 8, 1, 0, 0) })))), 'ok');
      assert.deepEqual([v.mss, v.tcpOptBad, v.hasTs], [256, true, false]);
    });
  });

  describe('ICMP', function () {
    it('echo request carries its id', function () {
      assert.equal(dec(eth(0x0800, ipv4({ proto: 1 }, icmp({ type: 8, rest: (0x4242 << 16) | 1 })))), 'ok');
      assert.deepEqual([v.icmpType, v.icmpId, v.icmpIsError], [8, 0x4242, false]);
    });

    it('port unreachable quotes the original IPv4/UDP header', function () {
      const orig = ipv4({ proto: 17, src: '10.0.0.2', dst: '10.0.0.1' }, udp({ sport: 53, dport: 33000 }, new Uint8Array(30)));
      const f = eth(0x0800, ipv4({ proto: 1, src: '10.0.0.1', dst: '10.0.0.2' }, icmp({ type: 3, code: 3 }, orig.subarray(0, 28))));
      assert.equal(dec(f), 'ok');
      assert.equal(v.icmpIsError, true);
      assert.equal(v.inner.valid, true);
      assert.deepEqual([v.inner.proto, v.inner.sport, v.inner.dport, formatAddr(v.inner.src, 4)], [17, 53, 33000, '10.0.0.2']);
    });

    it('ICMPv6 packet too big quotes IPv6 + extension header + TCP', function () {
      const orig = ipv6({ nh: 6, ext: [{ type: 60, body: bytes(1, 4, 0, 0, 0, 0) }] }, tcp({ v6: true, sport: 443, dport: 5555, seq: 99 }));
      const f = ipv6({ nh: 58 }, icmp({ v6: true, type: 2, rest: 1280 }, orig.subarray(0, 56)));
      assert.equal(dec(f, 229), 'ok');
      assert.equal(v.inner.valid, true);
      assert.deepEqual([v.inner.ipVersion, v.inner.proto, v.inner.sport, v.inner.dport, v.inner.seq], [6, 6, 443, 5555, 99]);
    });

    it('an error without a quoted packet decodes, with no inner view', function () {
      assert.equal(dec(eth(0x0800, ipv4({ proto: 1 }, icmp({ type: 3, code: 1 })))), 'ok');
      assert.deepEqual([v.icmpIsError, v.inner.valid], [true, false]);
    });
  });

  describe('drop reasons', function () {
    const ip4tcp = ipv4({ proto: 6 }, tcp({}));
    const cases: Array<[string, () => string]> = [
      ['unsupported_linktype', () => dec(ip4tcp, 147)],
      ['l2_truncated', () => dec(new Uint8Array(10), 1)],
      ['l2_truncated', () => dec(new Uint8Array(12), 113)],
      ['l2_truncated', () => dec(new Uint8Array(19), 276)],
      ['l2_truncated', () => dec(new Uint8Array(3), 0)],
      ['vlan_truncated', () => dec(concat(eth(0x8100, new Uint8Array(0)), bytes(0, 1)))],
      ['mpls_truncated', () => dec(eth(0x8847, bytes(0, 1, 0)))],
      ['pppoe_truncated', () => dec(eth(0x8864, bytes(0x11, 0, 0)))],
      ['ip_bad_version', () => dec(eth(0x0800, ipv4({ proto: 6, version: 5 }, tcp({}))))],
      ['ip_bad_version', () => dec(eth(0x86dd, ipv4({ proto: 6 }, tcp({}))))],
      ['ip_bad_version', () => dec(bytes(0x50, 0, 0, 0), 101)],
      ['ipv4_truncated', () => dec(eth(0x0800, ip4tcp.subarray(0, 19)))],
      ['ipv4_truncated', () => dec(eth(0x0800, ipv4({ proto: 6, options: new Uint8Array(8) }, new Uint8Array(0)).subarray(0, 24)))],
      ['ipv4_bad_ihl', () => dec(eth(0x0800, ipv4({ proto: 6, ihl: 4 }, tcp({}))))],
      ['ipv4_bad_total_length', () => dec(eth(0x0800, ipv4({ proto: 6, totalLen: 12 }, tcp({}))))],
      ['ipv4_bad_total_length', () => dec(eth(0x0800, ipv4({ proto: 6, totalLen: 1000 }, tcp({}))))],
      ['ipv6_truncated', () => dec(ipv6({ nh: 6 }, new Uint8Array(0)).subarray(0, 39), 229)],
      ['ipv6_bad_payload_length', () => dec(ipv6({ nh: 6, payloadLen: 900 }, tcp({ v6: true })), 229)],
      ['ipv6_ext_truncated', () => dec(ipv6({ nh: 6, ext: [{ type: 0, body: bytes(1, 4, 0, 0, 0, 0) }] }, new Uint8Array(0)).subarray(0, 44), 229)],
      ['ipv6_too_many_ext', () => dec(ipv6({ nh: 59, ext: Array.from({ length: 20 }, () => ({ type: 60, body: bytes(1, 4, 0, 0, 0, 0) })) }, new Uint8Array(0)), 229)],
      ['tcp_truncated', () => dec(eth(0x0800, ipv4({ proto: 6 }, tcp({}).subarray(0, 19))))],
      ['tcp_bad_data_offset', () => dec(eth(0x0800, ipv4({ proto: 6 }, tcp({ doff: 4 }))))],
      ['tcp_bad_data_offset', () => dec(eth(0x0800, ipv4({ proto: 6 }, tcp({ doff: 15 }))))],
      ['udp_truncated', () => dec(eth(0x0800, ipv4({ proto: 17 }, udp({}).subarray(0, 7))))],
      ['udp_bad_length', () => dec(eth(0x0800, ipv4({ proto: 17 }, udp({ len: 7 }))))],
      ['udp_bad_length', () => dec(eth(0x0800, ipv4({ proto: 17 }, udp({ len: 9 }))))],
      ['icmp_truncated', () => dec(eth(0x0800, ipv4({ proto: 1 }, icmp({ type: 8 }).subarray(0, 6))))],
      ['icmpv6_truncated', () => dec(ipv6({ nh: 58 }, icmp({ type: 128, v6: true }).subarray(0, 4)), 229)],
    ];
    for (const [want, f] of cases) {
      it(want, function () {
        assert.equal(f(), want);
      });
    }

    it('every drop reason is produced by some test', function () {
      const missing = DROP_REASONS.filter((r) => !seen.has(r));
      assert.deepEqual(missing, []);
    });
  });

  it('never throws and always returns a known status on arbitrary bytes (fast-check)', function () {
    const lts = [0, 1, 12, 101, 108, 113, 228, 229, 276, 999];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(...lts), fc.nat(300), (data, lt, wire) => {
        const st = decode(data, 0, data.length, Math.max(wire, data.length), lt, v);
        assert.ok(st >= 0 && st < NUM_STATUS);
        if (st === 0 && v.hasL4) assert.ok(v.l4Off >= 0 && v.l4Off <= data.length);
      }),
      { numRuns: 20000 },
    );
  });

  it('the fast path fills the view exactly like the general decoder (fast-check on mutated IPv4 TCP/UDP frames)', function () {
    const fields = [
      'status', 'linktype', 'frameOff', 'caplen', 'l2Off', 'ethertype', 'vlanCount', 'mplsLabels', 'l3Off', 'ipVersion', 'ipHdrLen',
      'ipTotalLen', 'ipEnd', 'ipTruncated', 'isFragment', 'proto', 'hasL4', 'l4Off', 'l4Len', 'sport', 'dport', 'payloadOff', 'payloadLen',
      'ttl', 'tos', 'ipId', 'df',
    ] as const;
    const tcpFields = ['tcpFlags', 'seq', 'ack', 'window', 'tcpHdrLen', 'mss', 'wscale', 'sackPerm', 'sackCount', 'hasTs'] as const;
    const snap = (x: PacketView) => {
      const o: Record<string, unknown> = {};
      for (const f of fields) o[f] = x[f];
      if (x.status === 0 && x.hasL4 && x.proto === 6) for (const f of tcpFields) o[f] = x[f];
      if (x.status === 0) o.addr = [x.src[0], x.dst[0]];
      return o;
    };
    const bases = [
      eth(0x0800, ipv4({ proto: 6 }, tcp({ options: tcpOpts }, bytes(1, 2, 3)))),
      eth(0x0800, ipv4({ proto: 17 }, udp({}, bytes(1, 2, 3, 4, 5)))),
      ipv4({ proto: 6, src: '192.168.1.1', dst: '172.16.0.9' }, tcp({ flags: 0x12 }, new Uint8Array(30))),
      ipv4({ proto: 17 }, udp({}, new Uint8Array(12))),
    ];
    const v2 = new PacketView();
    fc.assert(
      fc.property(fc.nat(bases.length - 1), fc.array(fc.tuple(fc.nat(80), fc.nat(255)), { maxLength: 4 }), fc.nat(20), (bi, muts, trim) => {
        const base = bases[bi]!;
        const m = base.slice(0, Math.max(0, base.length - trim));
        for (const [i, b] of muts) if (i < m.length) m[i] = b;
        const lt = bi < 2 ? 1 : 228;
        decode(m, 0, m.length, base.length, lt, v);
        decodeGeneral(m, 0, m.length, base.length, lt, v2);
        assert.deepEqual(snap(v), snap(v2));
      }),
      { numRuns: 20000 },
    );
  });

  it('never reads past the captured bytes: mutated real packets decode the same inside a larger buffer', function () {
    const base = eth(0x0800, ipv4({ proto: 6 }, tcp({ options: tcpOpts }, bytes(1, 2, 3))));
    const v2 = new PacketView();
    fc.assert(
      fc.property(fc.nat(base.length), fc.array(fc.tuple(fc.nat(base.length - 1), fc.nat(255)), { maxLength: 6 }), fc.nat(255), (cut, muts, fill) => {
        const m = base.slice();
        for (const [i, b] of muts) m[i] = b;
        const frame = m.subarray(0, cut);
        const padded = new Uint8Array(cut + 64).fill(fill);
        padded.set(frame, 0);
        const a = decode(frame, 0, cut, cut, 1, v);
        const b = decode(padded, 0, cut, cut, 1, v2);
        assert.equal(a, b);
        assert.equal(v.hasL4, v2.hasL4);
        if (a === 0 && v.hasL4 && v.proto === 6) {
          // TCP fields exist only when a TCP header was decoded (the view's contract)
          assert.equal(v.mss, v2.mss);
          assert.equal(v.sackCount, v2.sackCount);
        }
      }),
      { numRuns: 5000 },
    );
  });
  it('a reused view reads exactly like a fresh one: random interleavings of every packet kind (fast-check)', function () {
    // what the packet path sees: one view for every packet. Each packet decoded into it must leave it as a new
    // view decoding that packet alone would be, field for field (a stale icmpIsError once sent NAT traffic out
    // untranslated after one ICMP error)
    const q4 = ipv4({ proto: 6, src: '10.0.0.2', dst: '10.0.0.1' }, tcp({ sport: 80, dport: 40000, seq: 5 })).subarray(0, 28);
    const q6 = ipv6({ nh: 17 }, udp({ v6: true, sport: 53, dport: 999 }, new Uint8Array(4))).subarray(0, 48);
    const kinds: Array<[Uint8Array, number, number?]> = [
      [eth(0x0800, ipv4({ proto: 6 }, tcp({ options: tcpOpts, flags: 0x12 }, bytes(1, 2, 3)))), 1],
      [eth(0x0800, ipv4({ proto: 17 }, udp({}, bytes(1, 2, 3, 4, 5)))), 1],
      [ipv4({ proto: 6, src: '192.168.1.1' }, tcp({ flags: 0x10 }, new Uint8Array(30))), 228],
      [eth(0x0800, ipv4({ proto: 6, options: bytes(1, 1, 1, 0) }, tcp({ flags: 0x02 }))), 1],
      [eth(0x0800, ipv4({ proto: 1 }, icmp({ type: 3, code: 3 }, q4))), 1],
      [eth(0x0800, ipv4({ proto: 1 }, icmp({ type: 11 }, ipv4({ proto: 1 }, icmp({ type: 8, rest: 0x10001 })).subarray(0, 28)))), 1],
      [eth(0x0800, ipv4({ proto: 1 }, icmp({ type: 8, rest: (0x4242 << 16) | 1 }))), 1],
      [eth(0x0800, ipv4({ proto: 1 }, icmp({ type: 3, code: 1 }))), 1],
      [ipv6({ nh: 58 }, icmp({ v6: true, type: 1, code: 4 }, q6)), 229],
      [ipv6({ nh: 58 }, icmp({ v6: true, type: 128, rest: 0x70001 })), 229],
      [eth(0x86dd, ipv6({ nh: 6, ext: [{ type: 0, body: bytes(1, 4, 0, 0, 0, 0) }, { type: 43, body: bytes(0, 0, 0, 0, 0, 0) }] }, tcp({ v6: true, flags: 0x18 }, bytes(9)))), 1],
      [eth(0x86dd, ipv6({ nh: 17, ext: [{ type: 44, body: bytes(0, 1, 0, 0, 0, 9) }] }, udp({ v6: true, len: 200 }, new Uint8Array(8)))), 1],
      [eth(0x86dd, ipv6({ nh: 17, ext: [{ type: 44, body: bytes(0, 0x40, 0, 0, 0, 9) }] }, new Uint8Array(16))), 1],
      [eth(0x0800, ipv4({ proto: 17, mf: true }, udp({ len: 100 }, new Uint8Array(16)))), 1],
      [eth(0x0800, ipv4({ proto: 17, fragOffset: 24 }, new Uint8Array(16))), 1],
      [eth(0x0800, ipv4({ proto: 17 }, udp({})), [{ vid: 100 }, { vid: 7 }]), 1],
      [eth(0x8847, concat(bytes(0, 1, 0, 64, 0, 2, 1, 64), ipv4({ proto: 47 }, new Uint8Array(8)))), 1],
      [sll(0x0800, ipv4({ proto: 6 }, tcp({}))), 113],
      [sll2(0x86dd, ipv6({ nh: 6 }, tcp({ v6: true }))), 276],
      [loopback(2, ipv4({ proto: 17 }, udp({}))), 0],
      [eth(0x0806, new Uint8Array(28)), 1],
      [eth(0x0800, ipv4({ proto: 6 }, tcp({ doff: 4 }))), 1],
      [eth(0x0800, ipv4({ proto: 17 }, udp({ len: 9 }))), 1],
      [eth(0x86dd, ipv6({ nh: 6 }, new Uint8Array(0))).subarray(0, 40), 1],
      [eth(0x0800, ipv4({ proto: 6 }, tcp({}, new Uint8Array(500)))).subarray(0, 70), 1, 554],
      [ipv4({ proto: 6 }, tcp({})), 147],
    ];
    const shared = new PacketView();
    fc.assert(
      fc.property(fc.array(fc.nat(kinds.length - 1), { minLength: 1, maxLength: 40 }), (seq) => {
        for (const i of seq) {
          const [frame, lt, wire] = kinds[i]!;
          const st = decode(frame, 0, frame.length, wire ?? frame.length, lt, shared);
          const fresh = new PacketView();
          assert.equal(decode(frame, 0, frame.length, wire ?? frame.length, lt, fresh), st);
          assert.deepEqual(viewSnap(shared), viewSnap(fresh), `packet kind ${i} after ${seq.slice(0, seq.indexOf(i)).join(',')}`);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
