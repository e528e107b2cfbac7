/**
 * Draining a server with persistence (IPVS ip_vs_check_template, expire_quiescent_template): when a server's
 * weight is set to 0 at run time, new clients go elsewhere, but a client whose persistence template points
 * at it stays with it, unless the service has `expire_quiescent: true`; a server removed from the
 * configuration loses its persistent clients either way. Real tracker and engine, built packets, virtual time;
 * the weight change goes through Services.apply, as a reload or `tsvs ctl` does.
 */
import { strict as assert } from 'node:assert';
import { parseConfig } from '../../src/config.js';
import { LbLab } from '../helpers/lb-lab.js';
import { TCP_SYN } from '../../src/packet/view.js';

const VIP = '10.201.2.2';
const A = '10.201.3.1';
const B = '10.201.3.2';

const service = (expireQuiescent: boolean, servers: Array<{ addr: string; weight: number }>) => ({
  proto: 'tcp',
  vip: VIP,
  port: 80,
  scheduler: 'rr',
  forward: 'nat',
  persistence: { timeout: 300 },
  expire_quiescent: expireQuiescent,
  servers: servers.map((s) => ({ ...s, port: 80 })),
});

/** the server a new connection from client:cport was given */
function connect(l: LbLab, client: string, cport: number): string {
  const e = l.send(client, cport, VIP, 80, TCP_SYN);
  assert.ok(e >= 0, 'tracked');
  return l.services.list[0]!.cfg.servers[l.lb.serverOf(e >>> 1)]!.addr;
}

function setServers(l: LbLab, expireQuiescent: boolean, servers: Array<{ addr: string; weight: number }>): void {
  l.services.apply(parseConfig({ services: [service(expireQuiescent, servers)] }, 'test').services);
}

describe('persistence and quiescent servers (expire_quiescent)', function () {
  for (const expire of [false, true]) {
    it(`expire_quiescent ${expire}: a persistent client of a server set to weight 0 ${expire ? 'is scheduled anew' : 'stays with it'}; new clients avoid it`, function () {
      const l = new LbLab('dpvs', [service(expire, [{ addr: A, weight: 1 }, { addr: B, weight: 1 }])]);
      const first = connect(l, '192.0.2.1', 40001);
      assert.equal(first, A, 'rr starts with the first server');
      assert.equal(connect(l, '192.0.2.1', 40002), A, 'persistence');
      setServers(l, expire, [{ addr: A, weight: 0 }, { addr: B, weight: 1 }]);
      l.wait(1);
      assert.equal(connect(l, '192.0.2.1', 40003), expire ? B : A);
      assert.equal(connect(l, '192.0.2.9', 40004), B, 'a new client never gets the quiescent server');
      assert.equal(connect(l, '192.0.2.9', 40005), B);
    });
  }

  it('a server removed from the configuration loses its persistent clients even without expire_quiescent', function () {
    const l = new LbLab('dpvs', [service(false, [{ addr: A, weight: 1 }, { addr: B, weight: 1 }])]);
    assert.equal(connect(l, '192.0.2.1', 40001), A);
    setServers(l, false, [{ addr: B, weight: 1 }]);
    l.wait(1);
    assert.equal(connect(l, '192.0.2.1', 40002), B);
  });
});
