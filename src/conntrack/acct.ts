/**
 * Per-connection accounting (nf_conntrack_acct, nf_conntrack_timestamp): packets and IP bytes per
 * direction, first and last packet time, ICMP errors related to it, and Zeek's connection history letters
 * (S SYN, H SYN-ACK, A pure ACK, D data, F FIN, R RST; upper case from the originator, each once, in order
 * of first appearance). Rows by connection handle, in typed arrays.
 */
import { IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type PacketView } from '../packet/view.js';
import type { Timeline } from '../timer/timeline.js';
import type { ConnExtension } from './conntrack.js';

/** Zeek history letters: index = code; upper case for the originator */
const HISTORY_LETTERS = 'SHADFRshadfr';
const H_S = 0;
const H_H = 1;
const H_A = 2;
const H_D = 3;
const H_F = 4;
const H_R = 5;
const H_DA = (1 << H_D) | (1 << H_A);

export class Acct implements ConnExtension {
  /* [2c + dir] */
  private readonly pkts: Uint32Array;
  private readonly bytes: Float64Array;
  private readonly firstSec: Uint32Array;
  private readonly firstFrac: Uint32Array;
  private readonly lastSec: Uint32Array;
  private readonly lastFrac: Uint32Array;
  private readonly related: Uint16Array;
  /** history: up to 16 letter codes, 4 bits each, in order of first appearance; hseen = set of codes */
  private readonly hist: Uint32Array;
  private readonly hseen: Uint16Array;

  constructor(
    cap: number,
    private readonly time: Timeline,
  ) {
    this.pkts = new Uint32Array(cap * 2);
    this.bytes = new Float64Array(cap * 2);
    this.firstSec = new Uint32Array(cap);
    this.firstFrac = new Uint32Array(cap);
    this.lastSec = new Uint32Array(cap);
    this.lastFrac = new Uint32Array(cap);
    this.related = new Uint16Array(cap);
    this.hist = new Uint32Array(cap * 2);
    this.hseen = new Uint16Array(cap);
  }

  /** ConnExtension: a new connection at handle c (`reused`: the handle held another one, whose rows are cleared) */
  created(c: number, reused: boolean): void {
    this.firstSec[c] = this.time.curSec;
    this.firstFrac[c] = this.time.curFrac;
    if (!reused) return; // a fresh handle's rows are still zero
    this.pkts[2 * c] = 0;
    this.pkts[2 * c + 1] = 0;
    this.bytes[2 * c] = 0;
    this.bytes[2 * c + 1] = 0;
    this.related[c] = 0;
    this.hist[2 * c] = 0;
    this.hist[2 * c + 1] = 0;
    this.hseen[c] = 0;
  }

  /** one packet of direction dir */
  packet(c: number, dir: number, v: PacketView): void {
    this.pkts[2 * c + dir]!++;
    this.bytes[2 * c + dir]! += v.ipTotalLen;
    this.lastSec[c] = this.time.curSec;
    this.lastFrac[c] = this.time.curFrac;
    const p = v.proto;
    if (p === IPPROTO_TCP) {
      // once this side's D and A letters are in, only SYN, FIN and RST can add one; nor can more data once
      // D is in (a side that never sends a pure ACK, as a server answering requests, never gets its A)
      const off = dir === 0 ? 0 : 6;
      const seen = this.hseen[c]!;
      if ((v.tcpFlags & (TCP_SYN | TCP_FIN | TCP_RST)) !== 0 || ((~seen & (H_DA << off)) !== 0 && !(seen & (1 << (off + H_D)) && v.payloadLen > 0))) this.tcpHistory(c, off, v);
    } else if (p === IPPROTO_UDP) {
      const code = dir === 0 ? H_D : 6 + H_D;
      if (!(this.hseen[c]! & (1 << code)) && v.payloadLen > 0) this.history(c, code, this.hseen[c]!);
    }
  }

  /** an ICMP error about connection c */
  relatedPacket(c: number): void {
    if (this.related[c]! < 0xffff) this.related[c]!++;
    this.lastSec[c] = this.time.curSec;
    this.lastFrac[c] = this.time.curFrac;
  }

  /** Zeek letters of a TCP packet: S/H (SYN, SYN+ACK), F, R, A (pure ACK), D (payload); upper case = originator */
  private tcpHistory(c: number, off: number, v: PacketView): void {
    const f = v.tcpFlags;
    const seen = this.hseen[c]!;
    if (f & TCP_SYN) this.history(c, off + (f & TCP_ACK ? H_H : H_S), seen);
    if (f & TCP_FIN) this.history(c, off + H_F, seen);
    if (f & TCP_RST) this.history(c, off + H_R, seen);
    if (v.payloadLen > 0) {
      if (!(seen & (1 << (off + H_D)))) this.history(c, off + H_D, this.hseen[c]!);
    } else if ((f & (TCP_ACK | TCP_SYN | TCP_FIN | TCP_RST)) === TCP_ACK && !(seen & (1 << (off + H_A)))) this.history(c, off + H_A, this.hseen[c]!);
  }

  private history(c: number, code: number, seenIn: number): void {
    const bit = 1 << code;
    const seen = this.hseen[c]! | seenIn;
    if (seen & bit) return;
    this.hseen[c] = seen | bit;
    // the number of letters so far is the popcount of seen
    let n = 0;
    for (let s = seen; s; s &= s - 1) n++;
    if (n >= 16) return;
    const w = 2 * c + (n >>> 3);
    this.hist[w] = (this.hist[w]! | ((code + 1) << ((n & 7) * 4))) >>> 0;
  }

  /** Zeek-style history string of connection c. */
  historyString(c: number): string {
    let s = '';
    for (let n = 0; n < 16; n++) {
      const code = ((this.hist[2 * c + (n >>> 3)]! >>> ((n & 7) * 4)) & 15) - 1;
      if (code < 0) break;
      s += HISTORY_LETTERS[code];
    }
    return s;
  }

  /** packets of direction dir (0 original, 1 reply) */
  packetsOf(c: number, dir: number): number {
    return this.pkts[2 * c + dir]!;
  }

  /** IP bytes of direction dir */
  bytesOf(c: number, dir: number): number {
    return this.bytes[2 * c + dir]!;
  }

  relatedOf(c: number): number {
    return this.related[c]!;
  }

  /** first and last packet time as [sec, frac] at the capture's precision */
  firstOf(c: number): [number, number] {
    return [this.firstSec[c]!, this.firstFrac[c]!];
  }

  lastOf(c: number): [number, number] {
    return [this.lastSec[c]!, this.lastFrac[c]!];
  }

  /** time of the first packet in µs */
  firstUs(c: number): number {
    return this.firstSec[c]! * 1e6 + this.time.fracUs(this.firstFrac[c]!);
  }

  /** time of the last packet in µs */
  lastUs(c: number): number {
    return this.lastSec[c]! * 1e6 + this.time.fracUs(this.lastFrac[c]!);
  }
}
