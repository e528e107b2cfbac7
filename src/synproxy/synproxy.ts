/**
 * Synproxy (DPVS ip_vs_synproxy.c, for NAT as well as FNAT): SYN-flood defence in three steps.
 *  1. A SYN to a synproxy service is answered with a SYN-ACK whose ISN is a SYN cookie; no state is kept.
 *  2. A pure ACK whose ack - 1 is a valid cookie opens the connection (SYN_SENT), is saved, and a SYN with
 *     the client's ISN and the options the cookie kept goes to the scheduled server. Client packets that
 *     follow are saved up to `max_ack_saved`; the SYN is resent on the SYN_SENT timer `rs_syn_max_retry` times.
 *  3. The server's SYN-ACK fixes the sequence delta (cookie - server ISN), establishes the connection,
 *     flushes the saved packets to the server and is dropped; a server RST is passed to the client and
 *     closes the connection. From then on seq/ack, SACK, timestamps and windows are translated (seq.ts).
 * Defences: ACK storms (the server repeating one seq/ack `ack_storm_thresh` times) are dropped; a closing
 * connection (conn_reuse_state) is reused by a new valid handshake. Counters carry DPVS's names.
 */
import type { SynproxyConfig } from '../config.js';
import { S_ASSURED, S_SEEN_REPLY, type Conntrack, type ConnExtension } from '../conntrack/conntrack.js';
import type { Balancer } from '../lb/balancer.js';
import { IPPROTO_TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type PacketView } from '../packet/view.js';
import { rd32, wr32 } from '../packet/bytes.js';
import { D_CLOSE, D_CLOSE_WAIT, D_FIN_WAIT, D_LAST_ACK, D_TIME_WAIT, N_CLOSE, N_CLOSE_WAIT, N_FIN_WAIT, N_LAST_ACK, N_TIME_WAIT } from '../proto/tcp.js';
import { COOKIE_BAD, COOKIE_OK, COOKIE_PERIOD_MS, COOKIE_STALE, CookieOpts, Cookies, cookieData, mssIndex } from './cookie.js';
import { buildServerSyn, rstInPlace, synackInPlace, type SynackOptions } from './packets.js';
import { seqIn, seqOut } from './seq.js';
import { Rng } from '../timer/rng.js';

export const SYNPROXY_COUNTERS = [
  'SYNPROXY_SYN_CNT',
  'SYNPROXY_OK_ACK',
  'SYNPROXY_BAD_ACK',
  'SYNPROXY_NULL_ACK',
  'SYNPROXY_RS_ERROR',
  'SYNPROXY_ACK_STORM',
  'SYNPROXY_SYNSEND_QLEN',
  'SYNPROXY_NO_DEST',
  'SYNPROXY_CONN_REUSED',
  /* the kinds of BAD_ACK, and SYNs resent to servers */
  'SYNPROXY_BAD_ACK_STALE',
  'SYNPROXY_BAD_ACK_DATA',
  'SYNPROXY_RS_SYN_RETRY',
] as const;
const SYN_CNT = 0;
const OK_ACK = 1;
const BAD_ACK = 2;
const NULL_ACK = 3;
const RS_ERROR = 4;
const ACK_STORM = 5;
const SYNSEND_QLEN = 6;
const NO_DEST = 7;
const CONN_REUSED = 8;
const BAD_ACK_STALE = 9;
const BAD_ACK_DATA = 10;
const RS_SYN_RETRY = 11;

/** what the engine does with the packet after the synproxy saw it */
export const SP_FORWARD = 0; // forward it as usual (sequence numbers already translated)
export const SP_REPLY = 1; // send the packet back, rewritten in place (`replyLen` bytes)
export const SP_DROP = 2; // dropped (counted by the synproxy, or not a packet it takes)
export const SP_SAVED = 3; // consumed: saved for the server, or the SYN sent in its place
export const SP_FLUSH = 4; // the server's SYN-ACK established the connection: call flush(c), drop the SYN-ACK
export const SP_TRUNCATED = 5; // a SYN cut by the capture's snap length: its SYN-ACK would be written beyond the captured bytes
export const SP_OPEN = 6; // a valid cookie: open the connection (through the load balancer), then call opened()

/* per-connection flags */
const P_SYNPROXY = 0x01; // opened by the synproxy (DPVS_CONN_F_SYNPROXY): sequence numbers are translated
const P_PENDING = 0x02; // the SYN to the server is out, its SYN-ACK not yet in

/** a connection waiting for its server's SYN-ACK */
interface Pending {
  syn: Uint8Array;
  /** client frames held for the server (as captured) and their lengths on the wire */
  queue: Uint8Array[];
  wire: number[];
  retries: number;
}

/** room for the server's SYN: the client ACK's link and IP headers, and 40 bytes of TCP (options included) */
const SYN_BUF = 512;

const REUSE_STATES: Record<string, [number, number]> = {
  close: [D_CLOSE, N_CLOSE],
  time_wait: [D_TIME_WAIT, N_TIME_WAIT],
  fin_wait: [D_FIN_WAIT, N_FIN_WAIT],
  close_wait: [D_CLOSE_WAIT, N_CLOSE_WAIT],
  last_ack: [D_LAST_ACK, N_LAST_ACK],
};

/**
 * The cookie secret: the configured one (32 hex digits), else derived from the replay seed so a replay is
 * repeatable (live mode draws a random one).
 */
export function replaySecret(hex: string | undefined, seed: number): Uint8Array {
  if (hex) return Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
  const rng = new Rng((seed ^ 0x5eed5ec7) >>> 0);
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = rng.below(256);
  return b;
}

/**
 * Sources that completed a handshake with a valid cookie in the last `ttl` seconds: a direct-mapped cache of
 * 65,536 addresses (a collision replaces the older one). A spoofed SYN flood cannot enter it: answering a
 * cookie takes receiving the SYN-ACK. Under overload the engine still answers these sources' SYNs.
 */
export class VerifiedSources {
  private static readonly BITS = 16;
  private readonly addr = new Uint32Array(4 << VerifiedSources.BITS);
  private readonly v6 = new Uint8Array(1 << VerifiedSources.BITS);
  /** time of the source's last handshake (µs), -1: empty */
  private readonly at = new Float64Array(1 << VerifiedSources.BITS).fill(-1);
  private readonly ttlUs: number;

  constructor(ttlSeconds: number) {
    this.ttlUs = ttlSeconds * 1e6;
  }

  private static slot(a: Uint32Array, v6: boolean): number {
    let h = Math.imul(a[0]! ^ 0x9e3779b9, 0x85ebca6b);
    if (v6) h = Math.imul(h ^ a[1]! ^ Math.imul(a[2]!, 0xc2b2ae35) ^ a[3]!, 0x27d4eb2f);
    return (h ^ (h >>> 16)) & ((1 << VerifiedSources.BITS) - 1);
  }

  add(a: Uint32Array, v6: boolean, nowUs: number): void {
    if (this.ttlUs === 0) return;
    const i = VerifiedSources.slot(a, v6);
    const o = 4 * i;
    this.addr[o] = a[0]!;
    this.addr[o + 1] = v6 ? a[1]! : 0;
    this.addr[o + 2] = v6 ? a[2]! : 0;
    this.addr[o + 3] = v6 ? a[3]! : 0;
    this.v6[i] = v6 ? 1 : 0;
    this.at[i] = nowUs;
  }

  has(a: Uint32Array, v6: boolean, nowUs: number): boolean {
    const i = VerifiedSources.slot(a, v6);
    const t = this.at[i]!;
    if (t < 0 || nowUs - t > this.ttlUs || this.v6[i] !== (v6 ? 1 : 0)) return false;
    const o = 4 * i;
    return this.addr[o] === a[0] && (!v6 || (this.addr[o + 1] === a[1] && this.addr[o + 2] === a[2] && this.addr[o + 3] === a[3]));
  }
}

/**
 * A copy of the frame in `v` (`b` may be a Node Buffer, whose slice() is a view: the capture reuses its
 * buffer, so a held frame must own its bytes)
 */
function copyFrame(b: Uint8Array, v: PacketView): Uint8Array {
  return Uint8Array.prototype.slice.call(b, v.frameOff, v.frameOff + v.caplen);
}

/** the wire length of the frame in `v` (its IP packet's end, or what was captured when that is more) */
function wireLen(v: PacketView): number {
  const ipEnd = v.l3Off + v.ipTotalLen - v.frameOff;
  return ipEnd > v.caplen ? ipEnd : v.caplen;
}

export class Synproxy implements ConnExtension {
  readonly counters = new Float64Array(SYNPROXY_COUNTERS.length);
  readonly cookies: Cookies;
  /** frame length of an SP_REPLY */
  replyLen = 0;
  /** called with a frame (from byte 0, `len` bytes captured of `wirelen`) the synproxy sends toward the server of connection c */
  toServer: (c: number, frame: Uint8Array, len: number, wirelen: number) => void = () => undefined;
  private readonly opts = new CookieOpts();
  private readonly synack: SynackOptions;
  private readonly lbws: number;
  /* per connection (by handle) */
  private readonly isn: Uint32Array;
  private readonly delta: Uint32Array;
  private readonly tsDelta: Uint32Array;
  /** the LB's TSval the client echoed in its ACK */
  private readonly tsecr: Uint32Array;
  private readonly cws: Int8Array;
  private readonly shiftIn: Int8Array;
  private readonly shiftOut: Int8Array;
  private readonly lastSeq: Uint32Array;
  private readonly lastAck: Uint32Array;
  private readonly dup: Uint8Array;
  private readonly pending = new Map<number, Pending>();
  private readonly reuse: Uint8Array;
  private readonly synBuf = new Uint8Array(SYN_BUF);
  /** sources that answered a cookie lately: under overload their SYNs are answered first (they cannot be spoofed) */
  readonly verified: VerifiedSources;
  private readonly flags: Uint8Array;

  constructor(
    readonly cfg: SynproxyConfig,
    private readonly ct: Conntrack,
    private readonly lb: Balancer,
    secret: Uint8Array,
  ) {
    this.cookies = new Cookies(secret);
    this.verified = new VerifiedSources(cfg.trust_verified);
    this.lbws = cfg.wscale === false ? -1 : cfg.wscale;
    this.synack = { mss: cfg.mss, ttl: cfg.ttl, window: cfg.window, wscale: -1, sack: false, ts: false };
    const cap = ct.table.capacity;
    this.flags = new Uint8Array(cap);
    this.isn = new Uint32Array(cap);
    this.delta = new Uint32Array(cap);
    this.tsDelta = new Uint32Array(cap);
    this.tsecr = new Uint32Array(cap);
    this.cws = new Int8Array(cap);
    this.shiftIn = new Int8Array(cap);
    this.shiftOut = new Int8Array(cap);
    this.lastSeq = new Uint32Array(cap);
    this.lastAck = new Uint32Array(cap);
    this.dup = new Uint8Array(cap);
    const dpvs = ct.profile === 'dpvs' ? 0 : 1;
    this.reuse = new Uint8Array(16);
    for (const s of cfg.conn_reuse_state) this.reuse[REUSE_STATES[s]![dpvs]!] = 1;
    ct.extend(this);
  }

  /** ConnExtension: a synproxy connection goes (held frames with it) */
  destroyed(c: number): void {
    if (this.flags[c] === 0) return;
    this.flags[c] = 0;
    this.pending.delete(c);
  }

  /** opened by the synproxy: its sequence numbers are translated */
  owns(c: number): boolean {
    return this.flags[c] !== 0;
  }

  /** waiting for its server's SYN-ACK */
  isPending(c: number): boolean {
    return (this.flags[c]! & P_PENDING) !== 0;
  }

  /**
   * Connection c's timer ran out: a pending one resends its SYN (true: kept, re-armed) until
   * rs_syn_max_retry, then gives up (its server never answered: a passive-health failure).
   */
  expire(c: number): boolean {
    if (!(this.flags[c]! & P_PENDING)) return false;
    if (this.retry(c)) {
      this.ct.armTimeout(c, this.ct.tcpTimeouts[this.ct.m.synSent]!, false);
      return true;
    }
    this.lb.outcome(c, false);
    return false;
  }

  /** move connection c to state st: pending in SYN_SENT (its timer with the jitter of a new one), established, closed */
  private moveTo(c: number, st: number, jitter: boolean): void {
    if (st === this.ct.m.synSent) this.flags[c]! |= P_PENDING;
    else this.flags[c]! &= ~P_PENDING;
    this.ct.setState(c, st, jitter);
  }

  counter(name: (typeof SYNPROXY_COUNTERS)[number]): number {
    return this.counters[SYNPROXY_COUNTERS.indexOf(name)]!;
  }

  /** the cookie counter at time `us` (60 s periods) */
  private count(): number {
    return Math.floor(this.ct.time.nowUs / 1000 / COOKIE_PERIOD_MS) >>> 0;
  }

  /** step 1: answer a SYN to service `svc` with a cookie SYN-ACK built in place */
  private syn(b: Uint8Array, v: PacketView, svc: number): number {
    if (!this.lb.services.list[svc]!.dests.anyUsable()) {
      this.counters[NO_DEST]!++;
      return SP_DROP;
    }
    // the SYN-ACK is the SYN rewritten in place, options included: they must all have been captured
    if (v.l4Off + v.tcpHdrLen > v.frameOff + v.caplen) return SP_TRUNCATED;
    const cm = v.mss;
    const mss = cm > 0 && cm < this.cfg.mss ? cm : cm > 0 ? this.cfg.mss : 536;
    const ws = this.lbws >= 0 && v.wscale >= 0 ? v.wscale : -1;
    const sack = this.cfg.sack && v.sackPerm;
    const ts = this.cfg.timestamps && v.hasTs;
    const cookie = this.cookies.make(v.ipVersion === 6, v.src, v.dst, v.sport, v.dport, v.seq, this.count(), cookieData(mssIndex(mss), ws, sack, ts));
    const o = this.synack;
    o.wscale = ws >= 0 ? this.lbws : -1;
    o.sack = sack;
    o.ts = ts;
    const n = synackInPlace(b, v, cookie, o, Math.floor(this.ct.time.nowUs / 1000) >>> 0);
    if (n < 0) return SP_DROP;
    this.counters[SYN_CNT]!++;
    this.replyLen = n;
    return SP_REPLY;
  }

  /** validate the cookie of a pure ACK (ack - 1) for its tuple; fills `opts`; a failure is counted when `count` */
  private validate(v: PacketView, count = true): boolean {
    const r = this.cookies.check(v.ipVersion === 6, v.src, v.dst, v.sport, v.dport, (v.seq - 1) >>> 0, (v.ack - 1) >>> 0, this.count(), this.opts);
    if (r === COOKIE_OK) return true;
    if (!count) return false;
    this.counters[BAD_ACK]!++;
    if (r === COOKIE_STALE) this.counters[BAD_ACK_STALE]!++;
    else if (r !== COOKIE_BAD) this.counters[BAD_ACK_DATA]!++;
    return false;
  }

  /**
   * A TCP packet without a connection to synproxy service `svc`: a SYN is answered (SP_REPLY), an ACK with a
   * valid cookie is to be opened (SP_OPEN), a bad one answered with a RST or dropped.
   */
  noConn(b: Uint8Array, v: PacketView, svc: number): number {
    const f = v.tcpFlags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN);
    if (f === TCP_SYN) return this.syn(b, v, svc);
    if (f !== TCP_ACK) return SP_FORWARD; // not ours: the engine counts it as not tracked
    if (this.cfg.defer_rs_syn && v.payloadLen === 0) {
      this.counters[NULL_ACK]!++;
      return SP_DROP;
    }
    if (!this.validate(v)) {
      if (!this.cfg.rst_on_bad_ack) return SP_DROP;
      const n = rstInPlace(b, v);
      if (n < 0) return SP_DROP;
      this.replyLen = n;
      return SP_REPLY;
    }
    // the server's SYN is built from this ACK's headers (IPv6 extension headers may be long): room for them
    if (v.l4Off - v.frameOff + 40 > SYN_BUF) return SP_DROP;
    this.counters[OK_ACK]!++;
    this.verified.add(v.src, v.ipVersion === 6, this.ct.time.nowUs);
    return SP_OPEN;
  }

  /** SP_OPEN, and no server could take the connection */
  noDest(): void {
    this.counters[NO_DEST]!++;
  }

  /** step 2 after SP_OPEN: connection c was opened for the ACK in `v`; it waits in SYN_SENT for the server, which gets its SYN */
  opened(c: number, b: Uint8Array, v: PacketView): void {
    this.flags[c] = P_SYNPROXY;
    this.moveTo(c, this.ct.m.synSent, true);
    this.start(c, b, v);
  }

  /** step 2 with a valid ACK for connection c: remember the handshake, save the ACK, send the server its SYN */
  private start(c: number, b: Uint8Array, v: PacketView): void {
    const o = this.opts;
    this.isn[c] = (v.ack - 1) >>> 0;
    this.tsecr[c] = o.ts && v.hasTs ? v.tsEcr : 0;
    this.cws[c] = o.wscale;
    this.delta[c] = 0;
    this.tsDelta[c] = 0;
    this.shiftIn[c] = 0;
    this.shiftOut[c] = 0;
    this.dup[c] = 0;
    const n = buildServerSyn(b, v, o, this.synBuf);
    const p: Pending = { syn: this.synBuf.slice(0, n), queue: [copyFrame(b, v)], wire: [wireLen(v)], retries: 0 };
    this.pending.set(c, p);
    this.toServer(c, p.syn, n, n);
  }

  /** the SYN_SENT timer of a pending connection ran out: resend its SYN (true) or give up */
  private retry(c: number): boolean {
    const p = this.pending.get(c);
    if (!p || p.retries >= this.cfg.rs_syn_max_retry) {
      this.counters[RS_ERROR]!++;
      return false;
    }
    p.retries++;
    this.counters[RS_SYN_RETRY]!++;
    this.toServer(c, p.syn.slice(), p.syn.length, p.syn.length);
    return true;
  }

  /** a client SYN on synproxy connection c: a new handshake when it is closing */
  synOnConn(b: Uint8Array, v: PacketView, c: number): number {
    if (!this.reuse[this.ct.stateOf(c)]) return SP_DROP;
    return this.syn(b, v, this.lb.serviceOf(c));
  }

  /**
   * A packet of synproxy connection c (entry direction `dir`), after tracking: saved, answered, dropped,
   * or translated in place for forwarding.
   */
  onConn(b: Uint8Array, v: PacketView, c: number, dir: number): number {
    const ct = this.ct;
    const f = v.tcpFlags;
    if (this.flags[c]! & P_PENDING) {
      if (dir === 0) {
        const p = this.pending.get(c);
        if (!(f & TCP_ACK) || !p) return SP_DROP;
        if (p.queue.length > this.cfg.max_ack_saved) {
          this.counters[SYNSEND_QLEN]!++;
          return SP_DROP;
        }
        p.queue.push(copyFrame(b, v));
        p.wire.push(wireLen(v));
        return SP_SAVED;
      }
      if (f & TCP_RST) {
        // DPVS: the client sees the RST at the sequence number it expects (cookie + 1)
        this.delta[c] = (this.isn[c]! - v.seq) >>> 0;
        this.counters[RS_ERROR]!++;
        this.pending.delete(c);
        // the server refused: the connection closes (a passive-health failure)
        ct.status[c]! |= S_SEEN_REPLY;
        this.lb.outcome(c, false);
        this.moveTo(c, ct.m.closed, false);
        seqOut(b, v, (this.delta[c]! + 1) >>> 0, 0, 0);
        return SP_FORWARD;
      }
      if ((f & (TCP_SYN | TCP_ACK)) !== (TCP_SYN | TCP_ACK)) return SP_DROP;
      this.established(c, v);
      return SP_FLUSH;
    }
    if (dir === 1) {
      // ACK storm (syn_proxy_is_ack_storm): the server repeating the same seq/ack
      const th = this.cfg.ack_storm_thresh;
      if (th > 0 && f & TCP_ACK) {
        if (v.seq === this.lastSeq[c] && v.ack === this.lastAck[c]) {
          if (this.dup[c]! < 255) this.dup[c]!++;
          if (this.dup[c]! >= th) {
            this.counters[ACK_STORM]!++;
            return SP_DROP;
          }
        } else {
          this.lastSeq[c] = v.seq;
          this.lastAck[c] = v.ack;
          this.dup[c] = 0;
        }
      }
      seqOut(b, v, this.delta[c]!, this.tsDelta[c]!, this.shiftOut[c]!);
      return SP_FORWARD;
    }
    if ((f & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_ACK && this.reuse[ct.stateOf(c)] && ((v.ack - 1) >>> 0) !== this.isn[c]) {
      // a new handshake on a closing connection (dp_vs_synproxy_reuse_conn); other ACKs are the old
      // connection's and pass (DPVS counts them as BAD_ACK: not counted here, they are not attacks)
      if (this.validate(v, false)) {
        this.counters[OK_ACK]!++;
        this.verified.add(v.src, v.ipVersion === 6, ct.time.nowUs);
        this.counters[CONN_REUSED]!++;
        this.pending.delete(c);
        this.moveTo(c, ct.m.synSent, true);
        this.start(c, b, v);
        return SP_SAVED;
      }
    }
    seqIn(b, v, this.delta[c]!, this.tsDelta[c]!, this.shiftIn[c]!);
    return SP_FORWARD;
  }

  /**
   * An ICMP error about a segment of synproxy connection c, before its addresses are translated. A segment
   * the LB sent the client (`dir` 1, the quoted packet's direction) carried a sequence number shifted into
   * the cookie's space; the server, which gets the error, knows it in its own: the quoted number is shifted
   * back. (Segments toward the server keep the client's sequence numbers: nothing to do.) The ICMP checksum is
   * recomputed by the translation that follows.
   */
  icmpQuote(b: Uint8Array, v: PacketView, c: number, dir: number): void {
    const q = v.inner;
    if (dir !== 1 || q.proto !== IPPROTO_TCP || this.flags[c]! & P_PENDING || q.l4Off + 8 > v.frameOff + v.caplen) return;
    const at = q.l4Off + 4;
    wr32(b, at, (rd32(b, at) - this.delta[c]!) >>> 0);
  }

  /** step 3: the server's SYN-ACK */
  private established(c: number, v: PacketView): void {
    this.delta[c] = (this.isn[c]! - v.seq) >>> 0;
    const cws = this.cws[c]!;
    // scale factors in force on each half: the client's with the LB (its SYN-ACK), the server's with the LB
    const sws = cws >= 0 ? v.wscale : -1;
    this.shiftIn[c] = (cws >= 0 ? cws : 0) - (sws >= 0 ? cws : 0);
    this.shiftOut[c] = (sws >= 0 ? sws : 0) - (cws >= 0 ? this.lbws : 0);
    this.tsDelta[c] = this.tsecr[c] !== 0 && v.hasTs ? (this.tsecr[c]! - v.tsVal) >>> 0 : 0;
    this.lastSeq[c] = 0;
    this.lastAck[c] = 0;
    this.ct.status[c]! |= S_SEEN_REPLY | S_ASSURED;
    this.moveTo(c, this.ct.m.established, false);
  }

  /** after SP_FLUSH: send the saved client packets to the server, in order */
  flush(c: number): void {
    const p = this.pending.get(c);
    this.pending.delete(c);
    if (p) p.queue.forEach((frame, i) => this.toServer(c, frame, frame.length, p.wire[i]!));
  }

  /** counters by DPVS name (for ctstat -S and --json) */
  counterObject(): Record<string, number> {
    const o: Record<string, number> = {};
    SYNPROXY_COUNTERS.forEach((n, i) => (o[n] = this.counters[i]!));
    return o;
  }

  /** connections waiting for their server's SYN-ACK */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** sequence delta and server-side state of connection c (for tests and listings) */
  deltaOf(c: number): number {
    return this.delta[c]!;
  }

  /** translate a saved client frame decoded in `v` (flush): ack, SACK, TSecr and window toward the server */
  translateSaved(b: Uint8Array, v: PacketView, c: number): void {
    seqIn(b, v, this.delta[c]!, this.tsDelta[c]!, this.shiftIn[c]!);
  }
}
