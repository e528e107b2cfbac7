/**
 * Anti-replay window for counters (RFC 6479, as WireGuard's): a counter is fresh once, if it is above the
 * highest seen or less than WINDOW - 32 below it and not seen yet. A bitmap of 32-bit words; sliding clears only the
 * words the window moved past.
 */
export const WINDOW = 2048;
const WORDS = WINDOW / 32;

export class ReplayWindow {
  private readonly bits = new Uint32Array(WORDS);
  /** the highest counter accepted (-1: none yet) */
  top = -1;

  /** would `n` be fresh (no state change) */
  fresh(n: number): boolean {
    if (!Number.isSafeInteger(n) || n < 0) return false;
    if (n > this.top) return true;
    // (the word holding top is shared with counters above it: the window reaches WINDOW - 32 below top)
    if (this.top - n >= WINDOW - 32) return false;
    const w = Math.floor(n / 32) % WORDS;
    return (this.bits[w]! & (1 << (n % 32))) === 0;
  }

  /** accept `n` if fresh (then it never is again); false for a replay or a counter too old */
  accept(n: number): boolean {
    if (!this.fresh(n)) return false;
    if (n > this.top) {
      // clear the words between the old top's word and n's (at most the whole bitmap)
      const from = this.top < 0 ? -1 : Math.floor(this.top / 32);
      const to = Math.floor(n / 32);
      for (let i = Math.min(to - from, WORDS); i > 0; i--) this.bits[(to - i + 1) % WORDS] = 0;
      this.top = n;
    }
    this.bits[Math.floor(n / 32) % WORDS]! |= 1 << (n % 32);
    return true;
  }
}
