import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { createScheduler, Dests, SCHEDULER_NAMES, type SchedKey } from '../../src/sched/index.js';
import { Service } from '../../src/service/services.js';
import { maglevPopulate } from '../../src/sched/mh.js';

function key(src: number, sport = 1000, dst = 0xc0a80001): SchedKey {
  return { v6: false, src: Uint32Array.of(src, 0, 0, 0), dst: Uint32Array.of(dst, 0, 0, 0), sport, dport: 80 };
}

const servers = (weights: number[]) => Dests.of(weights.map((w, i) => ({ id: `10.0.0.${i + 1}:80`, weight: w })));

function counts(picks: number[], n: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (const p of picks) c[p]!++;
  return c;
}

describe('schedulers', function () {
  it('the registry has the twelve IPVS/DPVS schedulers and refuses unknown names', function () {
    assert.deepEqual(SCHEDULER_NAMES.sort(), ['conhash', 'dh', 'fo', 'lc', 'mh', 'nq', 'ovf', 'rr', 'sed', 'sh', 'wlc', 'wrr']);
    assert.throws(() => createScheduler('random'), /unknown scheduler "random"/);
  });

  it('rr cycles through usable servers and skips quiescent (weight 0) and unavailable ones', function () {
    const d = servers([1, 0, 1, 1]);
    d.available[3] = 0;
    const s = createScheduler('rr');
    s.update(d);
    assert.deepEqual(
      Array.from({ length: 6 }, () => s.pick(d, key(1))),
      [0, 2, 0, 2, 0, 2],
    );
  });

  it('wrr: over a full cycle (sum of weights / gcd) each server is picked exactly weight/gcd times, interleaved', function () {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 7 }), (w) => {
        const d = servers(w);
        const s = createScheduler('wrr');
        s.update(d);
        const g = w.filter((x) => x > 0).reduce((a, b) => gcdT(a, b), 0);
        if (g === 0) {
          assert.equal(s.pick(d, key(1)), -1);
          return;
        }
        const cycle = w.reduce((a, b) => a + b, 0) / g;
        for (let rep = 0; rep < 3; rep++) {
          const picks = Array.from({ length: cycle }, () => s.pick(d, key(1)));
          assert.deepEqual(
            counts(picks, w.length),
            w.map((x) => x / g),
          );
        }
      }),
      { numRuns: 300 },
    );
    // the LVS interleaving for weights 4, 3, 2: heavier servers first within each round
    const d = servers([4, 3, 2]);
    const s = createScheduler('wrr');
    s.update(d);
    assert.deepEqual(
      Array.from({ length: 9 }, () => s.pick(d, key(1))),
      [0, 0, 1, 0, 1, 2, 0, 1, 2],
    );
  });

  it('lc, wlc, sed, nq pick by their formulas (fast-check against an exact-fraction argmin)', function () {
    // a < b as fractions n/d, exactly
    const less = (an: number, ad: number, bn: number, bd: number) => an * bd < bn * ad;
    const argmin = (d: Dests, num: (i: number) => number, den: (i: number) => number) => {
      let best = -1;
      for (let i = 0; i < d.count; i++) {
        if (d.weight[i]! <= 0 || !d.available[i]) continue;
        if (best < 0 || less(num(i), den(i), num(best), den(best))) best = i;
      }
      return best;
    };
    fc.assert(
      fc.property(
        fc.array(fc.record({ w: fc.integer({ min: 0, max: 20 }), a: fc.nat(50), n: fc.nat(500), up: fc.boolean() }), { minLength: 1, maxLength: 8 }),
        (rows) => {
          const d = Dests.of(rows.map((r, i) => ({ id: `s${i}`, weight: r.w, active: r.a, inactive: r.n, available: r.up })));
          const ovh = (i: number) => d.active[i]! * 256 + d.inactive[i]!;
          assert.equal(createScheduler('lc').pick(d, key(1)), argmin(d, ovh, () => 1));
          assert.equal(createScheduler('wlc').pick(d, key(1)), argmin(d, ovh, (i) => d.weight[i]!));
          assert.equal(createScheduler('sed').pick(d, key(1)), argmin(d, (i) => d.active[i]! + 1, (i) => d.weight[i]!));
          const idle = rows.findIndex((r) => r.w > 0 && r.up && r.a === 0);
          assert.equal(createScheduler('nq').pick(d, key(1)), idle >= 0 ? idle : argmin(d, (i) => d.active[i]! + 1, (i) => d.weight[i]!));
        },
      ),
      { numRuns: 2000 },
    );
  });

  for (const name of ['sh', 'dh', 'mh', 'conhash']) {
    it(`${name}: the same key always gets the same server, also from a fresh instance with the same servers`, function () {
      const d = servers([1, 2, 3, 1, 1]);
      const a = createScheduler(name);
      const b = createScheduler(name);
      a.update(d);
      b.update(d);
      for (let i = 0; i < 2000; i++) {
        const k = key(0x0a000000 + i * 7919, 1000 + i, 0xc0a80000 + (i % 97));
        const p = a.pick(d, k);
        assert.ok(p >= 0);
        assert.equal(a.pick(d, k), p);
        assert.equal(b.pick(d, k), p);
      }
    });
  }

  it('sh spreads sources by weight (buckets) and, with fallback, moves only the sources of an unusable server', function () {
    const d = servers([1, 3]);
    const s = createScheduler('sh', { fallback: true });
    s.update(d);
    const before = Array.from({ length: 4000 }, (_, i) => s.pick(d, key(0x0b000000 + i * 2654435)));
    const c = counts(before, 2);
    assert.ok(c[1]! > 2.5 * c[0]! && c[1]! < 3.5 * c[0]!, `split ${c}`);
    d.available[0] = 0;
    const after = Array.from({ length: 4000 }, (_, i) => s.pick(d, key(0x0b000000 + i * 2654435)));
    after.forEach((p, i) => {
      assert.equal(p, 1);
      if (before[i] === 1) assert.equal(p, before[i]);
    });
    const strict = createScheduler('sh');
    strict.update(d);
    assert.ok(Array.from({ length: 100 }, (_, i) => strict.pick(d, key(0x0b000000 + i * 2654435))).includes(-1), 'no fallback: the unusable server’s sources get none');
  });

  it("mh: the populate of the Maglev paper's example (M = 7, three backends) gives its lookup table", function () {
    // Eisenbud et al., NSDI 2016, Table 1: B0 offset 3 skip 4, B1 offset 0 skip 2, B2 offset 3 skip 1;
    // the lookup table before B1 is removed: B1 B0 B1 B0 B2 B2 B0
    const t = new Int32Array(7);
    maglevPopulate(Int32Array.of(3, 0, 3), Int32Array.of(4, 2, 1), Int32Array.of(1, 1, 1), t);
    assert.deepEqual([...t], [1, 0, 1, 0, 2, 2, 0]);
    // B1 removed (B0, B2), worked by hand: B0 takes 3, B2 4 (3 is taken); B0 0, B2 5; B0 1 (4 taken), B2 6;
    // B0 2 (5 taken): B0 B0 B0 B0 B2 B2 B2
    const t2 = new Int32Array(7);
    maglevPopulate(Int32Array.of(3, 3), Int32Array.of(4, 1), Int32Array.of(1, 1), t2);
    assert.deepEqual([...t2], [0, 0, 0, 0, 1, 1, 1]);
    // a weight of 2 takes two slots per turn: B0 (weight 2) 3 and 0, B2 4; B0 1 and 5... -> B0 B0 B0 B0 B2 B0 B2
    const t3 = new Int32Array(7);
    maglevPopulate(Int32Array.of(3, 3), Int32Array.of(4, 1), Int32Array.of(2, 1), t3);
    assert.deepEqual([...t3], [0, 0, 0, 0, 1, 0, 1]);
  });

  it('mh: table shares follow the weights; removing 1 of N servers moves at most ~1/N of the keys', function () {
    const d = servers([1, 2, 1, 1]);
    const s = createScheduler('mh', { tableSize: 65537 });
    s.update(d);
    const c = counts(
      Array.from({ length: 40000 }, (_, i) => s.pick(d, key(0x0c000000 + i * 40503))),
      4,
    );
    const share1 = c[1]! / 40000;
    assert.ok(Math.abs(share1 - 0.4) < 0.03, `weight-2 server share ${share1}`);
    const N = 10;
    const all = servers(new Array<number>(N).fill(1));
    const before = createScheduler('mh');
    before.update(all);
    const fewer = Dests.of(all.ids.filter((_, i) => i !== 3).map((id) => ({ id, weight: 1 })));
    const after = createScheduler('mh');
    after.update(fewer);
    const keys = 20000;
    let moved = 0;
    for (let i = 0; i < keys; i++) {
      const k = key(0x0d000000 + i * 2246822519);
      const a = before.pick(all, k);
      const b = after.pick(fewer, k);
      if (all.ids[a] !== fewer.ids[b]) moved++;
    }
    const frac = moved / keys;
    console.log(`      mh: removing 1 of ${N} servers moved ${(frac * 100).toFixed(2)}% of ${keys} keys (1/N = ${(100 / N).toFixed(1)}%)`);
    assert.ok(frac <= 1 / N + 0.03, `moved ${frac}`);
  });

  it('conhash: removing one server moves only its keys', function () {
    const all = servers([1, 1, 1, 1, 1]);
    const a = createScheduler('conhash');
    a.update(all);
    const fewer = Dests.of(all.ids.filter((_, i) => i !== 2).map((id) => ({ id, weight: 1 })));
    const b = createScheduler('conhash');
    b.update(fewer);
    for (let i = 0; i < 5000; i++) {
      const k = key(0x0e000000 + i * 2654435761);
      const pa = all.ids[a.pick(all, k)];
      const pb = fewer.ids[b.pick(fewer, k)];
      if (pa !== all.ids[2]) assert.equal(pb, pa);
    }
  });

  it('fo picks the usable server with the highest weight; ovf the highest one still below its weight in active connections', function () {
    const d = Dests.of([
      { id: 'a', weight: 5, active: 5 },
      { id: 'b', weight: 9, active: 9 },
      { id: 'c', weight: 7, active: 2 },
      { id: 'd', weight: 0 },
    ]);
    assert.equal(createScheduler('fo').pick(d, key(1)), 1);
    assert.equal(createScheduler('ovf').pick(d, key(1)), 2);
    d.available[1] = 0;
    assert.equal(createScheduler('fo').pick(d, key(1)), 2);
    d.active[2] = 7;
    assert.equal(createScheduler('ovf').pick(d, key(1)), -1);
  });

  it('connection thresholds: a server stops taking connections at its upper threshold and resumes below the lower', function () {
    const svc = new Service(0, {
      proto: 'tcp',
      vip: '10.0.0.1',
      port: 80,
      scheduler: 'rr',
      forward: 'nat',
      laddrs: [],
      toa: false,
      synproxy: false,
      conn_timeout: 0,
      expire_quiescent: false,
      tunnel: { type: 'ipip', port: 6080 },
      servers: [
        { addr: '10.0.0.2', port: 80, weight: 1, upper_threshold: 3, lower_threshold: 2 },
        { addr: '10.0.0.3', port: 80, weight: 1, upper_threshold: 4, lower_threshold: 0 },
      ],
    });
    const d = svc.dests;
    const setConns = (i: number, n: number) => {
      d.inactive[i] = n;
      svc.checkOverload(i);
    };
    setConns(0, 2);
    assert.equal(d.usable(0), true);
    setConns(0, 3);
    assert.equal(d.usable(0), false, 'at the upper threshold');
    setConns(0, 2);
    assert.equal(d.usable(0), false, 'not below the lower threshold yet');
    setConns(0, 1);
    assert.equal(d.usable(0), true, 'below the lower threshold');
    setConns(1, 4);
    assert.equal(d.usable(1), false);
    setConns(1, 3);
    assert.equal(d.usable(1), false, '3 is not below 3/4 of 4');
    setConns(1, 2);
    assert.equal(d.usable(1), true);
    svc.sched.update(d);
    setConns(0, 3);
    assert.equal(svc.sched.pick(d, key(1)), 1, 'the scheduler skips the overloaded server');
  });

  it('every scheduler returns -1 with no usable server', function () {
    const d = servers([0, 0]);
    for (const n of SCHEDULER_NAMES) {
      const s = createScheduler(n);
      s.update(d);
      assert.equal(s.pick(d, key(5)), -1, n);
    }
  });
});

function gcdT(a: number, b: number): number {
  return b === 0 ? a : gcdT(b, a % b);
}
