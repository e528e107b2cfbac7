/**
 * TCP options (RFC 9293 §3.2; MSS RFC 6691, window scale and timestamps RFC 7323, SACK RFC 2018), parsed on
 * demand from the segment a PacketView points at.
 */
import { rd16, rd32 } from './bytes.js';
import type { PacketView } from './view.js';

export const MAX_SACK_BLOCKS = 4;

/**
 * Parse the TCP options of a decoded segment into the view (called lazily by the view's option getters).
 * Options cut by the snap length are parsed as far as they were captured.
 */
export function parseTcpOptions(v: PacketView): void {
  v.optsParsed = true;
  v._mss = -1;
  v._wscale = -1;
  v._sackPerm = false;
  v._sackCount = 0;
  v._sackOff = -1;
  v._hasTs = false;
  v._tsOff = -1;
  v._tsVal = 0;
  v._tsEcr = 0;
  v._tcpOptBad = false;
  if (!v.hasL4 || v.proto !== 6 || v.status !== 0 || v.tcpHdrLen <= 20) return;
  const b = v.buf;
  let o = v.l4Off + 20;
  const end = Math.min(v.l4Off + v.tcpHdrLen, v.frameOff + v.caplen);
  while (o < end) {
    const kind = b[o]!;
    if (kind === 0) return;
    if (kind === 1) {
      o++;
      continue;
    }
    if (o + 2 > end) return;
    const len = b[o + 1]!;
    if (len < 2 || o + len > end) {
      v._tcpOptBad = true;
      return;
    }
    switch (kind) {
      case 2:
        if (len === 4) v._mss = rd16(b, o + 2);
        else v._tcpOptBad = true;
        break;
      case 3:
        if (len === 3) v._wscale = b[o + 2]!;
        else v._tcpOptBad = true;
        break;
      case 4:
        if (len === 2) v._sackPerm = true;
        else v._tcpOptBad = true;
        break;
      case 5: {
        const n = (len - 2) >>> 3;
        if ((len - 2) & 7 || n === 0) v._tcpOptBad = true;
        else {
          v._sackOff = o + 2;
          v._sackCount = n > MAX_SACK_BLOCKS ? MAX_SACK_BLOCKS : n;
        }
        break;
      }
      case 8:
        if (len === 10) {
          v._hasTs = true;
          v._tsOff = o + 2;
          v._tsVal = rd32(b, o + 2);
          v._tsEcr = rd32(b, o + 6);
        } else v._tcpOptBad = true;
        break;
      default:
        break;
    }
    o += len;
  }
}

/**
 * The next option of a TCP header ending at `end`, from offset `p` (an option or a NOP): its offset (kind 2
 * and up, its length checked), -1 at the end of the list, -2 for a malformed option. A walk with no
 * callback, so nothing is allocated per packet:
 *   for (let p = nextTcpOption(b, l4 + 20, end); p >= 0; p = nextTcpOption(b, p + b[p + 1]!, end)) ...
 */
export function nextTcpOption(b: Uint8Array, p: number, end: number): number {
  while (p < end) {
    const kind = b[p]!;
    if (kind === 0) return -1;
    if (kind === 1) {
      p++;
      continue;
    }
    const len = p + 1 < end ? b[p + 1]! : 0;
    return len < 2 || p + len > end ? -2 : p;
  }
  return -1;
}
