/**
 * Time sources, in microseconds. Replay uses a virtual clock set from packet timestamps, so a capture with
 * hour-long gaps expires connections exactly as real time would, without waiting; live mode uses the
 * monotonic clock.
 */
export interface Clock {
  /** current time in microseconds */
  now(): number;
}

export class VirtualClock implements Clock {
  private t = 0;

  now(): number {
    return this.t;
  }

  /** Move to `us`; time never goes backwards (out-of-order captures keep the latest time seen). */
  set(us: number): void {
    if (us > this.t) this.t = us;
  }
}

/** performance.now(): monotonic, a double (process.hrtime.bigint() would allocate a BigInt per packet) */
export class MonotonicClock implements Clock {
  private readonly origin = performance.now();

  now(): number {
    return Math.floor((performance.now() - this.origin) * 1000);
  }
}
