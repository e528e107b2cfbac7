/**
 * Drop records of the flow table: (reason, packets, bytes) in a pool of typed arrays, chained per flow (a flow
 * holds the first record's index + 1; 0 = none). The pool grows by doubling up to `max` records; a drop that
 * finds it full is not recorded (the caller counts it, unattributed). Reasons are names interned once.
 */
import { grown } from './grow.js';

const NIL = -1;

export class DropPool {
  private reason = new Int32Array(0);
  private next = new Int32Array(0);
  private pkts = new Float64Array(0);
  private bytes = new Float64Array(0);
  private free = NIL;
  private fresh = 0;
  /** reasons by index (the engine's names), and their indexes */
  readonly reasons: string[] = [];
  private readonly index = new Map<string, number>();

  constructor(private readonly max: number) {
    const n = Math.min(1024, max);
    this.reason = new Int32Array(n);
    this.next = new Int32Array(n);
    this.pkts = new Float64Array(n);
    this.bytes = new Float64Array(n);
  }

  /**
   * One more drop for `reason` on the chain that starts at `head` (index + 1): returns the chain's head after
   * it (a new record goes first), or -1 when the pool is full and the drop could not be recorded.
   */
  add(head: number, reason: string, bytes: number): number {
    let ri = this.index.get(reason);
    if (ri === undefined) {
      ri = this.reasons.length;
      this.reasons.push(reason);
      this.index.set(reason, ri);
    }
    let d = head - 1;
    while (d >= 0 && this.reason[d] !== ri) d = this.next[d]! - 1;
    if (d < 0) {
      d = this.alloc();
      if (d < 0) return -1;
      this.reason[d] = ri;
      this.pkts[d] = 0;
      this.bytes[d] = 0;
      this.next[d] = head;
      head = d + 1;
    }
    this.pkts[d]!++;
    this.bytes[d]! += bytes;
    return head;
  }

  private alloc(): number {
    if (this.free !== NIL) {
      const d = this.free;
      this.free = this.next[d]! - 1;
      return d;
    }
    if (this.fresh >= this.reason.length) {
      if (this.reason.length >= this.max) return -1;
      const n = Math.min(this.max, this.reason.length * 2);
      this.reason = grown(this.reason, n);
      this.next = grown(this.next, n);
      this.pkts = grown(this.pkts, n);
      this.bytes = grown(this.bytes, n);
    }
    return this.fresh++;
  }

  /** every record of the chain back to the pool */
  release(head: number): void {
    for (let d = head - 1; d >= 0; ) {
      const n = this.next[d]! - 1;
      this.next[d] = this.free + 1;
      this.free = d;
      d = n;
    }
  }

  /** the chain's drops by reason: packets and bytes */
  of(head: number): { pkts: Record<string, number>; bytes: Record<string, number> } {
    const pkts: Record<string, number> = {};
    const bytes: Record<string, number> = {};
    for (let d = head - 1; d >= 0; d = this.next[d]! - 1) {
      const r = this.reasons[this.reason[d]!]!;
      pkts[r] = this.pkts[d]!;
      bytes[r] = this.bytes[d]!;
    }
    return { pkts, bytes };
  }

  /** the chain's drops (packets) */
  count(head: number): number {
    let n = 0;
    for (let d = head - 1; d >= 0; d = this.next[d]! - 1) n += this.pkts[d]!;
    return n;
  }
}
