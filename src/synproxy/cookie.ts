/**
 * SYN cookies (D. J. Bernstein's idea; the fields Linux and DPVS keep in one: net/ipv4/syncookies.c,
 * DPVS ip_vs_synproxy.c), authenticated with SipHash-2-4 instead of MD5, one hash per cookie:
 *
 *   cookie = count mod 4 (2 bits) | data (9 bits) | MAC (21 bits)
 *   MAC    = SipHash(secret; src, dst, ports, client ISN, count, data) mod 2^21
 *
 * `count` is a minute counter (time / 60 s); a cookie is accepted while the counter has advanced by at most
 * 3 (so for 3 to 4 minutes); one 4 periods older carries the same low bits and fails its MAC (it is then
 * recognised as stale by a second try). `data` holds what the SYN said and the proxy must remember without
 * state: an MSS table index (3 bits, the table has 4 entries), the client's window scale + 1 (4 bits, 0 = not
 * offered), SACK permitted and timestamps permitted. A forged cookie passes with probability 2^-21 (Linux:
 * about 2^-22, from two MD5/SipHash calls); any change to a valid cookie (an ACK of the same connection
 * further on in the stream, a replayed ACK with another ISN) fails its MAC.
 * The secret is generated at start and can be rotated: the previous one stays valid for the acceptance window.
 */
import { siphash, type SipKey } from './siphash.js';

/** MSS values a cookie can carry (Linux msstab for IPv4); a client's MSS is rounded down to one of them */
export const MSS_TABLE = [536, 1300, 1440, 1460];
/** counter period and how many periods back a cookie is still valid */
export const COOKIE_PERIOD_MS = 60_000;
export const COOKIE_MAX_AGE = 4;

const DATA_SHIFT = 21;
const MAC_MASK = (1 << DATA_SHIFT) - 1;
const MSS_BITS = 0x7;
const WS_SHIFT = 3;
const SACK_BIT = 1 << 7;
const TS_BIT = 1 << 8;

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

/** data field of a cookie from the options (9 bits) */
export function cookieData(mssIndex: number, wscale: number, sack: boolean, ts: boolean): number {
  return (mssIndex & MSS_BITS) | ((wscale < 0 ? 0 : Math.min(wscale, 14) + 1) << WS_SHIFT) | (sack ? SACK_BIT : 0) | (ts ? TS_BIT : 0);
}

/** index of the largest table MSS not above `mss` (0 when below all) */
export function mssIndex(mss: number): number {
  let i = MSS_TABLE.length - 1;
  while (i > 0 && MSS_TABLE[i]! > mss) i--;
  return i;
}

export class Cookies {
  private key: SipKey;
  private prev: SipKey | null = null;
  /** counter value when the secret was last rotated (the previous one is tried until it ages out) */
  private rotatedAt = 0;
  private readonly m = new Uint32Array(11);

  /** `secret`: 16 bytes or more (the SipHash key is its first 16) */
  constructor(secret: Uint8Array) {
    this.key = Cookies.keyOf(secret);
  }

  private static keyOf(secret: Uint8Array): SipKey {
    if (secret.length < 16) throw new Error('SYN cookie secret: 16 bytes needed');
    const w = new Uint32Array(4);
    for (let i = 0; i < 16; i++) w[i >>> 2]! |= secret[i]! << (8 * (i & 3));
    return w;
  }

  /** replace the secret at counter `count`; cookies made with the old one stay valid for COOKIE_MAX_AGE */
  rotate(secret: Uint8Array, count: number): void {
    this.prev = this.key;
    this.key = Cookies.keyOf(secret);
    this.rotatedAt = count;
  }

  /** the MAC input: src, dst (1 or 4 words each), ports, ISN, count << 9 | data; returns the word count */
  private input(v6: boolean, src: Uint32Array, dst: Uint32Array, sport: number, dport: number, isn: number, count: number, data: number): number {
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
    m[n + 1] = isn;
    m[n + 2] = ((count << 9) | data) >>> 0;
    return n + 3;
  }

  private mac(k: SipKey, v6: boolean, src: Uint32Array, dst: Uint32Array, sport: number, dport: number, isn: number, count: number, data: number): number {
    return siphash(k, this.m, this.input(v6, src, dst, sport, dport, isn, count, data)) & MAC_MASK;
  }

  /** the cookie for a SYN (its addresses, ports and ISN) at counter `count` carrying `data` */
  make(v6: boolean, src: Uint32Array, dst: Uint32Array, sport: number, dport: number, isn: number, count: number, data: number): number {
    return (((count & 3) << 30) | (data << DATA_SHIFT) | this.mac(this.key, v6, src, dst, sport, dport, isn, count, data)) >>> 0;
  }

  /**
   * Check `cookie` (the ACK's ack - 1) for the ACK's tuple and ISN (its seq - 1) at counter `count`: returns
   * COOKIE_OK with `out` filled, or why not.
   */
  check(v6: boolean, src: Uint32Array, dst: Uint32Array, sport: number, dport: number, isn: number, cookie: number, count: number, out: CookieOpts): number {
    const made = count - ((count - (cookie >>> 30)) & 3);
    const data = (cookie >>> DATA_SHIFT) & 0x1ff;
    const mac = cookie & MAC_MASK;
    if (this.mac(this.key, v6, src, dst, sport, dport, isn, made, data) !== mac) {
      // the previous secret while its cookies live; else a cookie 4 periods older than it looks: stale
      if (!(this.prev && count - this.rotatedAt < COOKIE_MAX_AGE && this.mac(this.prev, v6, src, dst, sport, dport, isn, made, data) === mac)) {
        return this.mac(this.key, v6, src, dst, sport, dport, isn, made - 4, data) === mac ? COOKIE_STALE : COOKIE_BAD;
      }
    }
    const mi = data & MSS_BITS;
    if (mi >= MSS_TABLE.length) return COOKIE_BAD_DATA;
    out.mssIndex = mi;
    out.mss = MSS_TABLE[mi]!;
    out.wscale = ((data >>> WS_SHIFT) & 0xf) - 1;
    out.sack = (data & SACK_BIT) !== 0;
    out.ts = (data & TS_BIT) !== 0;
    return COOKIE_OK;
  }
}
