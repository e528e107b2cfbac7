/**
 * Rates (IPVS estimator: 2 s samples, EWMA weight 1/4) on a generated capture of known, constant rate:
 * 100 new UDP flows a second, one 100-byte datagram each, for 60 s; then 10 s in which only another service
 * sees traffic. The expected figures come from the traffic itself and the estimator's definition.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, TSVS, tsvs } from '../helpers/corpus.js';
import { eth, ipv4, pcapFile, udp } from '../helpers/packets.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-rate-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const VIP = '10.201.2.2';
const VIP2 = '10.201.2.3';

function capture(): string {
  const recs = [];
  const payload = new Uint8Array(72); // IP length 20 + 8 + 72 = 100 bytes
  const t0 = 1700000000;
  for (let i = 0; i < 6000; i++) {
    const src = `10.1.${(i >> 8) & 255}.${i & 255}`;
    const us = i * 10000; // 100 per second
    recs.push({ sec: t0 + Math.floor(us / 1e6), frac: us % 1e6, data: eth(0x0800, ipv4({ proto: 17, src, dst: VIP }, udp({ src, dst: VIP, sport: 40000, dport: 53 }, payload))) });
  }
  // then a trickle to the other service every 0.5 s up to t0 + 70 s
  for (let k = 1; k <= 20; k++) {
    const us = 60e6 + k * 500000;
    const src = `10.2.0.${k}`;
    recs.push({ sec: t0 + Math.floor(us / 1e6), frac: us % 1e6, data: eth(0x0800, ipv4({ proto: 17, src, dst: VIP2 }, udp({ src, dst: VIP2, sport: 40000, dport: 53 }, payload))) });
  }
  const p = path.join(tmp, 'rate.pcap');
  fs.writeFileSync(p, pcapFile(recs));
  return p;
}

describe('service and server rates (IPVS estimator)', function () {
  this.timeout(60000);

  it('a constant 100 conn/s reads 100 cps, 100 pps, 10000 B/s (50 per server under rr); after 5 silent periods 100·0.75^5', async function () {
    const cap = capture();
    const cfg = path.join(tmp, 'lb.yaml');
    fs.writeFileSync(
      cfg,
      `services:\n  - { proto: udp, vip: ${VIP}, port: 53, scheduler: rr, servers: [{ addr: 10.201.3.1, port: 53 }, { addr: 10.201.3.2, port: 53 }] }\n  - { proto: udp, vip: ${VIP2}, port: 53, scheduler: rr, servers: [{ addr: 10.201.3.9, port: 53 }] }\n`,
    );
    // stop right after the traffic: the rates have converged on the constant rate
    const head = path.join(tmp, 'head.pcap');
    fs.writeFileSync(head, fs.readFileSync(cap).subarray(0, 24 + 6000 * (16 + 114)));
    const r1 = await tsvs(['replay', '--json', '--config', cfg, head]);
    assert.equal(r1.code, 0, r1.stderr);
    const s1 = JSON.parse(r1.stdout).lb.services[0];
    // 29 full samples of the rate: 0.75^29 of the first step is still missing (75 of 320000 for bytes, scaled
    // by 2^5; 18 of 102400 for packets, scaled by 2^10, which the read-back rounding absorbs)
    const near = (got: number, want: number) => assert.ok(got <= want && got >= want * (1 - 0.75 ** 29) - 1, `${got} vs ${want}`);
    const check = (r: { cps: number; inpps: number; outpps: number; inbps: number; outbps: number }, n: number) => {
      assert.deepEqual([r.cps, r.inpps, r.outpps, r.outbps], [n, n, 0, 0]);
      near(r.inbps, 100 * n);
    };
    check(s1.rate, 100);
    for (const x of s1.servers) check(x.rate, 50);
    // with the quiet 10 s: five samples of zero, each keeping 3/4
    const snap = path.join(tmp, 'snap.json');
    const r2 = await tsvs(['replay', '--json', '--config', cfg, '--snapshot', snap, cap]);
    const s2 = JSON.parse(r2.stdout).lb.services;
    const expect = 100 * 0.75 ** 5; // 23.7
    assert.ok(Math.abs(s2[0].rate.cps - expect) <= 1, `cps ${s2[0].rate.cps}, expected about ${expect.toFixed(1)}`);
    assert.ok(Math.abs(s2[0].rate.inbps - 100 * expect) <= 100, `inbps ${s2[0].rate.inbps}`);
    assert.ok(s2[1].rate.cps >= 1 && s2[1].rate.cps <= 2, `the trickle service: ${s2[1].rate.cps} (2 conn/s for 10 s)`);
    // ctstat -l --rate prints them in ipvsadm's layout
    const t = await run(path.join(path.dirname(TSVS), 'ctstat'), ['-l', '--rate', '--snapshot', snap]);
    assert.equal(t.code, 0, t.stderr);
    const lines = t.stdout.trim().split('\n');
    assert.equal(lines[0], 'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS');
    assert.match(lines[2]!, new RegExp(`^UDP  ${VIP}:53 +${s2[0].rate.cps} +${s2[0].rate.inpps} +0 +${s2[0].rate.inbps} +0$`));
  });
});
