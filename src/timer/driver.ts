/**
 * Live-mode driver: one unref'd interval advances the timer wheel from the monotonic clock (never one
 * setTimeout per connection). `tick` receives the clock's current time in µs.
 */
import type { Clock } from './clock.js';

export class WheelDriver {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly tick: (nowUs: number) => void,
    readonly intervalMs = 10,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(this.clock.now()), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
