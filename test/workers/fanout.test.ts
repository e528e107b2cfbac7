/**
 * The dispatch rule as a BPF program (src/workers/fanout.ts) against the replay's dispatcher (dispatch.ts)
 * as the oracle: every packet of a set of corpus captures, run through the program by tsvs's BPF interpreter
 * (the kernel's semantics: a load past the packet ends with 0), must name the worker the dispatcher names —
 * for a rule with VIPs, NAT servers and FNAT local addresses taken from each capture's own busiest addresses
 * (so the local-port and one-side rules decide many packets), and for `tuple` mode. Packets the program does
 * not claim to decode as the dispatcher does are left out and counted: not decoded cleanly (the dispatcher
 * spreads those round-robin), VLAN-tagged frames (the kernel hands a fanout program the frame with its tag
 * taken off).
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { readCapture } from '../../src/capture/reader.js';
import { Bpf } from '../../src/capture/bpf.js';
import { parseConfig } from '../../src/config.js';
import { decode } from '../../src/packet/decode.js';
import { PacketView } from '../../src/packet/view.js';
import { formatAddr } from '../../src/packet/bytes.js';
import { Services } from '../../src/service/services.js';
import { Dispatcher, type DispatchMode } from '../../src/workers/dispatch.js';
import { fanoutProgram } from '../../src/workers/fanout.js';
import { slotTable } from '../../src/workers/layout.js';
import { CORPUS, REPO } from '../helpers/corpus.js';
import { eth, icmp, ipv4, ipv6, tcp, udp } from '../helpers/packets.js';

interface Pkt {
  b: Uint8Array;
  lt: number;
  wire: number;
}

async function packets(file: string): Promise<Pkt[]> {
  const out: Pkt[] = [];
  await readCapture(file, (r) => {
    out.push({ b: Uint8Array.from(r.buf.subarray(r.off, r.off + r.caplen)), lt: r.linktype, wire: r.wirelen });
  });
  return out;
}

/** services whose VIP, NAT server and FNAT local address are the capture's busiest addresses */
function servicesFor(pkts: Pkt[], persistence: boolean): Services {
  const v = new PacketView();
  const count = new Map<string, { n: number; v6: boolean; port: number; proto: number }>();
  for (const p of pkts) {
    decode(p.b, 0, p.b.length, p.wire, p.lt, v);
    if (v.status !== 0 || v.l3Off < 0) continue;
    for (const [a, port] of [
      [v.dst, v.dport],
      [v.src, v.sport],
    ] as const) {
      const k = formatAddr(a, v.ipVersion === 6 ? 6 : 4);
      const c = count.get(k) ?? { n: 0, v6: v.ipVersion === 6, port, proto: v.proto };
      c.n++;
      count.set(k, c);
    }
  }
  const top = [...count.entries()].sort((a, b) => b[1].n - a[1].n);
  const services: unknown[] = [];
  for (const v6 of [false, true]) {
    const mine = top.filter(([, c]) => c.v6 === v6).slice(0, 3);
    if (mine.length < 3) continue;
    const [vip, natrs, laddr] = mine.map(([a]) => a);
    services.push({ proto: 'tcp', vip, port: 80, scheduler: 'rr', forward: 'nat', servers: [{ addr: natrs, port: 80 }], ...(persistence ? { persistence: { timeout: 60, netmask: v6 ? 24 : 24 } } : {}) });
    services.push({ proto: 'udp', vip: mine[0]![0], port: 53, scheduler: 'rr', forward: 'fnat', laddrs: [laddr], servers: [{ addr: natrs, port: 53 }] });
  }
  const cfg = parseConfig({ services }, 'test');
  return new Services(cfg.services, cfg.regions);
}

const FILES = [
  ...['zeek-communityid-icmp.pcap', 'zeek-communityid-icmp6.pcap', 'zeek-icmp-destunreach-ip.pcap', 'zeek-icmp-destunreach-no-context.pcap', 'zeek-icmp-destunreach-udp.pcap', 'zeek-icmp-timeexceeded.pcap', 'zeek-icmp6-destunreach-ip6ext-udp.pcap', 'zeek-icmp6-destunreach-no-context.pcap', 'zeek-icmp6-paramprob.pcap', 'zeek-icmp6-timeexceeded.pcap', 'zeek-icmp6-toobig.pcap', 'zeek-icmp6-ping.pcap', 'dpkt-dns_icmp.pcap', 'zeek-5-pings.pcap'].map((f) => path.join(CORPUS, 'icmp', f)),
  ...['mixed/zeek-wikipedia.pcap', 'mixed/ndpi-gnutella.pcap', 'fragments/stopddos-amp.dns.RRSIG.fragmented.pcap', 'fragments/zeek-tcp-reassembly.pcap', 'rawip/ndpi-ocs.pcap', 'ipv6/arkime-v6.pcap', 'vlan/zeek-mixed-vlan-mpls.pcap'].map((f) => path.join(CORPUS, f)),
  path.join(REPO, 'pcaps/http-dns.pcap'),
  path.join(REPO, 'pcaps/ftp-ipv6.pcap'),
];

describe('fanout: the dispatch rule as a BPF program for the kernel', function () {
  this.timeout(120000);

  for (const [mode, lanes, share, persistence] of [
    ['service', 2, 0.5, false],
    ['service', 3, 1 / 6, true],
    ['tuple', 4, 0.25, false],
  ] as Array<[DispatchMode, number, number, boolean]>) {
    it(`${mode}, ${lanes} workers${persistence ? ', persistence /24' : ''}: every packet of ${FILES.length} captures goes where the replay's dispatcher sends it`, async function () {
      const seen = { compared: 0, icmpErrors: 0, v6: 0, v6ext: 0, fragments: 0, raw: 0, local: 0, side: 0, left: { decode: 0, vlan: 0 } };
      const v = new PacketView();
      for (const file of FILES) {
        const pkts = await packets(file);
        const services = servicesFor(pkts, persistence);
        const d = new Dispatcher(slotTable(lanes, share), services, mode);
        const rule = d.rule();
        const progs = new Map<number, Bpf>();
        for (const p of pkts) {
          if (![1, 12, 14, 101, 228, 229].includes(p.lt)) continue;
          decode(p.b, 0, p.b.length, p.wire, p.lt, v);
          if (v.status !== 0 || v.l3Off < 0) {
            seen.left.decode++;
            continue;
          }
          if (p.lt === 1 && v.l3Off !== 14) {
            seen.left.vlan++;
            continue;
          }
          const q = v.inner;
          if (v.icmpIsError && q.valid && q.ipVersion === 6 && q.l4Off - q.l3Off !== 40) seen.v6ext++;
          let prog = progs.get(p.lt);
          if (!prog) progs.set(p.lt, (prog = new Bpf(fanoutProgram(rule, p.lt))));
          const want = d.workerOf(p.b, 0, p.b.length, p.wire, p.lt);
          const got = prog.run(p.b, 0, p.b.length, p.wire) % lanes;
          assert.equal(got, want, `${path.basename(file)}: packet ${seen.compared} (${formatAddr(v.src, v.ipVersion === 6 ? 6 : 4)} -> ${formatAddr(v.dst, v.ipVersion === 6 ? 6 : 4)} proto ${v.proto})`);
          seen.compared++;
          if (v.icmpIsError) seen.icmpErrors++;
          if (v.ipVersion === 6) seen.v6++;
          if (v.ipVersion === 6 && v.ipHdrLen !== 40) seen.v6ext++;
          if (v.isFragment) seen.fragments++;
          if (p.lt !== 1) seen.raw++;
          const roles = (a: Uint32Array) => rule.roles.find((r) => r.v6 === (v.ipVersion === 6) && r.words.every((w, i) => w === a[i]))?.role ?? 0;
          const rs = roles(v.src);
          const rd = roles(v.dst);
          if ((rs | rd) & 1) seen.local++;
          else if (((rs ^ rd) & 2) !== 0) seen.side++;
        }
      }
      console.log(`      ${JSON.stringify(seen)}`);
      // the rules were exercised: ICMP errors by their quotes, IPv6, and (service) the local-port and one-side rules
      assert.ok(seen.compared > 9000 && seen.icmpErrors >= 8 && seen.v6 >= 50 && seen.fragments >= 100 && seen.raw >= 100, JSON.stringify(seen));
      if (mode === 'service') assert.ok(seen.local >= 20 && seen.side >= 100, JSON.stringify(seen));
    });
  }

  it('ICMP errors quoting a whole datagram, a first fragment, a later fragment, a truncated header: as the dispatcher', function () {
    // (the corpus has no error quoting a later fragment: the dispatcher goes by the error's own addresses
    // then, and a first version of the program went by the quote's)
    const cfg = parseConfig({ services: [{ proto: 'udp', vip: '10.9.9.9', port: 53, scheduler: 'rr', forward: 'nat', servers: [{ addr: '10.8.0.1', port: 53 }] }] }, 'test');
    for (const mode of ['service', 'tuple'] as const) {
      const d = new Dispatcher(slotTable(4, 0.25), new Services(cfg.services, cfg.regions), mode);
      const prog = new Bpf(fanoutProgram(d.rule(), 1));
      let differ = 0;
      for (let i = 0; i < 200; i++) {
        const client = `10.${i % 7}.${i % 13}.${(i % 250) + 1}`;
        const dg = udp({ src: '10.9.9.9', dst: client, sport: 53, dport: 1000 + i }, new Uint8Array(8));
        const quotes = [
          ipv4({ src: '10.9.9.9', dst: client, proto: 17 }, dg),
          ipv4({ src: '10.9.9.9', dst: client, proto: 17, mf: true }, dg),
          ipv4({ src: '10.9.9.9', dst: client, proto: 17, fragOffset: 8 * (1 + (i % 5)) }, dg.subarray(0, 8)),
          ipv4({ src: '10.9.9.9', dst: client, proto: 17 }, dg).subarray(0, 24),
        ];
        for (const q of quotes) {
          const f = eth(0x0800, ipv4({ src: `192.0.2.${(i % 200) + 1}`, dst: '10.9.9.9', proto: 1 }, icmp({ src: `192.0.2.${(i % 200) + 1}`, dst: '10.9.9.9', type: 3, code: 3 }, q)));
          const want = d.workerOf(f, 0, f.length, f.length, 1);
          assert.equal(prog.run(f, 0, f.length, f.length) % 4, want, `${mode}: quote ${quotes.indexOf(q)} of ${client}`);
          // (the later fragment's worker is the error's own addresses': mostly not the quote's)
          if (quotes.indexOf(q) === 2 && want !== d.workerOf(eth(0x0800, quotes[0]!), 0, 14 + quotes[0]!.length, 14 + quotes[0]!.length, 1)) differ++;
        }
      }
      assert.ok(differ > 50, `${mode}: the later fragments went elsewhere than their datagrams ${differ} times`);
    }
  });

  it('IPv6 extension headers (hop-by-hop, routing, destination options, fragments first and later, AH, 8 in a row), outside and in an ICMPv6 error\'s quote (whole or cut short): the protocol and ports after them, as the dispatcher', function () {
    const cfg = parseConfig(
      {
        services: [
          { proto: 'tcp', vip: '2001:db8:9::9', port: 80, scheduler: 'rr', forward: 'nat', servers: [{ addr: '2001:db8:8::1', port: 80 }] },
          { proto: 'udp', vip: '2001:db8:9::9', port: 53, scheduler: 'rr', forward: 'fnat', laddrs: ['2001:db8:7::1'], servers: [{ addr: '2001:db8:8::2', port: 53 }] },
        ],
      },
      'test',
    );
    const std = (type: number, words = 1) => ({ type, body: new Uint8Array(8 * words - 2) });
    const frag = (offset: number, more: boolean) => {
      const body = new Uint8Array(6);
      body[0] = offset >> 8;
      body[1] = (offset & 0xf8) | (more ? 1 : 0);
      return { type: 44, body };
    };
    const ah = { type: 51, body: new Uint8Array(10) };
    const chains = [[std(0)], [std(0), std(60, 2)], [std(43)], [frag(0, true)], [frag(8, true)], [frag(64, false)], [std(0), frag(0, true)], [std(60), frag(1208, true)], [ah], [std(0), ah, std(60)], Array.from({ length: 8 }, () => std(60))];
    for (const mode of ['service', 'tuple'] as const) {
      const d = new Dispatcher(slotTable(4, 0.25), new Services(cfg.services, cfg.regions), mode);
      const prog = new Bpf(fanoutProgram(d.rule(), 1));
      const spread = new Set<number>();
      let n = 0;
      let quoted = 0;
      for (let i = 0; i < 120; i++) {
        const client = `2001:db8:${(i % 9) + 1}:${i % 5}::${i + 1}`;
        const sport = 1024 + 37 * i;
        const bodies: Array<[string, string, number, Uint8Array]> = [
          [client, '2001:db8:9::9', 6, tcp({ src: client, dst: '2001:db8:9::9', v6: true, sport, dport: 80 })],
          [client, '2001:db8:9::9', 17, udp({ src: client, dst: '2001:db8:9::9', v6: true, sport, dport: 53 })],
          ['2001:db8:8::2', '2001:db8:7::1', 17, udp({ src: '2001:db8:8::2', dst: '2001:db8:7::1', v6: true, sport: 53, dport: sport })],
          ['2001:db8:8::1', client, 6, tcp({ src: '2001:db8:8::1', dst: client, v6: true, sport: 80, dport: sport })],
          [client, '2001:db8:9::9', 58, icmp({ src: client, dst: '2001:db8:9::9', v6: true, type: 128, rest: (i << 16) | 1 })],
        ];
        for (const chain of chains) {
          for (const [src, dst, nh, l4] of bodies) {
            const pkt = ipv6({ src, dst, nh, ext: chain }, l4);
            const f = eth(0x86dd, pkt);
            const v = new PacketView();
            decode(f, 0, f.length, f.length, 1, v);
            assert.equal(v.status, 0, `${JSON.stringify(chain.map((e) => e.type))}: decodes`);
            const want = d.workerOf(f, 0, f.length, f.length, 1);
            assert.equal(prog.run(f, 0, f.length, f.length) % 4, want, `${mode}: ${src} -> ${dst} proto ${nh} after ${JSON.stringify(chain.map((e) => e.type))}`);
            spread.add(want);
            n++;
            // the same packet quoted by an ICMPv6 error (destination unreachable) from a router, whole or cut
            // short (the quote's headers and its L4 header's first 8 bytes must be inside the error)
            for (const cut of [pkt.length, pkt.length - 4, 40 + (i % 24)]) {
              const err = eth(0x86dd, ipv6({ src: '2001:db8:ff::1', dst: src, nh: 58 }, icmp({ src: '2001:db8:ff::1', dst: src, v6: true, type: 1, code: 3 }, pkt.subarray(0, cut))));
              const w = d.workerOf(err, 0, err.length, err.length, 1);
              assert.equal(prog.run(err, 0, err.length, err.length) % 4, w, `${mode}: an error quoting ${src} -> ${dst} proto ${nh} after ${JSON.stringify(chain.map((e) => e.type))}, cut at ${cut}`);
              quoted++;
            }
          }
        }
      }
      assert.equal(n, 120 * chains.length * 5);
      assert.equal(quoted, 3 * n);
      assert.equal(spread.size, 4, `${mode}: every worker named`);
    }
  });

  it('a program fits the kernel: within 4096 instructions with many role addresses, and refused for a link type it cannot read', function () {
    const services: unknown[] = [];
    for (let i = 0; i < 40; i++) {
      services.push({ proto: 'tcp', vip: `10.1.${i}.1`, port: 80, scheduler: 'rr', forward: 'fnat', laddrs: [`10.2.${i}.1`], servers: [{ addr: `10.3.${i}.1`, port: 80 }] });
      services.push({ proto: 'tcp', vip: `2001:db8:1::${i + 1}`, port: 80, scheduler: 'rr', forward: 'nat', servers: [{ addr: `2001:db8:3::${i + 1}`, port: 80 }] });
    }
    const cfg = parseConfig({ services }, 'test');
    const d = new Dispatcher(slotTable(8, 1 / 8), new Services(cfg.services, cfg.regions), 'service');
    const prog = fanoutProgram(d.rule(), 1);
    assert.ok(prog.length / 4 <= 4096, `${prog.length / 4} instructions`);
    assert.throws(() => fanoutProgram(d.rule(), 113), /link type 113 is not Ethernet or raw IP/);
  });
});
