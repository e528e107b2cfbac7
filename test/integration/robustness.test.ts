/**
 * Regressions of the defects found by fuzzing and flooding (issue 15), each against an independent oracle
 * where there is one (tshark reading what the LB emitted).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CORPUS, run, tsvs } from '../helpers/corpus.js';
import { PacketRecord } from '../../src/capture/record.js';
import { parseConfig } from '../../src/config.js';
import { Tracker } from '../../src/conntrack/tracker.js';
import { Engine } from '../../src/engine.js';
import { decode } from '../../src/packet/decode.js';
import { PacketView } from '../../src/packet/view.js';
import { Services } from '../../src/service/services.js';
import { replaySecret } from '../../src/synproxy/synproxy.js';
import { eth, ipv4, ipv6, tcp } from '../helpers/packets.js';

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

  it('the synproxy never writes beyond the captured bytes: SYNs cut by the snap length (editcap -s 60) are not answered, the file reads to its end', async function () {
    // zeek-http-get.pcap's SYN has 20 bytes of options: cut at 60 bytes, its SYN-ACK used to be built over the
    // next record's header ("corrupt record header")
    const cut = path.join(tmp, 'cut60.pcap');
    const e = await run('editcap', ['-F', 'pcap', '-s', '60', path.join(CORPUS, 'tcp/zeek-http-get.pcap'), cut]);
    assert.equal(e.code, 0, e.stderr);
    const cfg = file('sp-cut.yaml', 'services:\n  - { proto: tcp, vip: 192.150.187.43, port: 80, scheduler: rr, forward: nat, synproxy: true, servers: [{ addr: 10.0.0.1, port: 80 }] }\n');
    const out = path.join(tmp, 'sp-cut.out.pcap');
    const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, cut]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    const info = await run('capinfos', ['-M', '-c', cut]);
    assert.equal(j.packets, Number(/Number of packets:\s+(\d+)/.exec(info.stdout)![1]));
    assert.equal(j.lb.not_emitted.truncated, 1, JSON.stringify(j.lb));
    assert.equal(j.lb.synproxy.SYNPROXY_SYN_CNT, 0);
  });

  it('in process: a SYN whose options end where the buffer ends is not answered (a SYN-ACK used to be built beyond the captured bytes), the whole SYN is', function () {
    const cfg = parseConfig({ services: [{ proto: 'tcp', vip: '10.9.9.9', port: 80, scheduler: 'rr', synproxy: true, servers: [{ addr: '10.0.0.1', port: 80 }] }] }, 'test');
    const tracker = new Tracker({ profile: 'dpvs', seed: 1, maxConns: 64 });
    const sent: number[] = [];
    const engine = new Engine(tracker, { services: new Services(cfg.services), synproxy: { cfg: cfg.synproxy, secret: replaySecret(undefined, 1) } }, { send: (_r, _b, _o, len) => (sent.push(len), null) });
    const opts = Uint8Array.from([2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]);
    const syn = eth(0x0800, ipv4({ proto: 6, src: '192.0.2.1', dst: '10.9.9.9' }, tcp({ src: '192.0.2.1', dst: '10.9.9.9', sport: 5555, dport: 80, flags: 0x02, options: opts })));
    const view = new PacketView();
    const rec = new PacketRecord();
    for (const caplen of [60, syn.length]) {
      const buf = syn.slice(0, caplen); // nothing beyond the captured bytes to write into
      Object.assign(rec, { buf, off: 0, caplen, wirelen: syn.length, linktype: 1, tsSec: 1_700_000_000, tsFrac: 0, digits: 6 });
      decode(buf, 0, caplen, syn.length, 1, view);
      tracker.setTime(rec.tsSec, 0, 6);
      engine.packet(rec, view, false);
    }
    assert.deepEqual(engine.notEmitted, { truncated: 1 });
    assert.deepEqual(sent, [syn.length], 'the whole SYN is answered');
  });

  it('in process: a valid cookie ACK whose IPv6 extension headers leave no room for the server SYN is dropped, not a RangeError', function () {
    const cfg = parseConfig({ services: [{ proto: 'tcp', vip: '2001:db8::9', port: 80, scheduler: 'rr', synproxy: true, servers: [{ addr: '2001:db8::10', port: 80 }] }] }, 'test');
    const tracker = new Tracker({ profile: 'dpvs', seed: 1, maxConns: 64 });
    const sent: Uint8Array[] = [];
    const engine = new Engine(tracker, { services: new Services(cfg.services), synproxy: { cfg: cfg.synproxy, secret: replaySecret(undefined, 1) } }, { send: (_r, b, o, len) => (sent.push(b.slice(o, o + len)), null) });
    const view = new PacketView();
    const rec = new PacketRecord();
    const pkt = (frame: Uint8Array) => {
      Object.assign(rec, { buf: frame, off: 0, caplen: frame.length, wirelen: frame.length, linktype: 1, tsSec: 1_700_000_000, tsFrac: 0, digits: 6 });
      decode(frame, 0, frame.length, frame.length, 1, view);
      tracker.setTime(rec.tsSec, 0, 6);
      engine.packet(rec, view, false);
    };
    const a = { v6: true, src: '2001:db8::1', dst: '2001:db8::9', sport: 5555, dport: 80 };
    pkt(eth(0x86dd, ipv6({ nh: 6, src: a.src, dst: a.dst }, tcp({ ...a, flags: 0x02, seq: 100 }))));
    assert.equal(sent.length, 1, 'the SYN was answered');
    const cookie = new DataView(sent[0]!.buffer).getUint32(14 + 40 + 4);
    const ext = Array.from({ length: 8 }, () => ({ type: 60, body: new Uint8Array(62) })); // 8 x 64 bytes of destination options
    pkt(eth(0x86dd, ipv6({ nh: 6, src: a.src, dst: a.dst, ext }, tcp({ ...a, flags: 0x10, seq: 101, ack: (cookie + 1) >>> 0 }))));
    assert.equal(tracker.table.count, 0, 'no connection opened');
    assert.equal(engine.notEmitted.synproxy, 1);
  });
});

