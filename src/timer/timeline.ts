/**
 * The engine's time: set from each packet's timestamp (replay) or the monotonic clock (live), never going
 * backwards, in 1 ms ticks. Whatever runs on time registers here once (the connection timer wheel, the
 * persistence templates, the rate estimators, later flow eviction and probe plans) and is called when the
 * tick changes: one driver for every timer, nothing per packet within a millisecond.
 */

export const TICK_US = 1000;

/**
 * The latest time the engine keeps (µs since the epoch, 2^52: the year 2112, past every classic pcap
 * timestamp). A pcapng timestamp can be up to 2^64 units with an offset; beyond this the clock stays here, so
 * every time stays an exact integer in a double (counted in `clamped`; records keep their own timestamps).
 */
export const MAX_TIME_US = 2 ** 52;

export type TickFn = (tick: number, nowUs: number) => void;

export class Timeline {
  /** the current time (µs) and its timestamp parts at the capture's precision, for records */
  nowUs = 0;
  curSec = 0;
  curFrac = 0;
  /** fraction digits of the capture being tracked (6 or 9), for formatting */
  digits = 6;
  /** ceil(nowUs / TICK_US): the tick a timeout of whole milliseconds counts from */
  tickUp = 0;
  /** times beyond MAX_TIME_US */
  clamped = 0;
  private lastTick = -1;
  private readonly onTick: TickFn[] = [];
  /** the ones that also run while draining (expiry of what is still open; not the rate estimators) */
  private readonly onDrain: TickFn[] = [];

  /** call `fn` whenever the millisecond changes (in registration order); `drain`: also when drained */
  every(fn: TickFn, drain = false): void {
    this.onTick.push(fn);
    if (drain) this.onDrain.push(fn);
  }

  /** Move to a packet's timestamp (earlier ones keep the time), running what is due. */
  set(sec: number, frac: number, digits: number): void {
    let us = sec * 1e6 + (digits === 6 ? frac : Math.floor(frac / 10 ** (digits - 6)));
    if (!(us <= MAX_TIME_US)) {
      us = MAX_TIME_US;
      this.clamped++;
    }
    if (us >= this.nowUs) {
      this.nowUs = us;
      this.curSec = sec;
      this.curFrac = frac;
    }
    this.digits = digits;
    const tick = Math.floor(this.nowUs / TICK_US);
    this.tickUp = tick * TICK_US < this.nowUs ? tick + 1 : tick;
    // nothing can expire between two packets of the same millisecond
    if (tick !== this.lastTick) this.ticked(tick);
  }

  /** the millisecond changed (out of line: set() is inlined into the packet path) */
  private ticked(tick: number): void {
    this.lastTick = tick;
    for (const fn of this.onTick) fn(tick, this.nowUs);
  }

  /** Drain: jump to `us` (later than now) without a packet, running only what expires things. */
  jump(us: number): void {
    if (us <= this.nowUs) return;
    this.nowUs = us;
    const tick = Math.floor(us / TICK_US);
    this.tickUp = tick * TICK_US < us ? tick + 1 : tick;
    this.lastTick = tick;
    for (const fn of this.onDrain) fn(tick, us);
  }

  /** µs of a fraction at the current precision */
  fracUs(frac: number): number {
    return this.digits === 6 ? frac : Math.floor(frac / 10 ** (this.digits - 6));
  }

  /** Format a µs time as "sec.frac" with the capture's digits. */
  formatUs(us: number): string {
    const sec = Math.floor(us / 1e6);
    const fracUs = us - sec * 1e6;
    return this.digits === 9 ? `${sec}.${String(Math.round(fracUs * 1000)).padStart(9, '0')}` : `${sec}.${String(Math.round(fracUs)).padStart(6, '0')}`;
  }

  /** current event time: the packet's own timestamp at the capture's precision */
  nowString(): string {
    return `${this.curSec}.${String(this.curFrac).padStart(this.digits, '0')}`;
  }
}
