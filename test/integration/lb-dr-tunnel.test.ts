/**
 * DR and tunnel forwarding over real captures, tshark as oracle: what goes to the VIP is forwarded to the
 * scheduled server (its MAC for DR; an outer IP header to it for IP-in-IP and GUE), replies are not
 * emitted (the server answers the client directly).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CORPUS, haveTool, REPO, run, tsvs } from '../helpers/corpus.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-dr-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function cfg(name: string, body: string): string {
  const p = path.join(tmp, `${name}.yaml`);
  fs.writeFileSync(p, body);
  return p;
}

async function fields(file: string, extra: string[], f: string[]): Promise<string[][]> {
  const r = await run('tshark', ['-n', '-r', file, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', ...extra, '-T', 'fields', '-E', 'separator=|', ...f.flatMap((x) => ['-e', x])]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('|'));
}

describe('load balancing, DR and tunnel modes (replay, tshark as oracle)', function () {
  this.timeout(120000);
  before(function () {
    if (!haveTool('tshark')) throw new Error('tshark is required');
  });
  const cap = path.join(REPO, 'pcaps/http-get.pcap');
  const VIP = '192.150.187.43';
  const servers = '    servers:\n      - { addr: 10.201.3.1, port: 80, mac: "02:00:00:00:03:01" }\n      - { addr: 10.201.3.2, port: 80, mac: "02:00:00:00:03:02" }\n';

  it('dr: packets to the VIP leave for the server’s MAC, unchanged otherwise; replies are not emitted', async function () {
    const out = path.join(tmp, 'dr.pcap');
    const ev = path.join(tmp, 'dr.ev');
    const r2 = await tsvs([
      'replay',
      '--json',
      '--events',
      ev,
      '--config',
      cfg('dr2', `services:\n  - proto: tcp\n    vip: ${VIP}\n    port: 80\n    scheduler: rr\n    forward: dr\n${servers}`),
      '--out',
      out,
      cap,
    ]);
    assert.equal(r2.code, 0, r2.stderr);
    const j = JSON.parse(r2.stdout);
    assert.equal(j.lb.emitted, 7);
    assert.equal(j.lb.not_emitted.direct_return, 7);
    const rows = await fields(out, [], ['eth.dst', 'ip.dst', 'tcp.dstport', 'ip.checksum.status', 'tcp.checksum.status']);
    assert.equal(rows.length, 7);
    for (const [mac, dst, port, ipsum, tcpsum] of rows) assert.deepEqual([mac, dst, port, ipsum, tcpsum], ['02:00:00:00:03:01', VIP, '80', '1', '1']);
    // DPVS's INPUT-ONLY table: the server's replies do not pass, the client's ACK establishes
    const states = fs
      .readFileSync(ev, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).state);
    assert.deepEqual(states.slice(0, 2), ['SYN_RECV', 'ESTABLISHED']);
  });

  it('dr without a server MAC is a configuration error naming the key', async function () {
    const r = await tsvs(['replay', '--config', cfg('drbad', `services:\n  - proto: tcp\n    vip: ${VIP}\n    port: 80\n    scheduler: rr\n    forward: dr\n    servers:\n      - { addr: 10.201.3.1, port: 80 }\n`), cap]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /services\[0\]\.servers\[0\]\.mac: required for dr forwarding/);
  });

  it('tunnel (IP-in-IP): an outer IPv4 header from the VIP to the server, protocol 4, checksums valid', async function () {
    const out = path.join(tmp, 'ipip.pcap');
    const r = await tsvs(['replay', '--json', '--config', cfg('ipip', `services:\n  - proto: tcp\n    vip: ${VIP}\n    port: 80\n    scheduler: wrr\n    forward: tunnel\n${servers}`), '--out', out, cap]);
    assert.equal(r.code, 0, r.stderr);
    const rows = await fields(out, [], ['ip.proto', 'ip.src', 'ip.dst', 'ip.checksum.status', 'tcp.checksum.status']);
    assert.equal(rows.length, 7);
    for (const [proto, src, dst, ipsum, tcpsum] of rows) {
      assert.equal(proto, '4,6');
      assert.equal(src!.split(',')[0], VIP);
      assert.equal(dst, `10.201.3.1,${VIP}`, 'outer to the server, inner still to the VIP');
      assert.equal(ipsum, '1,1');
      assert.equal(tcpsum, '1', 'the carried TCP segment is intact');
    }
  });

  it('tunnel (GUE): UDP to port 6080 carrying the IP packet', async function () {
    const out = path.join(tmp, 'gue.pcap');
    const r = await tsvs(['replay', '--json', '--config', cfg('gue', `services:\n  - proto: tcp\n    vip: ${VIP}\n    port: 80\n    scheduler: rr\n    forward: tunnel\n    tunnel: { type: gue }\n${servers}`), '--out', out, cap]);
    assert.equal(r.code, 0, r.stderr);
    const rows = await fields(out, ['-d', 'udp.port==6080,ip'], ['udp.dstport', 'ip.dst', 'frame.protocols', 'ip.checksum.status']);
    assert.equal(rows.length, 7);
    for (const [port, dst, protos, ipsum] of rows) {
      assert.equal(port, '6080');
      assert.equal(dst, `10.201.3.1,${VIP}`);
      assert.match(protos!, /:ip:udp:ip:tcp/);
      assert.equal(ipsum, '1,1');
    }
  });

  it('tunnel over IPv6: protocol 41 (IP-in-IP) and GUE with a valid UDP checksum', async function () {
    const v6cap = path.join(CORPUS, 'ipv6/zeek-ftp-ipv6.pcap');
    const v6vip = '2001:470:4867:99::21';
    const sv = '    servers:\n      - { addr: "2001:db8::10", port: 21 }\n';
    for (const type of ['ipip', 'gue']) {
      const out = path.join(tmp, `v6-${type}.pcap`);
      const r = await tsvs(['replay', '--json', '--config', cfg(`v6${type}`, `services:\n  - proto: tcp\n    vip: "${v6vip}"\n    port: 21\n    scheduler: rr\n    forward: tunnel\n    tunnel: { type: ${type} }\n${sv}`), '--out', out, v6cap]);
      assert.equal(r.code, 0, r.stderr);
      const rows = await fields(out, ['-d', 'udp.port==6080,ipv6'], ['ipv6.nxt', 'ipv6.dst', 'udp.checksum.status']);
      assert.ok(rows.length > 10);
      for (const [nxt, dst, udpsum] of rows) {
        assert.equal(nxt!.split(',')[0], type === 'ipip' ? '41' : '17');
        assert.equal(dst, `2001:db8::10,${v6vip}`);
        if (type === 'gue') assert.equal(udpsum, '1', 'GUE over IPv6 carries a valid UDP checksum');
      }
    }
  });
});
