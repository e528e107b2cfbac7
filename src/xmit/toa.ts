/**
 * TOA, "TCP option address" (DPVS tcp_in_add_toa, the kernel toa module on real servers): FNAT hides the
 * client behind a local address, so its address and port travel to the server in a TCP option, kind 254:
 * length 8 (port, IPv4 address) or 20 (port, IPv6 address), after the packet's options. The frame grows:
 * it is built in `out`, with IP length, data offset and checksums updated incrementally (RFC 1624; the
 * payload moves by a multiple of 4 bytes, so its 16-bit words keep their alignment).
 */
import { rd16, wr16, wr32 } from '../packet/bytes.js';
import { fold, patch16, setIpv4HeaderChecksum, setL4Checksum } from '../packet/checksum.js';
import { decode } from '../packet/decode.js';
import { PacketView } from '../packet/view.js';
import { nextTcpOption } from '../packet/tcp-options.js';

export const TCPOPT_TOA = 254;

/**
 * Copy the (already translated) TCP packet in `b` into `out` with a TOA option for `client`:`cport`; returns
 * the new frame length, or -1 when the option does not fit (TCP header at most 60 bytes, the packet at most
 * `mtu`).
 */
export function addToa(b: Uint8Array, v: PacketView, out: Uint8Array, client: Uint32Array, cport: number, mtu: number): number {
  const six = v.ipVersion === 6;
  const olen = six ? 20 : 8;
  const hl = v.tcpHdrLen;
  if (hl + olen > 60 && (v.tcpFlags & 0x12) === 0x02) return addToaWithoutTs(b, v, out, client, cport, mtu);
  if (hl + olen > 60 || v.ipTotalLen + olen > mtu) return -1;
  const start = v.frameOff;
  // after the last option: at an end-of-option-list (kind 0) if there is one, so that receivers, which stop
  // at it, read the TOA; the padding after it moves behind the option
  const optAt = optionsEnd(b, v.l4Off, hl);
  const end = v.ipEnd;
  const n = end - start + olen;
  if (n > out.length) return -1;
  out.set(b.subarray(start, optAt), 0);
  const o = optAt - start;
  out[o] = TCPOPT_TOA;
  out[o + 1] = olen;
  wr16(out, o + 2, cport);
  for (let i = 0; i < (six ? 4 : 1); i++) wr32(out, o + 4 + 4 * i, client[i]!);
  // the end-of-list padding (zeros) and the payload, olen bytes further on
  out.set(b.subarray(optAt, end), o + olen);
  const l3 = v.l3Off - start;
  const l4 = v.l4Off - start;
  const csum = l4 + 16;
  // IP length (IPv4 total length, with the header checksum; IPv6 payload length)
  const lenAt = l3 + (six ? 4 : 2);
  const oldLen = rd16(out, lenAt);
  wr16(out, lenAt, oldLen + olen);
  if (!six) patch16(out, l3 + 10, oldLen, oldLen + olen);
  // TCP: the pseudo-header's length, the data offset word, and the option's words (zeros before)
  const tcpLen = v.ipTotalLen - (v.l4Off - v.l3Off);
  patch16(out, csum, tcpLen, tcpLen + olen);
  const oldOff = rd16(out, l4 + 12);
  const newOff = oldOff + ((olen / 4) << 12);
  wr16(out, l4 + 12, newOff);
  patch16(out, csum, oldOff, newOff);
  // the option's bytes, each in the half of the 16-bit word its offset in the header gives it (an option
  // may start at an odd offset); the zeros it displaced contributed nothing wherever they are
  let add = 0;
  for (let i = 0; i < olen; i++) add += ((optAt - v.l4Off + i) & 1) === 0 ? out[o + i]! << 8 : out[o + i]!;
  patch16(out, csum, 0, fold(add));
  return n;
}

const tsView = new PacketView();

/**
 * A SYN whose options leave no room (40 bytes at most): as DPVS, its timestamp option goes (with the NOPs
 * that padded it) to make room for the TOA; the other options keep their order, padded with NOPs to a
 * multiple of 4. The server then answers without timestamps (both ends must offer them). -1 when it still
 * does not fit, or there is no timestamp option to remove.
 */
function addToaWithoutTs(b: Uint8Array, v: PacketView, out: Uint8Array, client: Uint32Array, cport: number, mtu: number): number {
  const six = v.ipVersion === 6;
  const olen = six ? 20 : 8;
  const l4 = v.l4Off;
  const end = l4 + v.tcpHdrLen;
  const kept: number[] = [];
  let hadTs = false;
  let p = nextTcpOption(b, l4 + 20, end);
  for (; p >= 0; p = nextTcpOption(b, p + b[p + 1]!, end)) {
    if (b[p] === 8) hadTs = true;
    else for (let i = 0; i < b[p + 1]!; i++) kept.push(b[p + i]!);
  }
  if (p === -2) return -1;
  while (kept.length % 4 !== 0) kept.unshift(1);
  const hl = 20 + kept.length + olen;
  if (!hadTs || hl > 60) return -1;
  const start = v.frameOff;
  const grow = hl - v.tcpHdrLen;
  if (v.ipTotalLen + grow > mtu || v.ipEnd - start + grow > out.length) return -1;
  out.set(b.subarray(start, l4 + 20), 0);
  const o = l4 + 20 - start;
  out.set(kept, o);
  const t = o + kept.length;
  out[t] = TCPOPT_TOA;
  out[t + 1] = olen;
  wr16(out, t + 2, cport);
  for (let i = 0; i < (six ? 4 : 1); i++) wr32(out, t + 4 + 4 * i, client[i]!);
  out.set(b.subarray(end, v.ipEnd), t + olen);
  const n = v.ipEnd - start + grow;
  out[l4 - start + 12] = ((hl / 4) << 4) | (out[l4 - start + 12]! & 0x0f);
  const lenAt = v.l3Off - start + (six ? 4 : 2);
  wr16(out, lenAt, rd16(out, lenAt) + grow);
  if (decode(out, 0, n, n, v.linktype, tsView) !== 0) return -1;
  if (!six) setIpv4HeaderChecksum(out, tsView.l3Off, tsView.ipHdrLen);
  setL4Checksum(out, tsView);
  return n;
}

/** where a new option goes: the offset of an end-of-option-list (kind 0), or the end of the TCP header */
function optionsEnd(b: Uint8Array, l4: number, hl: number): number {
  const end = l4 + hl;
  for (let p = l4 + 20; p < end; ) {
    const kind = b[p]!;
    if (kind === 0) return p;
    if (kind === 1) {
      p++;
      continue;
    }
    const len = p + 1 < end ? b[p + 1]! : 0;
    if (len < 2) return end; // malformed: leave the options as they are
    p += len;
  }
  return end;
}
