import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { ipv4HeaderOk } from '../../src/packet/checksum.js';
import { decode } from '../../src/packet/decode.js';
import { PacketView } from '../../src/packet/view.js';
import { decrementTtl } from '../../src/xmit/ttl.js';
import { eth, ipv4, ipv6, udp } from '../helpers/packets.js';

describe('TTL / hop limit decrement (decrement_ttl)', function () {
  it('IPv4: TTL 2..255 drops by one and the header checksum stays valid; 0 and 1 are refused untouched (fast-check)', function () {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 255 }), (ttl, id, tos) => {
        const f = eth(0x0800, ipv4({ proto: 17, ttl, id, tos, src: '192.0.2.1', dst: '198.51.100.7' }, udp({ src: '192.0.2.1', dst: '198.51.100.7', sport: 1, dport: 2 })));
        const before = f.slice();
        const v = new PacketView();
        decode(f, 0, f.length, f.length, 1, v);
        const ok = decrementTtl(f, v);
        assert.equal(ok, ttl > 1);
        if (!ok) assert.deepEqual(f, before);
        else {
          assert.equal(f[14 + 8], ttl - 1);
          assert.ok(ipv4HeaderOk(f, v), 'the incrementally patched checksum verifies');
        }
      }),
    );
  });

  it('IPv6: the hop limit drops by one; 0 and 1 are refused', function () {
    for (const hops of [0, 1, 2, 64, 255]) {
      const f = eth(0x86dd, ipv6({ nh: 17, hops, src: '2001:db8::1', dst: '2001:db8::2' }, udp({ src: '2001:db8::1', dst: '2001:db8::2', sport: 1, dport: 2 })));
      const v = new PacketView();
      decode(f, 0, f.length, f.length, 1, v);
      assert.equal(decrementTtl(f, v), hops > 1);
      assert.equal(f[14 + 7], hops > 1 ? hops - 1 : hops);
    }
  });
});
