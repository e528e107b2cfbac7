/**
 * Nearest-region selection (src/lb/regions.ts) in virtual time: Tailscale's rule case by case (the anchor),
 * the default rule's hysteresis, and both over a noisy series and a real shift.
 */
import { strict as assert } from 'node:assert';
import { plan, REGION_DEFAULTS, RegionSelector, type RegionsConfig, type Report } from '../../src/lb/regions.js';
import { Rng } from '../../src/timer/rng.js';

const rep = (o: Record<string, number | null>): Report => new Map(Object.entries(o));

function selector(rule: 'default' | 'tailscale', usable: (r: string) => boolean = () => true, over: Partial<RegionsConfig> = {}): RegionSelector {
  return new RegionSelector({ ...REGION_DEFAULTS, rule, ...over }, ['eu', 'us', 'ap'], usable);
}

describe('regions: the anchor (tailscale rule)', () => {
  it('first choice; a 9 ms gain does not move; 10 ms but above 2/3 does not; below 2/3 and >= 10 ms does', () => {
    const s = selector('tailscale');
    s.report(0, rep({ eu: 50, us: 80, ap: 200 }));
    assert.equal(s.home, 'eu');
    assert.equal(s.changes[0]!.from, null);
    s.report(30, rep({ eu: 50, us: 41 }));
    assert.equal(s.home, 'eu', '9 ms faster');
    s.report(60, rep({ eu: 50, us: 40 }));
    assert.equal(s.home, 'eu', '10 ms faster but 40 > 2/3 of 50');
    s.report(90, rep({ eu: 50, us: 33 }));
    assert.equal(s.home, 'us', '17 ms faster and below 2/3');
    assert.equal(s.changes.length, 2);
  });

  it('a silent home is kept while heard from in the last 120 s, then left', () => {
    const s = selector('tailscale');
    s.report(0, rep({ eu: 50, us: 80 }));
    for (const t of [30, 60, 90, 120]) {
      s.report(t, rep({ eu: null, us: 10 }));
      assert.equal(s.home, 'eu', `at ${t} s`);
    }
    s.report(150, rep({ eu: null, us: 10 }));
    assert.equal(s.home, 'us');
    assert.match(s.changes[1]!.why, /eu silent for 120 s/);
  });

  it('the winner is the best recent latency (5 min 5 s), not the current one', () => {
    const s = selector('tailscale');
    s.report(0, rep({ eu: 100, us: 20 }));
    assert.equal(s.home, 'us');
    s.report(30, rep({ eu: 100, us: 200 }));
    // us answered 20 within the window: its best is still 20, and it is the home
    assert.equal(s.home, 'us');
    s.report(60, rep({ eu: 100, us: 200 }));
    s.report(400, rep({ eu: 100, us: 200 }));
    // the 20 ms answer is out of the window: eu (100) < 2/3 of 200 and 100 ms faster
    assert.equal(s.home, 'eu');
  });

  it('nothing answers: the first region of the configuration; a home with no usable server is left at once', () => {
    const down = new Set<string>();
    const s = selector('tailscale', (r) => !down.has(r));
    s.report(0, rep({ eu: null, us: null, ap: null }));
    assert.equal(s.home, 'eu');
    assert.match(s.changes[0]!.why, /nothing answered/);
    s.report(30, rep({ eu: 50, us: 60 }));
    assert.equal(s.home, 'eu');
    down.add('eu');
    s.report(60, rep({ eu: 50, us: 60 }));
    assert.equal(s.home, 'us');
    assert.match(s.changes.at(-1)!.why, /eu has no usable server/);
    // still nothing usable answering: the fallback skips regions without a usable server
    down.add('us');
    s.report(90, rep({ eu: null, us: null, ap: null }));
    assert.equal(s.home, 'ap');
  });

  it('plans: full = every region at 0/100/200 ms; incremental = the 3 fastest and the home, 2/4/1 tries, spaced by 1.2 x latency (+50 ms from the third try)', () => {
    const cfg = REGION_DEFAULTS;
    const full = plan(cfg, ['eu', 'us', 'ap', 'sa'], true, null, null);
    assert.deepEqual(full.filter((p) => p.region === 'us').map((p) => p.delayMs), [0, 100, 200]);
    assert.equal(full.length, 12);
    const inc = plan(cfg, ['eu', 'us', 'ap', 'sa', 'af'], false, rep({ eu: 50, us: 20, ap: 100, sa: 300, af: null }), 'sa');
    const by = (r: string) => inc.filter((p) => p.region === r).map((p) => Math.round(p.delayMs));
    assert.deepEqual(by('us'), [0, 24]);
    assert.deepEqual(by('eu'), [0, 60]);
    assert.deepEqual(by('ap'), [0]);
    assert.deepEqual(by('sa'), [0, 360, 820, 1230]);
    assert.deepEqual(by('af'), []);
  });
});

describe('regions: the default rule', () => {
  it('one lost report of the home does not move it, two in a row do; a challenger needs two reports to agree', () => {
    const s = selector('default');
    s.report(0, rep({ eu: 50, us: 60 }));
    s.report(30, rep({ eu: null, us: 60 }));
    assert.equal(s.home, 'eu', 'one miss');
    s.report(60, rep({ eu: 50, us: 20 }));
    assert.equal(s.home, 'eu', 'one fast answer of us is not enough');
    s.report(90, rep({ eu: 50, us: 21 }));
    assert.equal(s.home, 'us', 'two reports agree');
    s.report(120, rep({ eu: 50, us: null }));
    s.report(150, rep({ eu: 50, us: null }));
    assert.equal(s.home, 'eu');
    assert.match(s.changes.at(-1)!.why, /us silent for 2 reports/);
  });

  it('a noisy series (equal means, +-15 ms uniform jitter, a report every 30 s for 2 h): both rules printed; the default changes home at most twice, and follows a real shift within two reports', () => {
    const run = (rule: 'default' | 'tailscale', shiftAt: number | null, seed = 20261202) => {
      const rng = new Rng(seed);
      const s = selector(rule);
      const regions = ['eu', 'us'];
      let last: Report | null = null;
      let target = '';
      for (let t = 0; t <= 7200; t += 30) {
        // the shift: the region that is not the home then drops to 25 ms
        if (t === shiftAt) target = s.home === 'eu' ? 'us' : 'eu';
        const mean = (r: string) => (r === target ? 25 : 50);
        const probes = plan(s.cfg, regions, t % 300 === 0, last, s.home);
        const report: Report = new Map();
        for (const p of probes) {
          const ms = mean(p.region) - 15 + rng.below(30001) / 1000;
          const had = report.get(p.region);
          report.set(p.region, had === undefined || had === null ? ms : Math.min(had, ms));
        }
        s.report(t, report);
        last = report;
      }
      return { s, target };
    };
    const noisy = { default: run('default', null).s, tailscale: run('tailscale', null).s };
    console.log(`      home changes on the noisy series: default ${noisy.default.changes.length - 1}, tailscale ${noisy.tailscale.changes.length - 1}`);
    assert.ok(noisy.default.changes.length - 1 <= 2, `default: ${noisy.default.changes.length - 1} changes`);
    assert.ok(noisy.tailscale.changes.length > noisy.default.changes.length, 'the anchor flaps more on the same series');
    // and over 20 more series (seeds 1-20): the default at most twice on each
    let d = 0;
    let ts = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const a = run('default', null, seed).s.changes.length - 1;
      assert.ok(a <= 2, `seed ${seed}: ${a} changes`);
      d += a;
      ts += run('tailscale', null, seed).s.changes.length - 1;
    }
    console.log(`      over 20 more such series: default ${d} changes in all, tailscale ${ts}`);
    assert.ok(ts > d);
    // a real shift at 1 h: the other region drops to 25 ms (below 2/3 of 50)
    const { s: shifted, target } = run('default', 3600);
    const move = shifted.changes.find((c) => c.at >= 3600 && c.to === target);
    if (shifted.home !== target || !move) assert.fail(`no move to ${target} after the shift: ${JSON.stringify(shifted.changes)}`);
    assert.ok(move.at <= 3600 + 30, `moved at ${move.at} s: within two reports of the shift at 3600 s`);
  });
});
