import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import sinon from 'sinon';
import { MonotonicClock, VirtualClock } from '../../src/timer/clock.js';
import { WheelDriver } from '../../src/timer/driver.js';
import { Rng } from '../../src/timer/rng.js';
import { TimerWheel } from '../../src/timer/wheel.js';

/** advance tick by tick, recording at which tick each handle fired */
function stepTo(w: TimerWheel, from: number, to: number, log: Map<number, number>): void {
  for (let t = from; t <= to; t++) w.advance(t, (h) => log.set(h, t));
}

describe('timer wheel', function () {
  it('fires each timer exactly at its tick across all four levels', function () {
    const w = new TimerWheel(64);
    w.advance(1000, () => {}); // base
    const due = [0, 1, 255, 256, 257, 1000, 65535, 65536, 65537, 70000, 300000];
    due.forEach((d, h) => w.arm(h, 1000 + d));
    const log = new Map<number, number>();
    stepTo(w, 1000, 1000 + 300001, log);
    due.forEach((d, h) => assert.equal(log.get(h), 1000 + d, `timer ${h} (+${d})`));
    assert.equal(w.armed, 0);
  });

  it('a big jump fires everything due, and expiry() gives each one its own time', function () {
    const w = new TimerWheel(16);
    w.advance(0, () => {});
    w.arm(1, 3_600_000); // 1 hour
    w.arm(2, 5 * 86_400_000); // 5 days
    w.arm(3, 5 * 86_400_000 + 1);
    const fired: Array<[number, number]> = [];
    w.advance(5 * 86_400_000, (h) => fired.push([h, w.expiry(h)]));
    assert.deepEqual(fired, [
      [1, 3_600_000],
      [2, 5 * 86_400_000],
    ]);
    w.advance(5 * 86_400_000 + 1, (h) => fired.push([h, w.expiry(h)]));
    assert.deepEqual(fired.at(-1), [3, 5 * 86_400_000 + 1]);
  });

  it('a jump of 4·10^12 ticks (a far-future timestamp, the engine\'s latest time) fires everything in expiry order at its own time, in steps bounded by the timers, not the gap', function () {
    const w = new TimerWheel(4096);
    const t0 = 1_700_000_000_000;
    w.advance(t0, () => {});
    const due = Array.from({ length: 3000 }, (_, h) => t0 + ((h * 7919) % 3000) * 1000 + 1); // spread over 50 minutes
    due.forEach((t, h) => w.arm(h, t));
    w.arm(3000, t0 + 40 * 86_400_000); // beyond the first chunk
    const fired: number[] = [];
    const at: number[] = [];
    w.steps = 0;
    const far = 2 ** 42; // ms: 2^52 µs
    w.advance(far, (h) => {
      fired.push(h);
      at.push(w.expiry(h));
    });
    assert.equal(fired.length, 3001);
    assert.deepEqual(at, [...at].sort((a, b) => a - b), 'in expiry order');
    fired.forEach((h, i) => assert.equal(at[i], h === 3000 ? t0 + 40 * 86_400_000 : due[h]));
    assert.ok(w.steps < 5_000_000, `${w.steps} steps`);
    // and the wheel keeps time exactly after the jump
    w.arm(1, far + 500);
    const early: number[] = [];
    w.advance(far + 499, (h) => early.push(h));
    assert.equal(early.length, 0);
    const later: number[] = [];
    w.advance(far + 500, (h) => later.push(w.expiry(h)));
    assert.deepEqual(later, [far + 500]);
  });

  it('a timer its callback keeps re-arming does not make a far jump walk the gap', function () {
    const w = new TimerWheel(8);
    w.advance(0, () => {});
    w.arm(1, 1000);
    let fires = 0;
    const far = 2 ** 42;
    w.steps = 0;
    w.advance(far, (h) => {
      fires++;
      if (fires < 50) w.arm(h, w.expiry(h) + 86_400_000); // a day after its own expiry, 50 times
    });
    assert.equal(fires, 50);
    assert.equal(w.armed, 0);
    assert.ok(w.steps < 5_000_000, `${w.steps} steps`);
  });

  it('a 5-year jump (a capture spanning years) keeps later timers exact', function () {
    const w = new TimerWheel(8);
    const t0 = 952109346874; // ms, year 2000
    w.advance(t0, () => {});
    w.arm(1, t0 + 120_000);
    const fired: Array<[number, number]> = [];
    const t1 = 1128727435450; // year 2005
    w.advance(t1, (h) => fired.push([h, w.expiry(h)]));
    assert.deepEqual(fired, [[1, t0 + 120_000]]);
    w.arm(2, t1 + 60_000);
    w.arm(3, t1 + 5 * 86_400_000);
    w.advance(t1 + 59_999, (h) => fired.push([h, w.expiry(h)]));
    assert.equal(fired.length, 1, 'nothing early after the jump');
    w.advance(t1 + 60_000, (h) => fired.push([h, w.expiry(h)]));
    assert.deepEqual(fired.at(-1), [2, t1 + 60_000]);
    w.advance(t1 + 6 * 86_400_000, (h) => fired.push([h, w.expiry(h)]));
    assert.deepEqual(fired.at(-1), [3, t1 + 5 * 86_400_000]);
  });

  it('a timer kept alive across several base shifts (a live run of 100+ days) fires on time', function () {
    const w = new TimerWheel(4);
    w.advance(0, () => {});
    const day = 86_400_000;
    let fired = 0;
    for (let d = 1; d <= 120; d++) {
      w.extend(1, d * day + 5 * day); // refreshed daily, 5-day timeout
      w.advance(d * day, () => fired++);
    }
    assert.equal(fired, 0);
    w.advance(125 * day - 1, () => fired++);
    assert.equal(fired, 0);
    w.advance(125 * day, (h) => {
      fired++;
      assert.equal(w.expiry(h), 125 * day);
    });
    assert.equal(fired, 1);
  });

  it('extend() postpones lazily and shortens at once; cancel() removes', function () {
    const w = new TimerWheel(8);
    w.advance(0, () => {});
    w.arm(1, 100);
    w.extend(1, 5000); // later: recorded, fires at 5000 not 100
    w.arm(2, 100);
    w.extend(2, 50); // earlier: moves now
    w.arm(3, 60);
    w.cancel(3);
    const log = new Map<number, number>();
    stepTo(w, 0, 6000, log);
    assert.equal(log.get(1), 5000);
    assert.equal(log.get(2), 50);
    assert.equal(log.has(3), false);
  });

  it('matches a model under random arm/extend/cancel/advance (fast-check)', function () {
    type Op = { k: 'arm' | 'extend' | 'cancel'; h: number; d: number } | { k: 'adv'; d: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constantFrom('arm' as const, 'extend' as const, 'cancel' as const), h: fc.nat(15), d: fc.oneof(fc.nat(300), fc.nat(200000)) }),
      fc.record({ k: fc.constant('adv' as const), d: fc.oneof(fc.nat(50), fc.nat(100000)) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const w = new TimerWheel(16);
        let now = 10_000;
        w.advance(now, () => {});
        const model = new Map<number, number>();
        for (const o of ops) {
          if (o.k === 'adv') {
            const to = now + o.d;
            const fired: number[] = [];
            w.advance(to, (h) => fired.push(h));
            const want = [...model.entries()].filter(([, t]) => t <= to).map(([h]) => h);
            assert.deepEqual(fired.sort((a, b) => a - b), want.sort((a, b) => a - b));
            for (const h of want) model.delete(h);
            now = to + 1;
          } else if (o.k === 'cancel') {
            w.cancel(o.h);
            model.delete(o.h);
          } else {
            const t = now + o.d;
            if (o.k === 'arm') w.arm(o.h, t);
            else w.extend(o.h, t);
            model.set(o.h, t);
          }
          assert.equal(w.armed, model.size);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('virtual clock never goes backwards', function () {
    const c = new VirtualClock();
    c.set(100);
    c.set(50);
    assert.equal(c.now(), 100);
  });

  it('the same seed gives the same jitter sequence, another seed a different one', function () {
    const a = Array.from({ length: 5 }, ((r) => () => r.below(1e6))(new Rng(7)));
    const b = Array.from({ length: 5 }, ((r) => () => r.below(1e6))(new Rng(7)));
    const c = Array.from({ length: 5 }, ((r) => () => r.below(1e6))(new Rng(8)));
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.ok(a.every((x) => x >= 0 && x < 1e6));
  });

  describe('live driver (sinon fake timers)', function () {
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => (clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'performance'] })));
    afterEach(() => clock.restore());

    it('advances the wheel from the monotonic clock on one interval, and expires on time', function () {
      const w = new TimerWheel(8);
      const mono = new MonotonicClock();
      const fired: number[] = [];
      const drv = new WheelDriver(mono, (us) => w.advance(Math.floor(us / 1000), (h) => fired.push(h)), 10);
      w.advance(0, () => {});
      w.arm(1, 1500);
      w.arm(2, 3000);
      drv.start();
      clock.tick(1490);
      assert.deepEqual(fired, []);
      clock.tick(20);
      assert.deepEqual(fired, [1]);
      clock.tick(1500);
      assert.deepEqual(fired, [1, 2]);
      drv.stop();
      assert.equal(clock.countTimers(), 0);
    });
  });
});
