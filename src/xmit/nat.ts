/**
 * NAT rewriting (IPVS ip_vs_nat_xmit / DPVS dp_vs_xmit_nat): inbound packets get the real server as
 * destination, outbound ones the VIP as source. Addresses and ports are replaced in place and the IPv4
 * header checksum and the TCP/UDP checksum are patched incrementally (RFC 1624): the L4 checksum covers the
 * pseudo-header, so an address change is folded into it too. A UDP checksum of 0 over IPv4 (none) stays 0.
 */
import { rd16, rd32, wr16, wr32 } from '../packet/bytes.js';
import { patch16, patch32, setL4Checksum } from '../packet/checksum.js';
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
  if (oldPort !== port) setPort(b, pAt, oldPort, port, l4sum ? csum : -1);
  if (l4sum && v.proto === IPPROTO_UDP && rd16(b, csum) === 0) wr16(b, csum, 0xffff); // RFC 768: 0 is "none"
}

/**
 * Translate an ICMP/ICMPv6 error related to a NAT connection (IPVS ip_vs_nat_icmp): the outer address on the
 * server side and the quoted packet's address and port become the VIP's (outbound), or the VIP's become the
 * server's (inbound). The quoted IPv4 header checksum and (UDP) checksum are patched; the ICMP checksum is
 * recomputed over the message (ICMPv6: with the pseudo-header).
 * `outbound`: the error travels from the server towards the client.
 */
export function natRewriteIcmp(b: Uint8Array, v: PacketView, outbound: boolean, vip: Uint32Array, vport: number, server: Uint32Array, sport: number): void {
  const q = v.inner;
  const six = v.ipVersion === 6;
  const from = outbound ? server : vip;
  const to = outbound ? vip : server;
  // outer: the source (outbound) or the destination (inbound)
  replaceAddr(b, v.l3Off + (six ? (outbound ? 8 : 24) : outbound ? 12 : 16), six, v.l3Off + 10, from, to);
  // quoted packet: it went client -> server, so its destination (outbound) or, inbound, its source
  const qIsDst = outbound;
  const il3 = q.l3Off;
  const qv6 = q.ipVersion === 6;
  replaceAddr(b, il3 + (qv6 ? (qIsDst ? 24 : 8) : qIsDst ? 16 : 12), qv6, qv6 ? -1 : il3 + 10, from, to);
  const il4 = q.l4Off;
  const pAt = il4 + (qIsDst ? 2 : 0);
  const oldPort = rd16(b, pAt);
  const newPort = outbound ? vport : sport;
  // the quoted UDP checksum covers the pseudo-header: fold the address and port change in
  const uc = q.proto === IPPROTO_UDP && rd16(b, il4 + 6) !== 0 ? il4 + 6 : -1;
  setPort(b, pAt, oldPort, newPort, uc);
  if (uc >= 0) for (let i = 0; i < (qv6 ? 4 : 1); i++) patch32(b, uc, from[i]!, to[i]!);
  // the ICMP checksum covers the whole message (and the pseudo-header for ICMPv6)
  setL4Checksum(b, v);
}

function replaceAddr(b: Uint8Array, at: number, v6: boolean, ipCsum: number, from: Uint32Array, to: Uint32Array): void {
  for (let i = 0; i < (v6 ? 4 : 1); i++) {
    const old = rd32(b, at + 4 * i);
    if (old !== from[i]) return; // not the address we translate
  }
  for (let i = 0; i < (v6 ? 4 : 1); i++) {
    wr32(b, at + 4 * i, to[i]!);
    if (ipCsum >= 0) patch32(b, ipCsum, from[i]!, to[i]!);
  }
}

/**
 * Translate an ICMP error from a real server about an FNAT connection: it was sent to the local address and
 * quotes local:lport -> server:sport. It leaves as VIP -> client, quoting client:cport -> VIP:vport.
 */
export function fnatRewriteIcmp(
  b: Uint8Array,
  v: PacketView,
  vip: Uint32Array,
  vport: number,
  client: Uint32Array,
  cport: number,
  laddr: Uint32Array,
  lport: number,
  server: Uint32Array,
  sport: number,
): void {
  const q = v.inner;
  const six = v.ipVersion === 6;
  const qv6 = q.ipVersion === 6;
  replaceAddr(b, v.l3Off + (six ? 8 : 12), six, six ? -1 : v.l3Off + 10, server, vip);
  replaceAddr(b, v.l3Off + (six ? 24 : 16), six, six ? -1 : v.l3Off + 10, laddr, client);
  const il3 = q.l3Off;
  replaceAddr(b, il3 + (qv6 ? 8 : 12), qv6, qv6 ? -1 : il3 + 10, laddr, client);
  replaceAddr(b, il3 + (qv6 ? 24 : 16), qv6, qv6 ? -1 : il3 + 10, server, vip);
  const il4 = q.l4Off;
  const udpSum = q.proto === IPPROTO_UDP && rd16(b, il4 + 6) !== 0 ? il4 + 6 : -1;
  setPort(b, il4, lport, cport, udpSum);
  setPort(b, il4 + 2, sport, vport, udpSum);
  if (udpSum >= 0) {
    for (let i = 0; i < (qv6 ? 4 : 1); i++) {
      patch32(b, udpSum, laddr[i]!, client[i]!);
      patch32(b, udpSum, server[i]!, vip[i]!);
    }
  }
  setL4Checksum(b, v);
}

/** Write a port, folding the change into the checksum at `csum` (none when negative). */
function setPort(b: Uint8Array, at: number, from: number, to: number, csum: number): void {
  wr16(b, at, to);
  if (csum >= 0) patch16(b, csum, from, to);
}
