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

/** add `add` to the 32-bit field at `o`, patching the TCP checksum */
function add32(b: Uint8Array, l4: number, o: number, add: number): void {
  const old = rd32(b, o);
  const n = (old + add) >>> 0;
  wr32(b, o, n);
  patch32(b, l4 + 16, old, n);
}

/** server -> client: seq += delta, TSval += tsDelta, window rescaled by 2^shift */
export function seqOut(b: Uint8Array, v: PacketView, delta: number, tsDelta: number, shift: number): void {
  const l4 = v.l4Off;
  if (delta !== 0) add32(b, l4, l4 + 4, delta);
  if (tsDelta !== 0 && v.hasTs) add32(b, l4, v.tsOff, tsDelta);
  rescale(b, l4, shift);
}

/** client -> server: ack and SACK edges -= delta, TSecr -= tsDelta, window rescaled by 2^shift */
export function seqIn(b: Uint8Array, v: PacketView, delta: number, tsDelta: number, shift: number): void {
  const l4 = v.l4Off;
  if (v.tcpHdrLen > 20) {
    // the options as the view parsed them: SACK edges and the timestamp
    if (delta !== 0) for (let o = v.sackOff, end = o + 8 * v.sackCount; o < end; o += 4) add32(b, l4, o, -delta);
    if (tsDelta !== 0 && v.hasTs) add32(b, l4, v.tsOff + 4, -tsDelta);
  }
  if (delta !== 0 && b[l4 + 13]! & 0x10) add32(b, l4, l4 + 8, -delta);
  rescale(b, l4, shift);
}
