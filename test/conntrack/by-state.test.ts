/**
 * Conntrack.byState (connections open by protocol and state, kept on transitions) against a scan of the
 * table (gauges(): every open connection's own state, read one by one) over corpus captures in both profiles,
 * with and without load balancing: equal every few hundred packets, at the end, and zero after
 * draining.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../../src/config.js';
import { Services } from '../../src/service/services.js';
import { checkByState as check } from '../helpers/by-state.js';
import { CORPUS, REPO } from '../helpers/corpus.js';

function corpusFiles(maxBytes: number): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(pcap|pcapng|cap)(\.gz)?$/.test(e.name) && fs.statSync(p).size <= maxBytes) out.push(p);
    }
  };
  walk(CORPUS);
  return out.sort();
}

describe('connections open by state (kept on transitions)', function () {
  this.timeout(600_000);
  const files = corpusFiles(4 << 20);

  for (const profile of ['netfilter', 'dpvs'] as const) {
    it(`equal a scan of the table over ${files.length} corpus captures (${profile}), then none after draining`, async () => {
      let compared = 0;
      for (const f of files) compared += await check(f, { track: { profile, seed: 1, maxConns: 1 << 16, drain: true } }, 51);
      assert.ok(compared > files.length, `only ${compared} comparisons`);
    });
  }

  // (the synproxy's own transitions are checked in every scenario of test/integration/lb-synproxy.test.ts)
  it('equal a scan with the load balancer (examples/lb.yaml)', async () => {
    const cases: Array<[string, string]> = [['examples/lb.yaml', 'pcaps/http-get.pcap']];
    for (const [conf, cap] of cases) {
      const cfg = loadConfig(path.join(REPO, conf));
      const lb = { services: new Services(cfg.services), synproxy: { cfg: cfg.synproxy, secret: new Uint8Array(16).fill(7) } };
      const compared = await check(path.join(REPO, cap), { track: { profile: 'dpvs', seed: 1, maxConns: 1 << 16, drain: true }, lb }, 7);
      assert.ok(compared > 1, `${cap}: ${compared} comparisons`);
    }
  });
});
