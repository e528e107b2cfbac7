/**
 * Sequence translation of a spliced synproxy connection (DPVS dp_vs_synproxy_dnat_handler /
 * dp_vs_synproxy_snat_handler, with what DPVS leaves out: window rescaling and timestamps). The client
 * knows the server's byte stream as starting at the cookie, the server at its own ISN: delta = cookie -
 * server ISN. The client's own numbers reach the server unchanged (the server's SYN carried the client's
 * ISN). Likewise timestamps: the client echoes the LB's TSval, the server its own: tsDelta = LB TSval -
 * server TSval. Windows are rescaled where the two halves agreed on different scale factors.
 * Checksums are patched incrementally (RFC 1624).
 */
import { rd16, rd32, wr16, wr32 } from '../packet/bytes.js';
import { patch16, patch32 } from '../packet/checksum.js';
import type { PacketView } from '../packet/view.js';

/** rescale a window field by 2^shift (shift may be negative), at most 65535 */
function rescale(b: Uint8Array, l4: number, shift: number): void {
  if (shift === 0) return;
  const w = rd16(b, l4 + 14);
  let n = shift > 0 ? w * 2 ** shift : Math.floor(w / 2 ** -shift);
  if (n > 0xffff) n = 0xffff;
  if (n === w) return;
  wr16(b, l4 + 14, n);
  patch16(b, l4 + 16, w, n);
}

/**
 * Walk the options: add `tsAdd` to the timestamp's TSval (which = 2) or TSecr (which = 6), and subtract
 * `sackSub` from every SACK block edge (when `sack`).
 */
function options(b: Uint8Array, v: PacketView, tsOff: number, tsAdd: number, sack: boolean, sackSub: number): void {
  const l4 = v.l4Off;
  const end = Math.min(l4 + v.tcpHdrLen, v.frameOff + v.caplen);
  let i = l4 + 20;
  while (i < end) {
    const kind = b[i]!;
    if (kind === 0) return;
    if (kind === 1) {
      i++;
      continue;
    }
    if (i + 1 >= end) return;
    const len = b[i + 1]!;
    if (len < 2 || i + len > end) return;
    if (kind === 8 && len === 10 && tsAdd !== 0) {
      const o = i + tsOff;
      const old = rd32(b, o);
      const n = (old + tsAdd) >>> 0;
      wr32(b, o, n);
      patch32(b, l4 + 16, old, n);
    } else if (kind === 5 && sack && sackSub !== 0) {
      for (let o = i + 2; o + 4 <= i + len; o += 4) {
        const old = rd32(b, o);
        const n = (old - sackSub) >>> 0;
        wr32(b, o, n);
        patch32(b, l4 + 16, old, n);
      }
    }
    i += len;
  }
}

/** server -> client: seq += delta, TSval += tsDelta, window rescaled by 2^shift */
export function seqOut(b: Uint8Array, v: PacketView, delta: number, tsDelta: number, shift: number): void {
  const l4 = v.l4Off;
  if (delta !== 0) {
    const old = rd32(b, l4 + 4);
    const n = (old + delta) >>> 0;
    wr32(b, l4 + 4, n);
    patch32(b, l4 + 16, old, n);
  }
  if (tsDelta !== 0 && v.tcpHdrLen > 20) options(b, v, 2, tsDelta, false, 0);
  rescale(b, l4, shift);
}

/** client -> server: ack and SACK edges -= delta, TSecr -= tsDelta, window rescaled by 2^shift */
export function seqIn(b: Uint8Array, v: PacketView, delta: number, tsDelta: number, shift: number): void {
  const l4 = v.l4Off;
  if (delta !== 0 && b[l4 + 13]! & 0x10) {
    const old = rd32(b, l4 + 8);
    const n = (old - delta) >>> 0;
    wr32(b, l4 + 8, n);
    patch32(b, l4 + 16, old, n);
  }
  if (v.tcpHdrLen > 20) options(b, v, 6, (0 - tsDelta) >>> 0, true, delta);
  rescale(b, l4, shift);
}
