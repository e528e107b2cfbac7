/**
 * Regressions of the defects found by fuzzing and flooding (issue 15), each against an independent oracle
 * where there is one (tshark reading what the LB emitted).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CORPUS, run, tsvs } from '../helpers/corpus.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-robust-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** the outer IPv4/UDP header of every packet (the service's L2TP datagrams carry PPP, and IP inside), checksums validated (a UDP checksum may be absent: 3) */
async function outerUdp(cap: string): Promise<Array<{ proto: string; src: string; dst: string; sport: number; dport: number; ipOk: boolean; udpOk: boolean }>> {
  const fields = ['ip.proto', 'ip.src', 'ip.dst', 'udp.srcport', 'udp.dstport', 'ip.checksum.status', 'udp.checksum.status'];
  const r = await run('tshark', ['-n', '-r', cap, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-E', 'occurrence=f', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => l.split('|'))
    .map((f) => ({ proto: f[0]!, src: f[1]!, dst: f[2]!, sport: Number(f[3]), dport: Number(f[4]), ipOk: f[5] === '1', udpOk: f[6] === '1' || f[6] === '3' }));
}

function file(name: string, text: string | Uint8Array): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
}

describe('robustness regressions (issue 15)', function () {
  this.timeout(120000);

  it('one ICMP error does not break NAT: the L2TP/UDP service of dpkt-nb6-http.pcap stays translated after the ICMPv6 error', async function () {
    // the capture has an ICMPv6 error before the L2TP traffic to 95.136.242.99:1701; once it passed, every later
    // packet used to be handled as an ICMP error: sent untranslated, and TCP to port 80 (no service) emitted
    const cfg = file('l2tp.yaml', 'services:\n  - { proto: udp, vip: 95.136.242.99, port: 1701, scheduler: rr, forward: nat, servers: [{ addr: 10.0.0.1, port: 1701 }] }\n');
    const out = path.join(tmp, 'l2tp.pcap');
    const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, path.join(CORPUS, 'ipv6/dpkt-nb6-http.pcap')]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    const pkts = await outerUdp(out);
    assert.equal(pkts.length, j.lb.emitted);
    const s = j.lb.services[0];
    assert.equal(pkts.length, s.in_pkts + s.out_pkts, 'every packet of the service and nothing else');
    let inbound = 0;
    for (const p of pkts) {
      assert.ok(p.proto === '17' && p.ipOk && p.udpOk, `not UDP, or a bad checksum: ${JSON.stringify(p)}`);
      if (p.dst === '10.0.0.1') {
        assert.equal(p.dport, 1701);
        inbound++;
      } else assert.deepEqual([p.src, p.sport], ['95.136.242.99', 1701], `outbound from the VIP: ${JSON.stringify(p)}`);
    }
    assert.equal(inbound, s.in_pkts);
    assert.ok(inbound > 0 && s.out_pkts > 0);
  });
});
