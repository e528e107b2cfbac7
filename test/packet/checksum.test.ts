import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { rd16, rd32, wr16, wr32 } from '../../src/packet/bytes.js';
import { csumUpdate16, csumUpdate32, finish, fold, ipv4HeaderOk, l4ChecksumStatus, patch32, setIpv4HeaderChecksum, setL4Checksum, sum16 } from '../../src/packet/checksum.js';
import { decode } from '../../src/packet/decode.js';
import { PacketView } from '../../src/packet/view.js';
import { bytes, eth, icmp, ipv4, ipv6, refChecksum, tcp, udp } from '../helpers/packets.js';

const v = new PacketView();

describe('checksum', function () {
  it('RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2', function () {
    assert.equal(fold(sum16(bytes(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7), 0, 8)), 0xddf2);
  });

  it('fold: 16 bits congruent to the sum modulo 0xffff, for sums up to 2^53 (fast-check)', function () {
    // one's-complement folding keeps the sum modulo 2^16 - 1; a non-zero sum never folds to 0
    const check = (x: number) => {
      const f = fold(x);
      assert.ok(f >= 0 && f <= 0xffff, `fold(${x}) = ${f}`);
      assert.equal(f % 0xffff, x % 0xffff, `fold(${x})`);
      if (x > 0) assert.notEqual(f, 0);
    };
    for (const x of [0, 1, 0xffff, 0x10000, 0x1fffe, 0x7fffffff, 0x80000000, 0xffffffff, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1]) check(x);
    fc.assert(fc.property(fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.maxSafeNat()), check));
  });

  it('matches the reference loop on random data, odd lengths included (fast-check)', function () {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (d) => {
        assert.equal(finish(sum16(d, 0, d.length)), refChecksum(d));
      }),
    );
  });

  it('verifies good IPv4/TCP/UDP/ICMP and IPv6/TCP/UDP/ICMPv6 packets built by the test helpers', function () {
    const frames: Array<[Uint8Array, number]> = [
      [eth(0x0800, ipv4({ proto: 6 }, tcp({}, bytes(1, 2, 3)))), 1],
      [eth(0x0800, ipv4({ proto: 17 }, udp({}, bytes(1, 2, 3)))), 1],
      [eth(0x0800, ipv4({ proto: 1 }, icmp({ type: 8, rest: 0x10001 }, bytes(1, 2, 3)))), 1],
      [ipv6({ nh: 6 }, tcp({ v6: true }, bytes(9))), 229],
      [ipv6({ nh: 17 }, udp({ v6: true }, bytes(9, 8))), 229],
      [ipv6({ nh: 58, ext: [{ type: 0, body: bytes(1, 4, 0, 0, 0, 0) }] }, icmp({ v6: true, type: 128 }, bytes(9, 8, 7))), 229],
    ];
    for (const [f, lt] of frames) {
      decode(f, 0, f.length, f.length, lt, v);
      if (v.ipVersion === 4) assert.ok(ipv4HeaderOk(f, v));
      assert.equal(l4ChecksumStatus(f, v), 1);
      f[v.payloadOff] = f[v.payloadOff]! ^ 0x40;
      assert.equal(l4ChecksumStatus(f, v), 0, 'a flipped payload bit is detected');
    }
  });

  it('setIpv4HeaderChecksum / setL4Checksum rebuild what the reference computed', function () {
    const f = eth(0x0800, ipv4({ proto: 6, ttl: 3 }, tcp({ seq: 5 }, bytes(1, 2, 3, 4, 5))));
    const want = f.slice();
    decode(f, 0, f.length, f.length, 1, v);
    wr16(f, v.l3Off + 10, 0xbeef);
    wr16(f, v.l4Off + 16, 0x1234);
    setIpv4HeaderChecksum(f, v.l3Off, v.ipHdrLen);
    setL4Checksum(f, v);
    assert.deepEqual(f, want);
  });

  it('RFC 1624 incremental update equals a full recomputation (fast-check, 16 and 32-bit fields)', function () {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 64 }), fc.nat(), fc.integer({ min: 0, max: 0xffffffff }), (d0, pos, val) => {
        const d = d0.length % 2 ? d0.subarray(0, d0.length - 1) : d0;
        const words = d.length / 2;
        const i = (pos % words) * 2;
        const before = finish(sum16(d, 0, d.length));
        const old16 = rd16(d, i);
        const c = d.slice();
        wr16(c, i, val & 0xffff);
        assert.equal(fold(csumUpdate16(before, old16, val & 0xffff)) % 0xffff, refChecksum(c) % 0xffff);
        if (i + 4 <= d.length) {
          const c2 = d.slice();
          const old32 = rd32(c2, i);
          wr32(c2, i, val);
          assert.equal(csumUpdate32(before, old32, val) % 0xffff, refChecksum(c2) % 0xffff);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('rewriting a TCP destination address with patch32 keeps IP and TCP checksums valid', function () {
    const f = eth(0x0800, ipv4({ proto: 6, dst: '10.0.0.2' }, tcp({ dst: '10.0.0.2' }, bytes(1, 2, 3))));
    decode(f, 0, f.length, f.length, 1, v);
    const oldDst = rd32(f, v.l3Off + 16);
    const newDst = 0xc0a80107;
    wr32(f, v.l3Off + 16, newDst);
    patch32(f, v.l3Off + 10, oldDst, newDst);
    patch32(f, v.l4Off + 16, oldDst, newDst);
    decode(f, 0, f.length, f.length, 1, v);
    assert.ok(ipv4HeaderOk(f, v));
    assert.equal(l4ChecksumStatus(f, v), 1);
  });
});
