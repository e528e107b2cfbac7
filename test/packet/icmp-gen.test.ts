import { strict as assert } from 'node:assert';
import { ipv4HeaderOk, l4ChecksumStatus } from '../../src/packet/checksum.js';
import { decode } from '../../src/packet/decode.js';
import { PacketView } from '../../src/packet/view.js';
import { icmpError, ICMPGEN_FRAG_NEEDED, ICMPGEN_TIME_EXCEEDED } from '../../src/xmit/icmp-gen.js';
import { eth, icmp, ipv4, ipv6, udp } from '../helpers/packets.js';

function gen(frame: Uint8Array, kind = ICMPGEN_TIME_EXCEEDED): { n: number; out: Uint8Array } {
  const v = new PacketView();
  decode(frame, 0, frame.length, frame.length, 1, v);
  const out = new Uint8Array(2048);
  return { n: icmpError(frame, 1, v, kind, 1400, out), out };
}

const u4 = (src: string, dst: string) => eth(0x0800, ipv4({ proto: 17, src, dst }, udp({ src, dst, sport: 1, dport: 2 }, new Uint8Array(30))));
const u6 = (src: string, dst: string) => eth(0x86dd, ipv6({ nh: 17, src, dst }, udp({ src, dst, sport: 1, dport: 2 }, new Uint8Array(30))));

describe('ICMP errors of the load balancer (icmp-gen)', function () {
  it('are not sent to unspecified or multicast sources, nor about ICMP errors (RFC 1122 3.2.2, RFC 4443 2.4)', function () {
    assert.equal(gen(u4('0.0.0.0', '10.0.0.2')).n, -1);
    assert.equal(gen(u4('224.0.0.5', '10.0.0.2')).n, -1);
    assert.equal(gen(u6('::', '2001:db8::2')).n, -1);
    assert.equal(gen(u6('ff02::1', '2001:db8::2')).n, -1);
    const err = eth(0x0800, ipv4({ proto: 1, src: '10.0.0.1', dst: '10.0.0.2' }, icmp({ type: 3, code: 3 }, ipv4({ proto: 17, src: '10.0.0.2', dst: '10.0.0.1' }, udp({ src: '10.0.0.2', dst: '10.0.0.1', sport: 2, dport: 1 })).subarray(0, 28))));
    assert.equal(gen(err).n, -1);
  });

  it('are addressed back from the destination, with valid checksums (checked by decoding them)', function () {
    for (const [f, six] of [
      [u4('10.0.0.1', '10.0.0.2'), false],
      [u6('2001:db8::1', '2001:db8::2'), true],
    ] as const) {
      for (const kind of [ICMPGEN_TIME_EXCEEDED, ICMPGEN_FRAG_NEEDED]) {
        const { n, out } = gen(f, kind);
        assert.ok(n > 0);
        const w = new PacketView();
        decode(out, 0, n, n, 1, w);
        assert.equal(w.status, 0);
        assert.equal(w.proto, six ? 58 : 1);
        assert.equal(l4ChecksumStatus(out, w), 1, 'ICMP checksum');
        if (!six) assert.ok(ipv4HeaderOk(out, w));
        assert.ok(w.icmpIsError && w.inner.valid, 'quotes the packet');
        assert.equal(w.inner.sport, 1);
      }
    }
  });
});
