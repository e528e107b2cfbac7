/**
 * Which worker a packet goes to, so that every packet of a connection meets the one table that holds it
 * (DPVS gets this from the NIC's RSS and its per-lcore local ports; tsvs's reader computes it):
 *
 * 1. To or from a local address of the LB (FNAT laddrs, SNAT addresses), TCP/UDP: the local port names the
 *    worker (port % workers): each worker lends only its own ports (xmit/pool setPortPartition), so a
 *    server's reply comes back to the worker that made the connection.
 * 2. One end a VIP or a NAT service's real server, the other not: a hash of the other end's address (masked
 *    to the shortest persistence netmask): a client's packets to the VIP and its server's NAT replies to it
 *    meet, and a persistent client's connections share one worker, its templates exact without sharing.
 * 3. Anything else: a symmetric hash of the tuple (addresses, ports or ICMP query id), as the kernel's fanout
 *    does; both directions of a connection agree.
 * ICMP errors go where the packet they quote went (its tuple, seen from the other side). What has no
 * address (not decoded, not IP) is spread round-robin: it is only counted.
 *
 * `tuple` mode is rule 3 alone (as PACKET_FANOUT_HASH or a NIC's RSS would spread packets): a NAT server's
 * reply then lands on a worker that does not hold its connection and has to be redirected; such packets
 * (from a NAT server's address) are marked for that.
 */
import { ConnTable } from '../conntrack/table.js';
import { decode } from '../packet/decode.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, PacketView } from '../packet/view.js';
import type { Services } from '../service/services.js';
import { FWD_NAT } from '../xmit/modes.js';
import { SLOTS } from './layout.js';
import type { DispatchRule } from './fanout.js';

const R_LOCAL = 1;
const R_SIDE = 2; // a VIP or a NAT server
const R_NATRS = 4;

const fmix = ConnTable.fmix;

const mix = ConnTable.mix;

/** addresses with roles: open addressing over a hash of the address's words */
class Roles {
  private keys: Int32Array = new Int32Array(4 * 16);
  private roles = new Uint8Array(16);
  private mask = 15;
  count = 0;
  /** a bit per low 16 bits of an IPv4 address that has a role: most addresses (clients) are told apart here */
  private readonly low = new Uint8Array(8192);

  static hash(w: Uint32Array | ArrayLike<number>, v6: boolean): number {
    let h = mix(0x1234567, w[0]!);
    if (v6) h = mix(mix(mix(h, w[1]!), w[2]!), w[3]!);
    return fmix(h);
  }

  add(w: ArrayLike<number>, v6: boolean, role: number): void {
    if (this.count * 2 >= this.mask) this.grow();
    let i = Roles.hash(w as Uint32Array, v6) & this.mask;
    for (;;) {
      if (this.roles[i] === 0 || this.same(i, w, v6)) break;
      i = (i + 1) & this.mask;
    }
    if (this.roles[i] === 0) this.count++;
    if (!v6) this.low[(w[0]! & 0xffff) >>> 3]! |= 1 << (w[0]! & 7);
    for (let j = 0; j < 4; j++) this.keys[4 * i + j] = v6 || j === 0 ? w[j]! : 0;
    this.roles[i]! |= role | (v6 ? 0x80 : 0);
  }

  private same(i: number, w: ArrayLike<number>, v6: boolean): boolean {
    if ((this.roles[i]! & 0x80) !== (v6 ? 0x80 : 0)) return false;
    const k = this.keys;
    return k[4 * i] === (w[0]! | 0) && (!v6 || (k[4 * i + 1] === (w[1]! | 0) && k[4 * i + 2] === (w[2]! | 0) && k[4 * i + 3] === (w[3]! | 0)));
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldRoles = this.roles;
    const size = (this.mask + 1) * 2;
    this.keys = new Int32Array(4 * size);
    this.roles = new Uint8Array(size);
    this.mask = size - 1;
    this.count = 0;
    for (let i = 0; i < oldRoles.length; i++) {
      const r = oldRoles[i]!;
      if (r !== 0) this.add(oldKeys.subarray(4 * i, 4 * i + 4), (r & 0x80) !== 0, r & 0x7f);
    }
  }

  /** every address with its roles (R_* bits), an IPv6 address's words in order */
  entries(): Array<{ words: number[]; v6: boolean; role: number }> {
    const out: Array<{ words: number[]; v6: boolean; role: number }> = [];
    for (let i = 0; i <= this.mask; i++) {
      const r = this.roles[i]!;
      if (r === 0) continue;
      const v6 = (r & 0x80) !== 0;
      out.push({ words: Array.from(this.keys.subarray(4 * i, 4 * i + (v6 ? 4 : 1)), (w) => w >>> 0), v6, role: r & 0x7f });
    }
    return out;
  }

  /** get() of an IPv4 address given as a number */
  get4(a: number): number {
    if ((this.low[(a & 0xffff) >>> 3]! & (1 << (a & 7))) === 0) return 0;
    let i = fmix(mix(0x1234567, a)) & this.mask;
    const k = this.keys;
    for (;;) {
      const r = this.roles[i]!;
      if (r === 0) return 0;
      if ((r & 0x80) === 0 && k[4 * i] === (a | 0)) return r;
      i = (i + 1) & this.mask;
    }
  }

  get(w: Uint32Array, v6: boolean): number {
    if (!v6) return this.get4(w[0]!);
    if (this.count === 0) return 0;
    let i = Roles.hash(w, v6) & this.mask;
    for (;;) {
      const r = this.roles[i]!;
      if (r === 0) return 0;
      if (this.same(i, w, v6)) return r & 0x7f;
      i = (i + 1) & this.mask;
    }
  }
}

export type DispatchMode = 'service' | 'tuple';

export class Dispatcher {
  private readonly roles = new Roles();
  /** the last packet decoded (before the engine rewrites it) */
  readonly view = new PacketView();
  private rr = 0;
  /** persistence: the shortest netmask of a persistent service (v4 bits, v6 bits) */
  private readonly mask4: number;
  private readonly prefix6: number;
  private readonly m = new Uint32Array(4);
  /** set by workerOf(): the packet comes from a NAT server (in tuple mode: may need a redirect) */
  natReply = false;
  /** decode every packet (the view is wanted: onPacket) */
  full = false;

  constructor(
    /** which lane each hash slot (and local port % SLOTS) belongs to */
    readonly slots: Uint8Array,
    services: Services | null,
    readonly mode: DispatchMode = 'service',
  ) {
    let p4 = 32;
    let p6 = 128;
    for (const s of services?.list ?? []) {
      const v6 = s.v6;
      if (s.cfg.match === undefined) this.roles.add(s.vip, v6, R_SIDE);
      if (s.pool !== null) for (const a of s.pool.addrs) this.roles.add(a, v6, R_LOCAL);
      s.serverAddr.forEach((a, i) => {
        if (s.fwd[i] === FWD_NAT && s.agentOf[i] === null) this.roles.add(a, v6, R_SIDE | R_NATRS);
      });
      const pers = s.cfg.persistence;
      if (pers) {
        p4 = Math.min(p4, pers.netmask);
        p6 = Math.min(p6, pers.netmask === 32 ? 128 : pers.netmask);
      }
    }
    this.mask4 = p4 === 0 ? 0 : (0xffffffff << (32 - p4)) >>> 0;
    this.prefix6 = p6;
  }

  /** the rule in numbers, for the same decisions elsewhere (fanout.ts: a BPF program for the kernel) */
  rule(): DispatchRule {
    return { slots: this.slots, mode: this.mode, roles: this.roles.entries(), mask4: this.mask4, prefix6: this.prefix6 };
  }

  /** the worker of the frame at b[off, off + caplen) */
  workerOf(b: Uint8Array, off: number, caplen: number, wirelen: number, linktype: number): number {
    const slots = this.slots;
    const v = this.view;
    this.natReply = false;
    // Ethernet, IPv4, TCP or UDP, not a fragment (almost every packet): read where it lies
    if (linktype === 1 && !this.full && caplen >= 38 && b[off + 12] === 8 && b[off + 13] === 0 && b[off + 14]! >> 4 === 4) {
      const ip = off + 14;
      const ihl = (b[ip]! & 15) << 2;
      const p = b[ip + 9]!;
      if ((p === IPPROTO_TCP || p === IPPROTO_UDP) && ihl >= 20 && caplen >= 18 + ihl && ((b[ip + 6]! & 0x3f) | b[ip + 7]!) === 0) {
        const src = ((b[ip + 12]! << 24) | (b[ip + 13]! << 16) | (b[ip + 14]! << 8) | b[ip + 15]!) >>> 0;
        const dst = ((b[ip + 16]! << 24) | (b[ip + 17]! << 16) | (b[ip + 18]! << 8) | b[ip + 19]!) >>> 0;
        const l4 = ip + ihl;
        const sport = (b[l4]! << 8) | b[l4 + 1]!;
        const dport = (b[l4 + 2]! << 8) | b[l4 + 3]!;
        if (this.mode === 'tuple' && (this.roles.get4(src) & R_NATRS) !== 0) this.natReply = true;
        return this.pick4(src, dst, p, sport, dport);
      }
    }
    decode(b, off, caplen, wirelen, linktype, v);
    if (v.status !== 0 || v.l3Off < 0) return slots[this.rr++ & (SLOTS - 1)]!;
    if (v.icmpIsError) {
      const q = v.inner;
      if (!q.valid) return slots[this.pair(v.src, v.dst, v.ipVersion === 6, 0, 0, 0) & (SLOTS - 1)]!;
      const l4 = q.proto === IPPROTO_TCP || q.proto === IPPROTO_UDP;
      const icmpQ = q.proto === IPPROTO_ICMP || q.proto === IPPROTO_ICMPV6;
      // the quoted packet went the other way: its worker is the connection's
      return this.pick(q.src, q.dst, q.ipVersion === 6, q.proto, l4 ? q.sport : icmpQ ? q.icmpId : 0, l4 ? q.dport : icmpQ ? q.icmpId : 0, l4 || icmpQ);
    }
    const p = v.proto;
    const l4 = v.hasL4 && (p === IPPROTO_TCP || p === IPPROTO_UDP);
    const icmpQ = v.hasL4 && (p === IPPROTO_ICMP || p === IPPROTO_ICMPV6);
    const w = this.pick(v.src, v.dst, v.ipVersion === 6, p, l4 ? v.sport : icmpQ ? v.icmpId : 0, l4 ? v.dport : icmpQ ? v.icmpId : 0, l4 || icmpQ);
    if (this.mode === 'tuple' && this.roles.count > 0 && l4 && (this.roles.get(v.src, v.ipVersion === 6) & R_NATRS) !== 0) this.natReply = true;
    return w;
  }

  private pick(src: Uint32Array, dst: Uint32Array, v6: boolean, proto: number, sport: number, dport: number, ports: boolean): number {
    if (!v6) return this.pick4(src[0]!, dst[0]!, proto, sport, dport, ports);
    const slots = this.slots;
    if (this.mode === 'service' && this.roles.count > 0) {
      const rs = this.roles.get(src, v6);
      const rd = this.roles.get(dst, v6);
      // a local port (or, through SNAT, an ICMP query id the pool lent) names the worker
      if (ports) {
        if (rd & R_LOCAL) return slots[dport & (SLOTS - 1)]!;
        if (rs & R_LOCAL) return slots[sport & (SLOTS - 1)]!;
      }
      const ds = (rd & R_SIDE) !== 0;
      if (ds !== ((rs & R_SIDE) !== 0)) return slots[this.host(ds ? src : dst, v6) & (SLOTS - 1)]!;
    }
    return slots[this.pair(src, dst, v6, proto, ports ? sport : 0, ports ? dport : 0) & (SLOTS - 1)]!;
  }

  /** pick() of an IPv4 TCP/UDP packet */
  /** pick() of an IPv4 packet, its addresses as numbers */
  private pick4(src: number, dst: number, proto: number, sport: number, dport: number, ports = true): number {
    const slots = this.slots;
    const roles = this.roles;
    if (this.mode === 'service' && roles.count > 0) {
      const rs = roles.get4(src);
      const rd = roles.get4(dst);
      if (ports) {
        if (rd & R_LOCAL) return slots[dport & (SLOTS - 1)]!;
        if (rs & R_LOCAL) return slots[sport & (SLOTS - 1)]!;
      }
      const ds = (rd & R_SIDE) !== 0;
      if (ds !== ((rs & R_SIDE) !== 0)) return slots[this.host4(ds ? src : dst) & (SLOTS - 1)]!;
    }
    return slots[this.pair4(src, dst, proto, ports ? sport : 0, ports ? dport : 0) & (SLOTS - 1)]!;
  }

  /** a hash of one IPv4 address, masked to the persistence netmask */
  private host4(a: number): number {
    return fmix(mix(0x2545f491, a & this.mask4)) >>> 0;
  }

  /** a hash of one address, masked to the persistence netmask */
  private host(a: Uint32Array, v6: boolean): number {
    if (!v6) return this.host4(a[0]!);
    const m = this.m;
    let bits = this.prefix6;
    for (let i = 0; i < 4; i++) {
      const take = Math.max(0, Math.min(32, bits));
      m[i] = take === 0 ? 0 : take === 32 ? a[i]! : a[i]! & ~(0xffffffff >>> take);
      bits -= 32;
    }
    return fmix(mix(mix(mix(mix(0x2545f491, m[0]!), m[1]!), m[2]!), m[3]!)) >>> 0;
  }

  /** a symmetric hash of IPv4 (addresses, ports): the endpoints in a fixed order */
  private pair4(src: number, dst: number, proto: number, sport: number, dport: number): number {
    const swap = src !== dst ? src > dst : sport > dport;
    let h = mix(0x3c6ef372 ^ proto, swap ? dst : src);
    h = mix(h, swap ? src : dst);
    h = mix(h, swap ? (dport << 16) | sport : (sport << 16) | dport);
    return fmix(h) >>> 0;
  }

  /** a symmetric hash of (addresses, ports): the endpoints in a fixed order */
  private pair(src: Uint32Array, dst: Uint32Array, v6: boolean, proto: number, sport: number, dport: number): number {
    if (!v6) return this.pair4(src[0]!, dst[0]!, proto, sport, dport);
    let swap = false;
    let i = 0;
    for (; i < 4; i++) {
      if (src[i] !== dst[i]) {
        swap = src[i]! > dst[i]!;
        break;
      }
    }
    if (i === 4) swap = sport > dport;
    const a = swap ? dst : src;
    const b = swap ? src : dst;
    let h = mix(0x3c6ef372 ^ proto, a[0]!);
    h = mix(h, b[0]!);
    for (let j = 1; j < 4; j++) h = mix(mix(h, a[j]!), b[j]!);
    h = mix(h, swap ? (dport << 16) | sport : (sport << 16) | dport);
    return fmix(h) >>> 0;
  }
}
