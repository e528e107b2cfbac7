/**
 * SYN cookies (D. J. Bernstein's scheme, laid out as Linux secure_tcp_syn_cookie() / check_tcp_syn_cookie()
 * in net/ipv4/syncookies.c and DPVS ip_vs_synproxy.c), keyed with SipHash-2-4 instead of MD5:
 *
 *   cookie = H(k0; tuple) + client ISN + (count << 24) + ((H(k1; tuple, count) + data) mod 2^24)
 *
 * `count` is a minute counter (time / 60 s); a cookie is accepted while the counter has advanced by at most
 * 3 (so for 3 to 4 minutes). `data` (24 bits) holds what the SYN said and the proxy must remember without
 * state, in its top 9 bits: an MSS table index (3 bits, the table has 4 entries), the client's window
 * scale + 1 (4 bits, 0 = not offered), SACK permitted and timestamps permitted; the low 15 bits must be
 * zero, so a forged cookie also has to hit them. (Linux keeps its data in the low bits; there an ACK of
 * the same connection whose ack - seq differs from the handshake's by a few bytes still decodes as a valid
 * cookie with other options, which would make a closing connection's last ACKs look like new handshakes.) The secret is generated at start and can be rotated: the previous one stays
 * valid for the acceptance window.
 */
import { sipHi, siphash, type SipKey } from './siphash.js';

/** MSS values a cookie can carry (Linux msstab for IPv4); a client's MSS is rounded down to one of them */
export const MSS_TABLE = [536, 1300, 1440, 1460];
/** counter period and how many periods back a cookie is still valid */
export const COOKIE_PERIOD_MS = 60_000;
export const COOKIE_MAX_AGE = 4;

const DATA_SHIFT = 15;
const MSS_BITS = 0x7;
const WS_SHIFT = 3;
const SACK_BIT = 1 << 7;
const TS_BIT = 1 << 8;
const ZERO_BITS = (1 << DATA_SHIFT) - 1;

/** what a valid cookie says about the client's SYN */
export class CookieOpts {
  mss = 0;
  mssIndex = 0;
  /** the client's window scale, -1 when it offered none */
  wscale = -1;
  sack = false;
  ts = false;
}

export const COOKIE_OK = 0;
export const COOKIE_BAD = 1;
export const COOKIE_STALE = 2;
export const COOKIE_BAD_DATA = 3;

/** data field of a cookie from the options (already in place in the 24-bit field) */
export function cookieData(mssIndex: number, wscale: number, sack: boolean, ts: boolean): number {
  return (mssIndex | ((wscale < 0 ? 0 : Math.min(wscale, 14) + 1) << WS_SHIFT) | (sack ? SACK_BIT : 0) | (ts ? TS_BIT : 0)) << DATA_SHIFT;
}

/** index of the largest table MSS not above `mss` (0 when below all) */
export function mssIndex(mss: number): number {
  let i = MSS_TABLE.length - 1;
  while (i > 0 && MSS_TABLE[i]! > mss) i--;
  return i;
}

export class Cookies {
  private key0: SipKey;
  private key1: SipKey;
  private prev0: SipKey | null = null;
  private prev1: SipKey | null = null;
  /** counter value when the secret was last rotated (the previous one is tried until it ages out) */
  private rotatedAt = 0;
  /** tuple words: src (1 or 4), dst (1 or 4), sport << 16 | dport, and the counter */
  private readonly m = new Uint32Array(10);

  /** `secret`: 32 bytes (two SipHash keys) */
  constructor(secret: Uint8Array) {
    [this.key0, this.key1] = Cookies.keys(secret);
  }

  private static keys(secret: Uint8Array): [SipKey, SipKey] {
    if (secret.length < 32) throw new Error('SYN cookie secret: 32 bytes needed');
    const w = new Uint32Array(8);
    for (let i = 0; i < 32; i++) w[i >>> 2]! |= secret[i]! << (8 * (i & 3));
    return [w.slice(0, 4), w.slice(4, 8)];
  }

  /** replace the secret at counter `count`; cookies made with the old one stay valid for COOKIE_MAX_AGE */
  rotate(secret: Uint8Array, count: number): void {
    this.prev0 = this.key0;
    this.prev1 = this.key1;
    [this.key0, this.key1] = Cookies.keys(secret);
    this.rotatedAt = count;
  }

  private tuple(v6: boolean, src: Uint32Array, dst: Uint32Array, sport: number, dport: number): number {
    const m = this.m;
    let n = 0;
    if (v6) {
      m[0] = src[0]!;
      m[1] = src[1]!;
      m[2] = src[2]!;
      m[3] = src[3]!;
      m[4] = dst[0]!;
      m[5] = dst[1]!;
      m[6] = dst[2]!;
      m[7] = dst[3]!;
      n = 8;
    } else {
      m[0] = src[0]!;
      m[1] = dst[0]!;
      n = 2;
    }
    m[n] = ((sport << 16) | dport) >>> 0;
    return n + 1;
  }

  /** the cookie for a SYN (its addresses, ports and ISN) at counter `count` carrying `data` */
  make(v6: boolean, src: Uint32Array, dst: Uint32Array, sport: number, dport: number, isn: number, count: number, data: number): number {
    return this.makeWith(this.key0, this.key1, v6, src, dst, sport, dport, isn, count, data);
  }

  private makeWith(k0: SipKey, k1: SipKey, v6: boolean, src: Uint32Array, dst: Uint32Array, sport: number, dport: number, isn: number, count: number, data: number): number {
    const n = this.tuple(v6, src, dst, sport, dport);
    const h1 = siphash(k0, this.m, n);
    this.m[n] = count >>> 0;
    const h2 = siphash(k1, this.m, n + 1) ^ sipHi;
    return (h1 + isn + ((count & 0xff) << 24) + ((h2 + data) & 0xffffff)) >>> 0;
  }

  /**
   * Check `cookie` (the ACK's ack - 1) for the ACK's tuple and ISN (its seq - 1) at counter `count`: returns
   * COOKIE_OK with `out` filled, or why not.
   */
  check(v6: boolean, src: Uint32Array, dst: Uint32Array, sport: number, dport: number, isn: number, cookie: number, count: number, out: CookieOpts): number {
    let r = this.checkWith(this.key0, this.key1, v6, src, dst, sport, dport, isn, cookie, count, out);
    if (r !== COOKIE_OK && this.prev0 && count - this.rotatedAt < COOKIE_MAX_AGE) {
      const r2 = this.checkWith(this.prev0, this.prev1!, v6, src, dst, sport, dport, isn, cookie, count, out);
      if (r2 === COOKIE_OK || r === COOKIE_BAD) r = r2;
    }
    return r;
  }

  private checkWith(k0: SipKey, k1: SipKey, v6: boolean, src: Uint32Array, dst: Uint32Array, sport: number, dport: number, isn: number, cookie: number, count: number, out: CookieOpts): number {
    const n = this.tuple(v6, src, dst, sport, dport);
    const h1 = siphash(k0, this.m, n);
    const c = (cookie - h1 - isn) >>> 0;
    const age = (count - (c >>> 24)) & 0xff;
    if (age >= COOKIE_MAX_AGE) return age < 0x80 ? COOKIE_STALE : COOKIE_BAD;
    const made = count - age;
    this.m[n] = made >>> 0;
    const h2 = siphash(k1, this.m, n + 1) ^ sipHi;
    const raw = (c - h2) & 0xffffff;
    const data = raw >>> DATA_SHIFT;
    const mi = data & MSS_BITS;
    if (raw & ZERO_BITS || mi >= MSS_TABLE.length) return COOKIE_BAD_DATA;
    out.mssIndex = mi;
    out.mss = MSS_TABLE[mi]!;
    out.wscale = ((data >>> WS_SHIFT) & 0xf) - 1;
    out.sack = (data & SACK_BIT) !== 0;
    out.ts = (data & TS_BIT) !== 0;
    return COOKIE_OK;
  }
}
