/**
 * Passive health signals: the engine's own state machine reports, per load-balanced TCP connection, whether
 * its server answered (ESTABLISHED) or not (refused by RST, or no answer before the SYN_RECV timeout), and
 * the health checker counts those toward the same rise/fall streaks as its probes. Packets are built here and
 * run through the real tracker and engine, in virtual time (no probe is started).
 */
import { strict as assert } from 'node:assert';
import { type HealthConfig } from '../../src/config.js';
import { type Profile } from '../../src/conntrack/conntrack.js';
import { counterObject } from '../../src/report/records.js';
import { HealthChecker } from '../../src/service/health.js';
import { LbLab } from '../helpers/lb-lab.js';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../../src/packet/view.js';

const VIP = '10.201.2.2';
const A = '10.201.3.1';
const B = '10.201.3.2';

class Lab extends LbLab {
  readonly changes: string[] = [];
  /** what the tracker reported: server address and ok */
  readonly outcomes: string[] = [];
  readonly health: HealthChecker;

  constructor(profile: Profile, forward: 'nat' | 'fnat' | 'dr', health: Partial<HealthConfig> = {}) {
    super(profile, [
      {
        proto: 'tcp',
        vip: VIP,
        port: 80,
        scheduler: 'rr',
        forward,
        laddrs: ['10.201.9.1'],
        servers: [
          { addr: A, port: 80, mac: '02:00:00:00:03:01' },
          { addr: B, port: 80, mac: '02:00:00:00:03:02' },
        ],
      },
    ]);
    const hc = { enabled: true, interval: 2, timeout: 1, rise: 2, fall: 2, passive: true, ...health };
    this.health = new HealthChecker(() => this.services, hc, (_svc, server, up) => this.changes.push(`${server} ${up ? 'up' : 'down'}`));
    if (hc.passive) {
      this.lb.onOutcome = (si, d, ok) => {
        this.outcomes.push(`${this.services.list[si]!.cfg.servers[d]!.addr} ${ok ? 'ok' : 'failed'}`);
        this.health.passive(si, d, ok);
      };
    }
  }

  /** a client's SYN: returns the server it was scheduled to */
  syn(client: string, cport: number): string {
    const e = this.send(client, cport, VIP, 80, TCP_SYN);
    assert.ok(e >= 0, `SYN tracked (${e}): ${JSON.stringify(this.x.notEmitted)} ${JSON.stringify(Object.entries(counterObject(this.ct, this.lb)).filter(([, n]) => n > 0))}`);
    return this.services.list[0]!.cfg.servers[this.lb.serverOf(e >>> 1)]!.addr;
  }

  healthy(addr: string): boolean {
    const s = this.services.list[0]!;
    return s.dests.healthy[s.cfg.servers.findIndex((x) => x.addr === addr)] === 1;
  }

}

describe('passive health signals', function () {
  for (const profile of ['dpvs', 'netfilter'] as const) {
    it(`${profile}: refused and unanswered connections take a server out after \`fall\`; an established one is a success`, function () {
      const lab = new Lab(profile, 'nat');
      // 1: refused by RST from its server
      const s1 = lab.syn('192.0.2.1', 40001);
      lab.send(s1, 80, '192.0.2.1', 40001, TCP_RST | TCP_ACK);
      assert.deepEqual(lab.changes, [], 'one failure is below fall = 2');
      // 2: the other server completes a handshake (a success for it)
      const s2 = lab.syn('192.0.2.2', 40002);
      assert.notEqual(s2, s1, 'rr alternates');
      lab.send(s2, 80, '192.0.2.2', 40002, TCP_SYN | TCP_ACK);
      lab.send('192.0.2.2', 40002, VIP, 80, TCP_ACK);
      // 3: the first server again, which never answers: a failure when the connection expires unanswered
      assert.equal(lab.syn('192.0.2.3', 40003), s1);
      lab.wait(200);
      assert.deepEqual(lab.changes, [`${s1}:80 down`]);
      assert.deepEqual(lab.outcomes, [`${s1} failed`, `${s2} ok`, `${s1} failed`]);
      assert.equal(lab.healthy(s1), false);
      assert.equal(lab.healthy(s2), true);
      // new connections all go to the healthy server
      for (let i = 0; i < 4; i++) assert.equal(lab.syn('192.0.2.9', 41000 + i), s2);
    });
  }

  it('a spoofed SYN (the server answers, the client never acknowledges) is not a failure', function () {
    const lab = new Lab('dpvs', 'nat');
    for (let i = 0; i < 6; i++) {
      const s = lab.syn(`198.18.0.${i + 1}`, 50000 + i);
      lab.send(s, 80, `198.18.0.${i + 1}`, 50000 + i, TCP_SYN | TCP_ACK);
      lab.wait(200);
    }
    assert.deepEqual(lab.changes, []);
    assert.deepEqual(lab.outcomes, []);
    assert.ok(lab.healthy(A) && lab.healthy(B));
  });

  it('a server taken out comes back after `rise` successes (here fed as the probes would)', function () {
    const lab = new Lab('dpvs', 'fnat', { fall: 1, rise: 2 });
    const s = lab.syn('192.0.2.1', 40001);
    lab.wait(200);
    assert.deepEqual(lab.changes, [`${s}:80 down`]);
    lab.health.passive(0, s === A ? 0 : 1, true);
    assert.equal(lab.healthy(s), false, 'one success is below rise = 2');
    lab.health.passive(0, s === A ? 0 : 1, true);
    assert.deepEqual(lab.changes, [`${s}:80 down`, `${s}:80 up`]);
  });

  it('DR connections (server answers bypass the LB) and `passive: false` report nothing', function () {
    const dr = new Lab('dpvs', 'dr');
    for (let i = 0; i < 4; i++) dr.syn('192.0.2.1', 40001 + i);
    dr.wait(200);
    assert.deepEqual(dr.changes, []);
    assert.deepEqual(dr.outcomes, []);
    const off = new Lab('dpvs', 'nat', { passive: false });
    for (let i = 0; i < 4; i++) off.syn('192.0.2.1', 40001 + i);
    off.wait(200);
    assert.deepEqual(off.changes, []);
  });
});
