/**
 * A service's conn_timeout (DPVS dp_vs_conn_set_timeout): when non-zero it is the timeout of its ESTABLISHED
 * TCP connections and of its UDP connections; other TCP states keep the profile's timeouts, and services
 * without one keep the profile's everywhere. Packets built here, real tracker and engine, virtual time.
 */
import { strict as assert } from 'node:assert';
import { D_ESTABLISHED, D_SYN_RECV, DPVS_TCP_TIMEOUTS, N_ESTABLISHED, N_SYN_SENT, NF_TCP_TIMEOUTS } from '../../src/proto/tcp.js';
import { DPVS_UDP_TIMEOUTS, NF_UDP_UNREPLIED, U_ONEWAY } from '../../src/proto/udp.js';
import { LbLab } from '../helpers/lb-lab.js';
import { TCP_ACK, TCP_SYN } from '../../src/packet/view.js';
import type { Profile } from '../../src/conntrack/conntrack.js';

const SERVER = '10.201.3.1';
const service = (proto: string, vip: string, connTimeout: number) => ({
  proto,
  vip,
  port: 80,
  scheduler: 'rr',
  forward: 'nat',
  conn_timeout: connTimeout,
  servers: [{ addr: SERVER, port: 80 }],
});

function lab(profile: Profile): LbLab {
  return new LbLab(profile, [service('tcp', '10.201.2.1', 5), service('tcp', '10.201.2.2', 0), service('udp', '10.201.2.1', 7), service('udp', '10.201.2.2', 0)]);
}

/** a NAT connection through the handshake (the server's SYN-ACK from its own address); returns its handle */
function established(l: LbLab, vip: string, cport: number): number {
  const e = l.send('192.0.2.1', cport, vip, 80, TCP_SYN);
  assert.ok(e >= 0);
  l.send(SERVER, 80, '192.0.2.1', cport, TCP_SYN | TCP_ACK);
  l.send('192.0.2.1', cport, vip, 80, TCP_ACK);
  return e >>> 1;
}

describe('service conn_timeout', function () {
  for (const profile of ['dpvs', 'netfilter'] as const) {
    const est = profile === 'dpvs' ? D_ESTABLISHED : N_ESTABLISHED;
    const estDefault = (profile === 'dpvs' ? DPVS_TCP_TIMEOUTS : NF_TCP_TIMEOUTS)[est]!;
    it(`${profile}: an ESTABLISHED connection of a service with conn_timeout 5 expires after 5 s, one without keeps the profile's ${estDefault} s`, function () {
      const l = lab(profile);
      const a = established(l, '10.201.2.1', 40001);
      const b = established(l, '10.201.2.2', 40002);
      assert.equal(l.ct.stateOf(a), est);
      assert.equal(l.ct.timeoutOf(a), 5);
      assert.equal(l.ct.remaining(a), 5);
      assert.equal(l.ct.timeoutOf(b), estDefault);
      l.wait(4);
      l.send('192.0.2.1', 40001, '10.201.2.1', 80, TCP_ACK); // traffic renews it: 5 s from now
      l.wait(4);
      assert.ok(l.ct.table.isUsed(a), 'renewed by the packet 4 s ago');
      l.wait(2);
      assert.ok(!l.ct.table.isUsed(a), 'expired 5 s after its last packet');
      assert.ok(l.ct.table.isUsed(b));
      assert.equal(l.ct.remaining(b), estDefault - 10);
    });

    it(`${profile}: before ESTABLISHED the profile's timeouts apply`, function () {
      const l = lab(profile);
      const e = l.send('192.0.2.1', 40003, '10.201.2.1', 80, TCP_SYN);
      const c = e >>> 1;
      const st = l.ct.stateOf(c);
      assert.equal(st, profile === 'dpvs' ? D_SYN_RECV : N_SYN_SENT);
      assert.equal(l.ct.timeoutOf(c), (profile === 'dpvs' ? DPVS_TCP_TIMEOUTS : NF_TCP_TIMEOUTS)[st]);
    });

    it(`${profile}: UDP connections of a service with conn_timeout 7 expire after 7 s`, function () {
      const l = lab(profile);
      const u = l.send('192.0.2.1', 5353, '10.201.2.1', 80, -1) >>> 1;
      const v = l.send('192.0.2.1', 5354, '10.201.2.2', 80, -1) >>> 1;
      assert.equal(l.ct.timeoutOf(u), 7);
      assert.equal(l.ct.timeoutOf(v), profile === 'dpvs' ? DPVS_UDP_TIMEOUTS[U_ONEWAY] : NF_UDP_UNREPLIED);
      l.wait(6);
      assert.ok(l.ct.table.isUsed(u));
      l.wait(2);
      assert.ok(!l.ct.table.isUsed(u), 'expired after 7 s');
      assert.ok(l.ct.table.isUsed(v));
    });
  }
});
