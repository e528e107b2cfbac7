/**
 * Agents' heartbeats (src/agents/heartbeat.ts, window.ts): the MAC against openssl's HMAC-SHA256, the hub's
 * refusals (malformed, unknown id, bad MAC, replay) and its endpoint learning through NAT rebinding, the
 * replay window against a model (a set of every counter seen), the agent's retry schedule.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { AgentLink, AgentRegistry, decodeReply, encodeHeartbeat, macOk } from '../../src/agents/heartbeat.js';
import { ReplayWindow, WINDOW } from '../../src/agents/window.js';

const KEY = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex');
const OTHER = Buffer.alloc(32, 7);
const NAT1 = { addr: '198.51.100.7', port: 40001 };
const NAT2 = { addr: '198.51.100.7', port: 51234 };

describe('agents: heartbeats', () => {
  it("the MAC is the first 16 bytes of openssl's HMAC-SHA256 of the datagram before it", () => {
    const b = encodeHeartbeat({ id: 'edge-1', counter: 42, timeMs: 1_700_000_000_123 }, KEY);
    const body = b.subarray(0, b.length - 16);
    const out = execFileSync('openssl', ['dgst', '-sha256', '-mac', 'HMAC', '-macopt', `hexkey:${KEY.toString('hex')}`], { input: body }).toString();
    const hex = /([0-9a-f]{64})\s*$/.exec(out.trim())![1]!;
    assert.equal(b.subarray(b.length - 16).toString('hex'), hex.slice(0, 32));
    assert.ok(macOk(b, KEY));
    assert.ok(!macOk(b, OTHER));
  });

  it('the hub answers a good heartbeat with the address it saw; refuses malformed, unknown, forged and replayed ones, counting each', () => {
    const hub = new AgentRegistry(new Map([['edge-1', KEY]]), 5000, () => ({ services: [{ vip: '10.9.9.9', port: 80 }] }));
    const hb = encodeHeartbeat({ id: 'edge-1', counter: 1, timeMs: 1000 }, KEY);
    const r = hub.handle(hb, NAT1, 5000);
    assert.ok('reply' in r);
    const rep = decodeReply(r.reply)!;
    assert.ok(macOk(r.reply, KEY));
    assert.deepEqual(rep.seen, NAT1);
    assert.deepEqual(rep.membership, { services: [{ vip: '10.9.9.9', port: 80 }] });
    assert.deepEqual(hub.agents.get('edge-1')!.endpoint, NAT1);
    assert.deepEqual(hub.handle(hb, NAT1, 5001), { drop: 'replay' });
    const forged = Buffer.from(encodeHeartbeat({ id: 'edge-1', counter: 2, timeMs: 1 }, KEY));
    forged[forged.length - 20]! ^= 1; // a bit of the time field
    assert.deepEqual(hub.handle(forged, NAT1, 5002), { drop: 'bad_mac' });
    assert.deepEqual(hub.handle(encodeHeartbeat({ id: 'edge-1', counter: 3, timeMs: 1 }, OTHER), NAT1, 5003), { drop: 'bad_mac' });
    assert.deepEqual(hub.handle(encodeHeartbeat({ id: 'edge-9', counter: 1, timeMs: 1 }, KEY), NAT1, 5004), { drop: 'unknown_id' });
    assert.deepEqual(hub.handle(Buffer.from('junk'), NAT1, 5005), { drop: 'malformed' });
    assert.deepEqual(hub.handle(hb.subarray(0, hb.length - 1), NAT1, 5006), { drop: 'malformed' });
    assert.deepEqual(hub.drops, { malformed: 2, unknown_id: 1, bad_mac: 2, replay: 1 });
  });

  it('NAT rebinding: a fresh heartbeat from a new port moves the endpoint; an old one replayed from elsewhere does not; silence takes the agent down', () => {
    const hub = new AgentRegistry(new Map([['edge-1', KEY]]), 5000);
    const old = encodeHeartbeat({ id: 'edge-1', counter: 10, timeMs: 1 }, KEY);
    assert.ok('reply' in hub.handle(old, NAT1, 1000));
    assert.ok('reply' in hub.handle(encodeHeartbeat({ id: 'edge-1', counter: 11, timeMs: 2 }, KEY), NAT2, 2000));
    assert.deepEqual(hub.agents.get('edge-1')!.endpoint, NAT2);
    assert.equal(hub.agents.get('edge-1')!.moves, 1);
    // an attacker replays the old datagram from its own address: refused, the endpoint stays
    assert.deepEqual(hub.handle(old, { addr: '203.0.113.66', port: 9 }, 2500), { drop: 'replay' });
    assert.deepEqual(hub.agents.get('edge-1')!.endpoint, NAT2);
    assert.deepEqual(hub.expire(6999), []);
    assert.deepEqual(hub.expire(7000), ['edge-1']);
    assert.equal(hub.agents.get('edge-1')!.up, false);
  });

  it('the replay window accepts each counter once, in any order within it, and nothing too old (against a model)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 6000 }), { maxLength: 400 }), (xs) => {
        const w = new ReplayWindow();
        const seen = new Set<number>();
        let top = -1;
        for (const x of xs) {
          const want = !seen.has(x) && (x > top || top - x < WINDOW - 32);
          assert.equal(w.accept(x), want, `counter ${x} (top ${top})`);
          if (want) {
            seen.add(x);
            top = Math.max(top, x);
          }
        }
      }),
      { seed: 20261203, numRuns: 300 },
    );
  });

  it('the agent beats every second, retries a lost heartbeat at 1, 3 and 7 s, is then detached and keeps trying; a reply attaches it again with its round trip', () => {
    const link = new AgentLink('edge-1', KEY);
    const hub = new AgentRegistry(new Map([['edge-1', KEY]]));
    const sent: number[] = [];
    let answer = true;
    for (let t = 0; t <= 20_000; t += 100) {
      if (t === 2500) answer = false;
      if (t === 15_000) answer = true;
      const hb = link.due(t);
      if (!hb) continue;
      sent.push(t);
      if (answer) {
        const r = hub.handle(hb, NAT1, t);
        if ('reply' in r) assert.ok(link.receive(r.reply, t + 30));
      }
      if (t === 9500) assert.equal(link.detached, true);
      if (t < 9000 && t >= 2000) assert.equal(link.detached, false, `at ${t}`);
    }
    // beats at 0, 1, 2 s; 3 s is lost; retries at 4, 6, 10 s (1, 3, 7 s after it); then every second; attached at 15 s
    assert.deepEqual(sent.filter((t) => t <= 16_000), [0, 1000, 2000, 3000, 4000, 6000, 10_000, 11_000, 12_000, 13_000, 14_000, 15_000, 16_000]);
    assert.equal(link.detached, false);
    assert.equal(link.rttMs, 30);
    // a reply with another key, or to a heartbeat never sent, is not one
    const fake = hub.handle(encodeHeartbeat({ id: 'edge-1', counter: link.counter + 999, timeMs: 1 }, KEY), NAT1, 21_000);
    assert.ok('reply' in fake);
    assert.equal(link.receive(fake.reply, 21_000), null);
    // the same reply twice is taken once
    const hb = link.due(22_000)!;
    const r = hub.handle(hb, NAT1, 22_000);
    assert.ok('reply' in r);
    assert.ok(link.receive(r.reply, 22_010));
    assert.equal(link.receive(r.reply, 22_020), null);
  });

  it('an agent restarted (a new process, its counter from the wall clock) is taken back at once; its earlier heartbeats, replayed, are not', () => {
    const hub = new AgentRegistry(new Map([['edge-1', KEY]]));
    let wall = 1_700_000_000_000_000;
    const first = new AgentLink('edge-1', KEY, () => wall);
    const old: Buffer[] = [];
    for (let t = 0; t < 5000; t += 1000) {
      wall += 1_000_000;
      const hb = first.due(t)!;
      old.push(hb);
      const r = hub.handle(hb, NAT1, t);
      assert.ok('reply' in r);
      assert.ok(first.receive(r.reply, t + 20));
    }
    // restarted 2 s later: its counters start from the clock, above the first run's
    wall += 2_000_000;
    const second = new AgentLink('edge-1', KEY, () => wall);
    const hb = second.due(0)!;
    const r = hub.handle(hb, NAT2, 7000);
    assert.ok('reply' in r, JSON.stringify(r));
    assert.deepEqual(hub.agents.get('edge-1')!.endpoint, NAT2);
    for (const b of old) assert.deepEqual(hub.handle(b, NAT1, 7100), { drop: 'replay' });
    assert.deepEqual(hub.agents.get('edge-1')!.endpoint, NAT2);
    // a clock that stands still still gives increasing counters
    const frozen = new AgentLink('edge-1', KEY, () => wall);
    assert.ok('drop' in hub.handle(frozen.due(0)!, NAT2, 7200), 'the same microsecond as the last one: a replay');
    assert.ok('reply' in hub.handle(frozen.due(1000)!, NAT2, 7300));
  });
});

describe('agents: what the hub sends on for an agent', () => {
  it('only packets from a VIP of a service the agent is a server of (no open relay)', async () => {
    const { fromOwnVip } = await import('../../src/live/hub.js');
    const { Services } = await import('../../src/service/services.js');
    const { parseConfig } = await import('../../src/config.js');
    const cfg = parseConfig(
      {
        agents: { listen: '10.0.0.1:6080', keys: { a: 'aa'.repeat(16), b: 'bb'.repeat(16) } },
        services: [
          { proto: 'tcp', vip: '10.9.9.9', port: 80, scheduler: 'rr', forward: 'tunnel', tunnel: { type: 'gue' }, servers: [{ agent: 'a', port: 80 }] },
          { proto: 'tcp', vip: '2001:db8::9', port: 80, scheduler: 'rr', forward: 'tunnel', tunnel: { type: 'gue' }, servers: [{ agent: 'b', port: 80 }] },
        ],
      },
      'test',
    );
    const sv = new Services(cfg.services);
    const v4 = (src: string) => Uint8Array.from([0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, ...src.split('.').map(Number), 10, 1, 1, 2]);
    const v6 = (last: number) => Uint8Array.from([0x60, 0, 0, 0, 0, 0, 6, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last, ...new Array<number>(16).fill(1)]);
    assert.ok(fromOwnVip(v4('10.9.9.9'), 'a', sv.list));
    assert.ok(!fromOwnVip(v4('10.9.9.8'), 'a', sv.list), 'another source');
    assert.ok(!fromOwnVip(v4('10.9.9.9'), 'b', sv.list), "another agent's VIP");
    assert.ok(fromOwnVip(v6(9), 'b', sv.list));
    assert.ok(!fromOwnVip(v6(9), 'a', sv.list));
    assert.ok(!fromOwnVip(v4('10.9.9.9').subarray(0, 19), 'a', sv.list), 'cut');
  });
});
