/**
 * NAT rewriting (IPVS ip_vs_nat_xmit / DPVS dp_vs_xmit_nat): inbound packets get the real server as
 * destination, outbound ones the VIP as source. Addresses and ports are replaced in place and the IPv4
 * header checksum and the TCP/UDP checksum are patched incrementally (RFC 1624): the L4 checksum covers the
 * pseudo-header, so an address change is folded into it too. A UDP checksum of 0 over IPv4 (none) stays 0.
 */
import { rd16, rd32, wr16, wr32 } from '../packet/bytes.js';
import { patch16, patch32 } from '../packet/checksum.js';
import { IPPROTO_TCP, IPPROTO_UDP, type PacketView } from '../packet/view.js';

/** Replace the source (`which` = 0) or destination (1) address and port of a decoded TCP/UDP packet. */
export function natRewrite(b: Uint8Array, v: PacketView, which: 0 | 1, addr: Uint32Array, port: number): void {
  const l3 = v.l3Off;
  const l4 = v.l4Off;
  const csum = v.proto === IPPROTO_TCP ? l4 + 16 : v.proto === IPPROTO_UDP ? l4 + 6 : -1;
  // RFC 768: a zero UDP checksum over IPv4 means "not computed"; leave it so
  const l4sum = csum >= 0 && !(v.proto === IPPROTO_UDP && v.ipVersion === 4 && rd16(b, csum) === 0) && !v.isFragment;
  if (v.ipVersion === 4) {
    const at = l3 + (which === 0 ? 12 : 16);
    const old = rd32(b, at);
    const nw = addr[0]!;
    if (old !== nw) {
      wr32(b, at, nw);
      patch32(b, l3 + 10, old, nw);
      if (l4sum) patch32(b, csum, old, nw);
    }
  } else {
    const base = l3 + (which === 0 ? 8 : 24);
    for (let i = 0; i < 4; i++) {
      const at = base + 4 * i;
      const old = rd32(b, at);
      const nw = addr[i]!;
      if (old === nw) continue;
      wr32(b, at, nw);
      if (l4sum) patch32(b, csum, old, nw);
    }
  }
  const pAt = l4 + (which === 0 ? 0 : 2);
  const oldPort = rd16(b, pAt);
  if (oldPort !== port) {
    wr16(b, pAt, port);
    if (l4sum) patch16(b, csum, oldPort, port);
  }
  if (l4sum && v.proto === IPPROTO_UDP && rd16(b, csum) === 0) wr16(b, csum, 0xffff); // RFC 768: 0 is "none"
}
