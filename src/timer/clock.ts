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

export class MonotonicClock implements Clock {
  private readonly origin = process.hrtime.bigint();

  now(): number {
    return Number((process.hrtime.bigint() - this.origin) / 1000n);
  }
}
