/**
 * A PacketView as plain data, for comparing two views field by field: every own field (typed arrays as
 * arrays, the quoted packet's view too), the derived getters, and the TCP options through their getters
 * (the `_` fields are their cache). The buffer and its DataView are left out (the same bytes in both).
 */
import { InnerView, type PacketView } from '../../src/packet/view.js';

function plain(val: unknown): unknown {
  return ArrayBuffer.isView(val) ? Array.from(val as Uint8Array) : val;
}

export function viewSnap(x: PacketView): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(x)) {
    if (k === 'buf' || k === 'dv' || k.startsWith('_')) continue;
    if (val instanceof InnerView) {
      const q: Record<string, unknown> = {};
      for (const [k2, v2] of Object.entries(val)) q[k2] = plain(v2);
      o[k] = q;
    } else o[k] = plain(val);
  }
  for (const g of ['ipEnd', 'ipTruncated', 'l4Len', 'l2Off', 'payloadOff', 'payloadLen'] as const) o[g] = x[g];
  if (x.status === 0 && x.hasL4 && x.proto === 6) for (const g of ['tcpHdrLen', 'seq', 'ack', 'mss', 'wscale', 'sackPerm', 'sackCount', 'hasTs', 'tsVal', 'tcpOptBad'] as const) o[g] = x[g];
  return o;
}
