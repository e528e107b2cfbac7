/**
 * Hashed hierarchical timing wheel of integer handles (Varghese & Lauck 1987, scheme 7; the cascading layout
 * of the classic Linux kernel timer wheel): 4 levels of 256 slots, 1 tick = 1 ms, so level 0 spans 256 ms
 * and level 3 ~49.7 days. A timer lives in the level its distance from `cur` selects; when level 0 wraps,
 * the next slot of level 1 is cascaded down (and so on up the levels).
 *
 * - Handles are the caller's integers (connection handles). Per handle: next/prev links and two ticks, in
 *   typed arrays. Slots are circular lists with a sentinel node each (indices capacity..capacity+1023), so
 *   unlinking needs no slot lookup. Links are stored +1 so a zeroed (never touched) page means "unarmed".
 * - `extend(h, t)` is the per-packet refresh: a later expiry is only recorded (pending) and applied when the
 *   timer fires; an earlier one re-links at once. Expiry is therefore exact without touching lists per packet.
 * - `advance(now)` skips empty levels, so an hour-long gap in a capture costs a few steps, not 3.6M.
 * Ticks are relative to `base` (set by the first call that names a time) and kept below 2^32: long runs and
 * big jumps in time (a capture with a 5-year gap) are advanced in chunks, shifting `base` by multiples of
 * 2^24 ticks in between. Such a shift leaves the slot of every timer in levels 0-2 unchanged; level-3
 * timers are re-linked. A jump costs what the timers in it cost, never what its length does: once nothing
 * is armed the wheel moves to the target at once, and timers still armed after a few chunks (re-armed by
 * their callbacks) are fired in order of expiry without walking the time between them.
 */

const SLOTS = 256;
const LEVELS = 4;
const MAX_REL = 0xfffffffe;
const CHUNK = 2 ** 30;
/** ticks per slot at each level: 256^level */
const SPAN = [1, 256, 65536, 16777216];
const SHIFT_UNIT = 2 ** 24;
/** chunks walked in one advance() before the timers still armed are fired by expiry order instead */
const MAX_CHUNKS = 16;

export type FireFn = (h: number) => void;

export class TimerWheel {
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  /** tick the handle is linked at (relative) */
  private readonly at: Uint32Array;
  /** latest expiry asked for (relative); > at when extended lazily */
  private readonly want: Uint32Array;
  /** level the handle is linked in (the counts must follow where it is, not where it would go now) */
  private readonly lvl: Uint8Array;
  private readonly counts = new Float64Array(LEVELS);
  private readonly sentinel0: number;
  /** next tick to process (relative) */
  private cur = 0;
  private base = -1;
  armed = 0;
  /** loop steps taken by advance() (slots looked at, chunk shifts, timers leapt over): what time costs */
  steps = 0;
  /** while leap() fires a timer: its handle and absolute expiry (its `want` may not be representable) */
  private leapH = -1;
  private leapAt = 0;

  constructor(readonly capacity: number) {
    const n = capacity + SLOTS * LEVELS;
    this.next = new Int32Array(n);
    this.prev = new Int32Array(n);
    this.at = new Uint32Array(capacity);
    this.want = new Uint32Array(capacity);
    this.lvl = new Uint8Array(capacity);
    this.sentinel0 = capacity;
    for (let s = capacity; s < n; s++) {
      this.next[s] = s + 1;
      this.prev[s] = s + 1;
    }
  }

  /** absolute tick → relative, initialising the base on first use */
  private rel(tick: number): number {
    if (this.base < 0) {
      this.base = tick;
      this.cur = 0;
    }
    const r = tick - this.base;
    return r < this.cur ? this.cur : r > MAX_REL ? MAX_REL : r;
  }

  /** current tick (absolute), i.e. the next tick that has not been processed yet */
  now(): number {
    return this.base < 0 ? 0 : this.base + this.cur;
  }

  isArmed(h: number): boolean {
    return this.next[h] !== 0;
  }

  /** absolute tick at which `h` will expire (its latest requested expiry) */
  expiry(h: number): number {
    return h === this.leapH ? this.leapAt : this.base + this.want[h]!;
  }

  private level(t: number): number {
    const d = t - this.cur;
    if (d < SLOTS) return 0;
    if (d < SLOTS * SLOTS) return 1;
    if (d < SLOTS * SLOTS * SLOTS) return 2;
    return 3;
  }

  private link(h: number, t: number): void {
    const lv = this.level(t);
    const slot = Math.floor(t / SPAN[lv]!) % SLOTS;
    const s = this.sentinel0 + lv * SLOTS + slot;
    const first = this.next[s]! - 1;
    this.next[h] = first + 1;
    this.prev[h] = s + 1;
    this.prev[first] = h + 1;
    this.next[s] = h + 1;
    this.at[h] = t;
    this.lvl[h] = lv;
    this.counts[lv]!++;
  }

  private unlink(h: number): void {
    const n = this.next[h]! - 1;
    const p = this.prev[h]! - 1;
    this.next[p] = n + 1;
    this.prev[n] = p + 1;
    this.next[h] = 0;
    this.prev[h] = 0;
    this.counts[this.lvl[h]!]!--;
  }

  /** Arm (or re-arm) `h` to fire at absolute tick `tick`. */
  arm(h: number, tick: number): void {
    const t = this.rel(tick);
    if (this.next[h] !== 0) this.unlink(h);
    else this.armed++;
    this.want[h] = t;
    this.link(h, t);
  }

  /** Per-packet refresh: move the expiry of an armed timer to `tick`, lazily when it is later. */
  extend(h: number, tick: number): void {
    const t = this.rel(tick);
    if (this.next[h] === 0) {
      this.armed++;
      this.want[h] = t;
      this.link(h, t);
    } else if (t >= this.at[h]!) {
      this.want[h] = t;
    } else {
      this.unlink(h);
      this.want[h] = t;
      this.link(h, t);
    }
  }

  cancel(h: number): void {
    if (this.next[h] === 0) return;
    this.unlink(h);
    this.armed--;
  }

  /** Re-add every timer of slot `slot` of level `lv` (they now fall into lower levels). */
  private cascade(lv: number, slot: number): void {
    const s = this.sentinel0 + lv * SLOTS + slot;
    let h = this.next[s]! - 1;
    while (h !== s) {
      const nx = this.next[h]! - 1;
      this.next[h] = 0;
      this.prev[h] = 0;
      this.counts[lv]!--;
      this.link(h, this.at[h]!);
      h = nx;
    }
    this.next[s] = s + 1;
    this.prev[s] = s + 1;
  }

  /**
   * Process every tick up to and including absolute tick `tick`, calling `fire(h)` for each timer that
   * expires (already unlinked; the callback may re-arm it). Returns the number fired.
   */
  advance(tick: number, fire: FireFn): number {
    if (this.base < 0) {
      this.rel(tick);
      return 0;
    }
    let fired = 0;
    for (let chunks = 0; tick - this.base - this.cur > CHUNK || tick - this.base > 2 * CHUNK; chunks++) {
      if (this.armed === 0 || chunks >= MAX_CHUNKS) {
        // nothing to walk through (or only timers their callbacks keep re-arming): go to the target at once
        fired += this.leap(tick, fire);
        break;
      }
      fired += this.advanceRel(Math.min(tick - this.base, this.cur + CHUNK), fire);
      this.shift();
      this.steps++;
    }
    return fired + this.advanceRel(tick - this.base, fire);
  }

  /**
   * Move to absolute tick `tick` (beyond every armed timer) directly: the armed timers are taken out and fired
   * in order of expiry (expiry() gives each its own time while it fires); what their callbacks arm lands after
   * the new base. O(armed log armed + slots), whatever the distance.
   */
  private leap(tick: number, fire: FireFn): number {
    const hs: number[] = [];
    for (let s = this.sentinel0; s < this.sentinel0 + SLOTS * LEVELS; s++) {
      for (let h = this.next[s]! - 1; h !== s; h = this.next[h]! - 1) hs.push(h);
      this.next[s] = s + 1;
      this.prev[s] = s + 1;
    }
    const at = new Float64Array(hs.length);
    hs.forEach((h, i) => {
      at[i] = this.base + this.want[h]!;
      this.next[h] = 0;
      this.prev[h] = 0;
    });
    const order = hs.map((_, i) => i).sort((a, b) => at[a]! - at[b]! || hs[a]! - hs[b]!);
    this.counts.fill(0);
    this.armed = 0;
    this.base = tick;
    this.cur = 0;
    this.steps += SLOTS * LEVELS + hs.length;
    for (const i of order) {
      this.leapH = hs[i]!;
      this.leapAt = at[i]!;
      fire(hs[i]!);
    }
    this.leapH = -1;
    return hs.length;
  }

  /** Move `base` forward by a multiple of 2^24 ticks (keeping every relative tick representable). */
  private shift(): void {
    const d = Math.floor(this.cur / SHIFT_UNIT) * SHIFT_UNIT;
    if (d === 0) return;
    const lv3 = this.sentinel0 + 3 * SLOTS;
    const moved: number[] = [];
    for (let s = lv3; s < lv3 + SLOTS; s++) {
      for (let h = this.next[s]! - 1; h !== s; h = this.next[h]! - 1) moved.push(h);
      this.next[s] = s + 1;
      this.prev[s] = s + 1;
    }
    this.counts[3] = 0;
    for (let s = this.sentinel0; s < lv3; s++) {
      for (let h = this.next[s]! - 1; h !== s; h = this.next[h]! - 1) {
        this.at[h] = this.at[h]! - d;
        this.want[h] = this.want[h]! - d;
      }
    }
    this.cur -= d;
    this.base += d;
    for (const h of moved) {
      this.next[h] = 0;
      this.prev[h] = 0;
      this.want[h] = this.want[h]! - d;
      this.link(h, this.at[h]! - d);
    }
  }

  private advanceRel(end: number, fire: FireFn): number {
    let fired = 0;
    const c = this.counts;
    while (this.cur <= end) {
      const cur = this.cur;
      this.steps++;
      if (cur % SLOTS === 0 && cur > 0) {
        // level 0 wrapped: cascade level 1, and higher levels when they wrap too
        let div = SLOTS;
        for (let lv = 1; lv < LEVELS; lv++) {
          const slot = Math.floor(cur / div) % SLOTS;
          if (c[lv]! > 0) this.cascade(lv, slot);
          if (slot !== 0) break;
          div *= SLOTS;
        }
      }
      if (c[0]! > 0) {
        const s = this.sentinel0 + (cur % SLOTS);
        let h = this.next[s]! - 1;
        while (h !== s) {
          const nx = this.next[h]! - 1;
          this.unlink(h);
          const w = this.want[h]!;
          if (w > cur) {
            this.link(h, w); // extended lazily: not due yet
          } else {
            this.armed--;
            fired++;
            fire(h);
          }
          h = nx;
        }
        this.cur = cur + 1;
        continue;
      }
      // level 0 is empty: jump to the next boundary where something can happen
      let nextT: number;
      if (c[1]! > 0) nextT = (Math.floor(cur / SLOTS) + 1) * SLOTS;
      else if (c[2]! > 0) nextT = (Math.floor(cur / SLOTS ** 2) + 1) * SLOTS ** 2;
      else if (c[3]! > 0) nextT = (Math.floor(cur / SLOTS ** 3) + 1) * SLOTS ** 3;
      else nextT = end + 1;
      this.cur = nextT > end + 1 ? end + 1 : nextT;
    }
    return fired;
  }

  /** absolute tick of the earliest pending expiry, or Infinity when nothing is armed (O(slots)) */
  nextExpiry(): number {
    if (this.armed === 0) return Infinity;
    let best = Infinity;
    for (let s = this.sentinel0; s < this.sentinel0 + SLOTS * LEVELS; s++) {
      for (let h = this.next[s]! - 1; h !== s; h = this.next[h]! - 1) {
        const w = this.want[h]!;
        if (w < best) best = w;
      }
    }
    return this.base + best;
  }
}
