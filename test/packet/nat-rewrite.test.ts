import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { ipv4HeaderOk, l4ChecksumStatus } from '../../src/packet/checksum.js';
import { decode } from '../../src/packet/decode.js';
import { PacketView } from '../../src/packet/view.js';
import { natRewrite, natRewrite4 } from '../../src/xmit/nat.js';
import { eth, ipv4, tcp, udp } from '../helpers/packets.js';

const ip = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

describe('NAT rewriting (RFC 1624 incremental checksums)', function () {
  it('natRewrite4 (both endpoints at once) gives the bytes of two natRewrite calls, and the checksums verify (fast-check)', function () {
    const u32 = fc.integer({ min: 0, max: 0xffffffff });
    const port = fc.integer({ min: 0, max: 0xffff });
    fc.assert(
      fc.property(u32, u32, port, port, u32, u32, port, port, fc.constantFrom(6, 17), fc.uint8Array({ maxLength: 40 }), fc.boolean(), (s, d, sp, dp, ns, nd, nsp, ndp, proto, payload, noUdpSum) => {
        const l4 = proto === 6 ? tcp({ src: ip(s), dst: ip(d), sport: sp, dport: dp, flags: 0x10 }, payload) : udp({ src: ip(s), dst: ip(d), sport: sp, dport: dp }, payload);
        if (proto === 17 && noUdpSum) l4[6] = l4[7] = 0; // RFC 768: no checksum, must stay so
        const f = eth(0x0800, ipv4({ proto, src: ip(s), dst: ip(d) }, l4));
        const g = f.slice();
        const v = new PacketView();
        decode(f, 0, f.length, f.length, 1, v);
        natRewrite4(v, ns, nd, ((nsp << 16) | ndp) >>> 0);
        const w = new PacketView();
        decode(g, 0, g.length, g.length, 1, w);
        natRewrite(g, w, 0, Uint32Array.of(ns, 0, 0, 0), nsp);
        natRewrite(g, w, 1, Uint32Array.of(nd, 0, 0, 0), ndp);
        // one's complement has two zeros: the two paths may differ only in how they write one
        const sumAt = 14 + 20 + (proto === 6 ? 16 : 6);
        const z = (x: number) => (x === 0xffff ? 0 : x);
        assert.equal(z((f[sumAt]! << 8) | f[sumAt + 1]!), z((g[sumAt]! << 8) | g[sumAt + 1]!));
        f[sumAt] = g[sumAt]!;
        f[sumAt + 1] = g[sumAt + 1]!;
        assert.deepEqual(f, g);
        decode(f, 0, f.length, f.length, 1, v);
        assert.ok(ipv4HeaderOk(f, v));
        assert.equal(v.src[0], ns);
        assert.equal(v.dport, ndp);
        if (proto === 17 && noUdpSum) assert.equal((f[sumAt]! << 8) | f[sumAt + 1]!, 0);
        else assert.equal(l4ChecksumStatus(f, v), 1, 'the L4 checksum verifies');
      }),
    );
  });

  it('natRewrite4: both checksums verify for each of the 65536 values of an address word (every carry of the fold)', function () {
    // a random sample rarely makes the one's-complement sum carry out of 16 bits twice; a sweep of one word does
    const f0 = eth(0x0800, ipv4({ proto: 6, src: '10.0.0.1', dst: '192.168.1.1' }, tcp({ src: '10.0.0.1', dst: '192.168.1.1', sport: 40000, dport: 80, flags: 0x18 }, new Uint8Array(10))));
    const v = new PacketView();
    let bad = 0;
    for (let lo = 0; lo < 0x10000; lo++) {
      const f = f0.slice();
      decode(f, 0, f.length, f.length, 1, v);
      natRewrite4(v, 0x0ac90000 | lo, 0xc0a80102 | 0, (1025 << 16) | 8080);
      decode(f, 0, f.length, f.length, 1, v);
      if (!ipv4HeaderOk(f, v) || l4ChecksumStatus(f, v) !== 1) bad++;
    }
    assert.equal(bad, 0, 'addresses whose rewrite left a bad checksum');
  });
});
