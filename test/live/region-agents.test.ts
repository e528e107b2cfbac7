/**
 * Nearest-region selection over agents' servers (issues 17 and 18): an agent's server has only a stand-in
 * address (0.0.0.0), so the live prober must not probe it; its agent's latest heartbeat round trip (reported
 * on the control channel) stands for it. Driven on a timeline of its own, with the network probe replaced
 * by one that fails the test.
 */
import { strict as assert } from 'node:assert';
import { parseConfig } from '../../src/config.js';
import { Services } from '../../src/service/services.js';
import { Timeline } from '../../src/timer/timeline.js';
import { LiveRegionProber } from '../../src/live/region-probe.js';

describe('nearest region over agents: their heartbeat round trips are the probes', function () {
  this.timeout(20000);

  it('the home is the region whose agent answers fastest; it moves when that agent goes down; no agent address is probed', async () => {
    const cfg = parseConfig(
      {
        agents: { listen: '10.0.0.1:6080', keys: { near: 'aa'.repeat(16), far: 'bb'.repeat(16) } },
        regions: { incremental_interval: 1, full_interval: 2 },
        services: [
          {
            proto: 'tcp',
            vip: '10.9.9.9',
            port: 80,
            scheduler: 'rr',
            forward: 'tunnel',
            tunnel: { type: 'gue' },
            region_select: 'nearest',
            servers: [
              { agent: 'far', port: 80, region: 'eu' },
              { agent: 'near', port: 80, region: 'us' },
            ],
          },
        ],
      },
      'test',
    );
    const sv = new Services(cfg.services, cfg.regions);
    const time = new Timeline();
    const rtts = new Map<string, number | null>([
      ['near', 12],
      ['far', 80],
    ]);
    const probed: string[] = [];
    const changes: string[] = [];
    new LiveRegionProber(
      () => sv.list,
      cfg.regions,
      time,
      (_s, c) => changes.push(`${c.from}->${c.to}`),
      async (addr) => {
        probed.push(addr);
        return null;
      },
      (id) => rtts.get(id) ?? null,
    );
    const s = sv.list[0]!;
    // the agents are up: their servers usable
    s.dests.healthy.fill(1);
    // the engine's time in 100 ms steps, each followed by 100 ms of real time (the probe plans' tries are timers)
    let us = 1_700_000_000 * 1e6;
    const run = async (seconds: number) => {
      for (let t = 0; t < seconds * 10; t++) {
        us += 100_000;
        time.set(Math.floor(us / 1e6), us % 1e6, 6);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await run(3);
    assert.deepEqual(probed, [], 'no stand-in address probed');
    assert.equal(s.regions!.home, 'us', JSON.stringify(changes));
    // the near agent goes down (its round trip unknown, its server unusable): the home moves
    rtts.set('near', null);
    s.dests.healthy[1] = 0;
    await run(3);
    assert.equal(s.regions!.home, 'eu', JSON.stringify(changes));
    assert.deepEqual(probed, []);
  });
});
