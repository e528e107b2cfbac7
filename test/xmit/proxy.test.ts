/**
 * PROXY protocol pieces (src/xmit/proxy.ts): the headers against the spec's own examples (HAProxy's
 * proxy-protocol.txt), and the sequence-space moves against a full checksum recomputation (the packet
 * re-verified from scratch), SACK edges and MSS at odd offsets included.
 */
import { strict as assert } from 'node:assert';
import { l4ChecksumStatus } from '../../src/packet/checksum.js';
import { decode } from '../../src/packet/decode.js';
import { PacketView } from '../../src/packet/view.js';
import { ackDown, insertBefore, lowerMss, ppHeader, PP_V1, PP_V2, seqUp } from '../../src/xmit/proxy.js';
import { eth, ipv4, tcp } from '../helpers/packets.js';

const words = (a: string) => Uint32Array.of(a.split('.').reduce((x, y) => x * 256 + Number(y), 0));
const be32 = (x: number) => [(x >>> 24) & 255, (x >>> 16) & 255, (x >>> 8) & 255, x & 255];

function view(f: Uint8Array): PacketView {
  const v = new PacketView();
  assert.equal(decode(f, 0, f.length, f.length, 1, v), 0);
  return v;
}

describe('PROXY protocol (FNAT)', () => {
  it('v1 and v2 headers as the spec writes them', () => {
    const out = new Uint8Array(128);
    const n1 = ppHeader(PP_V1, false, words('192.168.0.1'), words('192.168.0.11'), 56324, 443, out, 0);
    assert.equal(Buffer.from(out.subarray(0, n1)).toString('latin1'), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
    const n2 = ppHeader(PP_V2, false, words('192.168.0.1'), words('192.168.0.11'), 56324, 443, out, 0);
    assert.equal(n2, 28);
    assert.equal(Buffer.from(out.subarray(0, n2)).toString('hex'), '0d0a0d0a000d0a515549540a' + '21' + '11' + '000c' + 'c0a80001' + 'c0a8000b' + 'dc04' + '01bb');
  });

  it('the header goes before the payload, lengths and checksums made anew', () => {
    const f = eth(0x0800, ipv4({ proto: 6, src: '10.77.3.1', dst: '10.77.2.11' }, tcp({ src: '10.77.3.1', dst: '10.77.2.11', sport: 1025, dport: 8081, flags: 0x18, seq: 1000, ack: 5001 }, new TextEncoder().encode('GET / HTTP/1.0\r\n\r\n'))));
    const v = view(f);
    const hdr = new Uint8Array(128);
    const h = ppHeader(PP_V1, false, words('10.77.1.2'), words('10.77.9.1'), 40000, 80, hdr, 0);
    const out = new Uint8Array(2048);
    const n = insertBefore(f, v, 0, 1, hdr, h, out, 1500);
    assert.equal(n, f.length + h);
    const w = view(out.subarray(0, n));
    assert.equal(l4ChecksumStatus(out, w), 1);
    assert.equal(w.seq, 1000);
    assert.equal(Buffer.from(out.subarray(w.payloadOff, w.payloadOff + w.payloadLen)).toString('latin1'), 'PROXY TCP4 10.77.1.2 10.77.9.1 40000 80\r\nGET / HTTP/1.0\r\n\r\n');
    assert.equal(insertBefore(f, v, 0, 1, hdr, h, out, f.length - 14 + h - 1), -1, 'over the MTU');
  });

  it('seqUp, ackDown (with SACK edges at an odd offset) and lowerMss keep the checksum right', () => {
    // NOP, SACK with two blocks: the edges start at offset 23 of the header (odd)
    const sack = [1, 5, 18, ...be32(7000), ...be32(8000), ...be32(9000), ...be32(9500), 1, 1, 1];
    const f = eth(0x0800, ipv4({ proto: 6, src: '10.77.2.11', dst: '10.77.3.1' }, tcp({ src: '10.77.2.11', dst: '10.77.3.1', sport: 8081, dport: 1025, flags: 0x10, seq: 5001, ack: 1100, options: Uint8Array.from(sack) })));
    const v = view(f);
    assert.equal(l4ChecksumStatus(f, v), 1);
    ackDown(f, v, 45);
    assert.equal(l4ChecksumStatus(f, view(f)), 1, 'checksum after ackDown');
    assert.equal(view(f).ack, 1055);
    assert.deepEqual([0, 1, 2, 3].map((i) => new DataView(f.buffer, f.byteOffset).getUint32(14 + 20 + 23 + 4 * i)), [6955, 7955, 8955, 9455]);
    seqUp(f, v, 45);
    assert.equal(view(f).seq, 5046);
    assert.equal(l4ChecksumStatus(f, view(f)), 1, 'checksum after seqUp');
    // a SYN-ACK whose MSS sits at an odd offset (after one NOP)
    const sa = eth(0x0800, ipv4({ proto: 6, src: '10.77.2.11', dst: '10.77.3.1' }, tcp({ src: '10.77.2.11', dst: '10.77.3.1', sport: 8081, dport: 1025, flags: 0x12, seq: 5000, ack: 1001, options: Uint8Array.of(1, 2, 4, 0x05, 0xb4, 1, 1, 1) })));
    assert.ok(lowerMss(sa, view(sa), 52));
    assert.equal(view(sa).mss, 1460 - 52);
    assert.equal(l4ChecksumStatus(sa, view(sa)), 1, 'checksum after lowerMss');
  });
});
