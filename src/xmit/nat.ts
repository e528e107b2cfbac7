/**
 * NAT rewriting (IPVS ip_vs_nat_xmit / DPVS dp_vs_xmit_nat): inbound packets get the real server as
 * destination, outbound ones the VIP as source. Addresses and ports are replaced in place and the IPv4
 * header checksum and the TCP/UDP checksum are patched incrementally (RFC 1624): the L4 checksum covers the
 * pseudo-header, so an address change is folded into it too. A UDP checksum of 0 over IPv4 (none) stays 0.
 */
import { rd16, rd32, wr16, wr32 } from '../packet/bytes.js';
import { fold, patch16, patch32, setL4Checksum } from '../packet/checksum.js';
import { IPPROTO_TCP, IPPROTO_UDP, type PacketView } from '../packet/view.js';
import { FWD_NAT, replyFromServer, type ForwardMode } from './mode.js';

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
  if (oldPort !== port) setPort(b, pAt, oldPort, port, l4sum ? csum : -1);
  if (l4sum && v.proto === IPPROTO_UDP && rd16(b, csum) === 0) wr16(b, csum, 0xffff); // RFC 768: 0 is "none"
}

/**
 * Rewrite both endpoints of an IPv4 TCP/UDP packet (not a fragment) at once: source address `saddr`,
 * destination `daddr`, ports `ports` (sport << 16 | dport); one RFC 1624 update of each checksum for all the
 * changes (the fast path of natRewrite for the common case). Only the bits of the three words count: the
 * engine passes them as int32 (`x | 0`), since a number above 2^31 passed to a call V8 did not inline is
 * boxed in a new heap number, per packet.
 */
export function natRewrite4(v: PacketView, saddr: number, daddr: number, ports: number): void {
  // in the buffer the packet was decoded from, through the view's DataView over it
  const d = v.dv;
  const l3 = v.l3Off;
  const l4 = v.l4Off;
  const os = d.getInt32(l3 + 12);
  const od = d.getInt32(l3 + 16);
  const op = d.getInt32(l4);
  // sum of ~old + new over the 16-bit words of both addresses (RFC 1624 eqn. 3)
  const da = (~os >>> 16) + (~os & 0xffff) + (saddr >>> 16) + (saddr & 0xffff) + (~od >>> 16) + (~od & 0xffff) + (daddr >>> 16) + (daddr & 0xffff);
  d.setInt32(l3 + 12, saddr);
  d.setInt32(l3 + 16, daddr);
  d.setUint16(l3 + 10, ~fold((~d.getUint16(l3 + 10) & 0xffff) + da) & 0xffff);
  d.setInt32(l4, ports);
  const co = v.proto === IPPROTO_TCP ? l4 + 16 : l4 + 6;
  const old = d.getUint16(co);
  if (v.proto === IPPROTO_UDP && old === 0) return; // RFC 768: no checksum
  let c = ~fold((~old & 0xffff) + da + (~op >>> 16) + (ports >>> 16) + (~op & 0xffff) + (ports & 0xffff)) & 0xffff;
  if (c === 0 && v.proto === IPPROTO_UDP) c = 0xffff; // RFC 768: 0 means none
  d.setUint16(co, c);
}

/**
 * Translate an ICMP/ICMPv6 error related to a translated connection (IPVS ip_vs_nat_icmp, DPVS
 * dp_vs_fnat/snat icmp handling). An error quotes the packet it is about, which travelled the other way: the
 * quoted source is where the error goes (the outer destination), the quoted destination usually where it came
 * from (the outer source; a router on the path keeps its own address). The quoted source address `sFrom`
 * becomes `sTo` with port `sPort`, the quoted destination `dFrom` becomes `dTo` with port `dPort`, and the outer
 * addresses follow wherever they equal those. The outer and quoted IPv4 header checksums and the quoted UDP
 * checksum are patched; the ICMP checksum is recomputed over the message (ICMPv6: with the pseudo-header).
 */
export function icmpXlate(
  b: Uint8Array,
  v: PacketView,
  sFrom: Uint32Array,
  sTo: Uint32Array,
  sPort: number,
  dFrom: Uint32Array,
  dTo: Uint32Array,
  dPort: number,
): void {
  const q = v.inner;
  const six = v.ipVersion === 6;
  const qv6 = q.ipVersion === 6;
  const l3 = v.l3Off;
  replaceAddr(b, l3 + (six ? 8 : 12), six, six ? -1 : l3 + 10, dFrom, dTo);
  replaceAddr(b, l3 + (six ? 24 : 16), six, six ? -1 : l3 + 10, sFrom, sTo);
  const il3 = q.l3Off;
  const qs = replaceAddr(b, il3 + (qv6 ? 8 : 12), qv6, qv6 ? -1 : il3 + 10, sFrom, sTo);
  const qd = replaceAddr(b, il3 + (qv6 ? 24 : 16), qv6, qv6 ? -1 : il3 + 10, dFrom, dTo);
  const il4 = q.l4Off;
  // the quoted UDP checksum covers the pseudo-header: fold the address and port changes in
  const udpSum = q.proto === IPPROTO_UDP && rd16(b, il4 + 6) !== 0 ? il4 + 6 : -1;
  setPort(b, il4, rd16(b, il4), sPort, udpSum);
  setPort(b, il4 + 2, rd16(b, il4 + 2), dPort, udpSum);
  if (udpSum >= 0) {
    for (let i = 0; i < (qv6 ? 4 : 1); i++) {
      if (qs) patch32(b, udpSum, sFrom[i]!, sTo[i]!);
      if (qd) patch32(b, udpSum, dFrom[i]!, dTo[i]!);
    }
  }
  setL4Checksum(b, v);
}

/** Replace the address at `at` when it equals `from` (patching the IPv4 header checksum at `ipCsum`); true if replaced. */
function replaceAddr(b: Uint8Array, at: number, v6: boolean, ipCsum: number, from: Uint32Array, to: Uint32Array): boolean {
  for (let i = 0; i < (v6 ? 4 : 1); i++) {
    if (rd32(b, at + 4 * i) !== from[i]) return false; // not the address we translate
  }
  for (let i = 0; i < (v6 ? 4 : 1); i++) {
    wr32(b, at + 4 * i, to[i]!);
    if (ipCsum >= 0) patch32(b, ipCsum, from[i]!, to[i]!);
  }
  return true;
}

/** Write a port, folding the change into the checksum at `csum` (none when negative). */
function setPort(b: Uint8Array, at: number, from: number, to: number, csum: number): void {
  wr16(b, at, to);
  if (csum >= 0) patch16(b, csum, from, to);
}

/** NAT: the server answers the client itself (through the LB, its gateway): reply server -> client */
export const natMode: ForwardMode = {
  code: FWD_NAT,
  name: 'nat',
  translated: true,
  reply(k, s, d, r) {
    replyFromServer(k, s, d, r, k.src, k.sport);
    return 0;
  },
  // the servers' replies come from their own addresses
  capture: (cfg, x) => ({ dst: cfg.vip ? [cfg.vip] : [], src: [x.addr] }),
};
