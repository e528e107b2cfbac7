/**
 * Connection tracking (netfilter profile) over the whole ../shared/pcaps corpus, against two independent
 * oracles:
 * - tshark's TCP/UDP conversation counts (facts.json): conns.total must equal them wherever the capture has
 *   no idle gap longer than the timeout in force; every exception is listed with tsvs's value and why.
 * - Zeek conn.log baselines: the connection count and per-direction packet counts of each connection.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ConnRecord } from '../../src/report/records.js';
import { replayFile, type ReplaySummary } from '../../src/replay.js';
import { CORPUS, loadFacts } from '../helpers/corpus.js';

interface Exception {
  tcp?: number;
  udp?: number;
  why: string;
}

const FIRST_PACKET_REFUSED = 'flows whose first packet in the capture is a SYN/ACK, FIN or RST: nf_conntrack tcp_new() opens no connection for them (counted as invalid)';
const NO_REASSEMBLY = 'tsvs does not reassemble IP fragments; tshark does (facts computed with defragmentation on)';
const IDLE_GAP = 'idle gaps longer than the timeout in force: a flow that resumes after its connection expired is a new connection (see the expired counter)';

/** tsvs's TCP/UDP connection counts where they differ from tshark's conversations, and why */
const CONV_EXCEPTIONS: Record<string, Exception> = {
  'fragments/stopddos-amp.dns.RRSIG.fragmented.pcap': { tcp: 255, udp: 84, why: `${NO_REASSEMBLY}; ${FIRST_PACKET_REFUSED}; plus a GRE tunnel tshark decapsulates` },
  'fragments/suricata-frag-eth-vlan-ip-tcp-syn.pcap': { tcp: 0, why: `the SYN's TCP header is split across fragments: ${NO_REASSEMBLY}` },
  'fragments/suricata-frag-ip-tcp-syn.pcap': { tcp: 0, why: `the SYN's TCP header is split across fragments: ${NO_REASSEMBLY}` },
  'fragments/zeek-fragmented-2.pcap': { udp: 1, why: 'overlapping fragments: tshark fails to reassemble and records no UDP conversation; tsvs tracks the first fragment' },
  'fragments/zeek-fragmented-3.pcap': { tcp: 1, why: 'tshark records no conversation for the fragmented segment it cannot reassemble; tsvs tracks the first fragment' },
  'fragments/zeek-fragmented-4.pcap': { tcp: 1, why: `tiny fragments split a TCP header (${NO_REASSEMBLY}), and ${FIRST_PACKET_REFUSED}` },
  'ipv6/dpkt-nb6-http.pcap': { tcp: 2, why: 'the third TCP conversation is inside PPPoE/UDP/L2TP/PPP/IPv6: tshark decapsulates it, tsvs tracks the outer UDP flow' },
  'ipv6/tcpdump-bigtcp-ipv6.pcap': { tcp: 1, why: 'BIG TCP (IPv6 payload length 0): tshark calls it malformed and records no conversation; tsvs takes the length from the capture' },
  'malformed/suricata-ipv4-truncated.pcap': { udp: 0, why: 'IPv4 total length beyond the frame on the wire: dropped (ipv4_bad_total_length), as Linux does' },
  'malformed/tcpdump-timestamp_invalid_micro.pcap': { tcp: 2, why: `invalid sub-second timestamps (>= 1e6 µs) move time forward by more than the SYN_SENT timeout: ${IDLE_GAP}` },
  'mixed/ndpi-1kxun.pcap': { tcp: 96, udp: 101, why: `${IDLE_GAP}; ${FIRST_PACKET_REFUSED}` },
  'mixed/ndpi-gnutella.pcap': { tcp: 151, udp: 1094, why: `${IDLE_GAP} (UDP: 30 s unreplied); ${FIRST_PACKET_REFUSED}` },
  'mixed/zeek-wikipedia.pcap': { tcp: 9, why: FIRST_PACKET_REFUSED },
  'synflood/stopddos-amp.TCP.reflection.SYNACK.pcap': { tcp: 6, why: `SYN/ACK backscatter: ${FIRST_PACKET_REFUSED}` },
  'synflood/stopddos-pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng': { tcp: 9639, why: FIRST_PACKET_REFUSED },
  'tcp/suricata-split-handshake-5whs.pcap': { tcp: 1, why: "tshark splits the 4-tuple into a second stream at the server's SYN; conntrack keeps one connection (simultaneous open, SYN_SENT2)" },
  'tcp/tcpdump-tcp_eight_lowest_weight_flags_set.pcap': { tcp: 0, why: `a lone segment with every flag set (RST index): ${FIRST_PACKET_REFUSED}` },
  'tcp/tcpdump-tcp_rst_data.pcap': { tcp: 0, why: `a lone RST: ${FIRST_PACKET_REFUSED}` },
  'tcp/zeek-single-rst.pcap': { tcp: 0, why: `a lone RST: ${FIRST_PACKET_REFUSED}` },
  'tcp/zeek-rst-inject-rae.pcap': { tcp: 2, why: 'the injected RST arrives before any reply, so nf_conntrack deletes the connection at once; the flow is picked up again from a later ACK' },
};
for (const d of ['be', 'le']) {
  for (const [t, udp] of [
    ['011', 3],
    ['016', 3],
    ['018', 3],
    ['100', 4],
  ] as const) {
    CONV_EXCEPTIONS[`pcapng/generator/${d}/test${t}.pcapng`] = { udp, why: `synthetic packets hours apart: ${IDLE_GAP}` };
  }
}

interface ZeekException {
  why: string;
  /** Zeek's row, as [orig_pkts, resp_pkts], to tsvs's [orig, reply] (in Zeek's orientation) */
  pkts?: Array<[[number, number], [number, number]]>;
  /** connection counts [zeek, tsvs] */
  count?: [number, number];
  /** Zeek rows tsvs has no connection for */
  missing?: number;
}

const SYNACK_FIRST = "the capture starts with the server's SYN/ACK, which opens no connection in nf_conntrack (Zeek counts it and flips orig/resp)";
const ZEEK_EXCEPTIONS: Record<string, ZeekException> = {
  'mixed/zeek-wikipedia.pcap.zeek-conn.log': { count: [34, 33], missing: 1, why: `a lone responder packet: ${FIRST_PACKET_REFUSED}` },
  'tcp/zeek-ctu-64702-888.pcap.zeek-conn.log.cut': { pkts: [[[8, 8], [8, 6]]], why: `two duplicated SYN/ACKs first: ${SYNACK_FIRST}` },
  'tcp/zeek-http-on-irc-port-missing-syn.pcapng.zeek-conn.log': { pkts: [[[6, 7], [6, 6]]], why: SYNACK_FIRST },
  'tcp/zeek-missing-syn.pcap.zeek-conn.log': { pkts: [[[11, 10], [11, 9]]], why: SYNACK_FIRST },
  'tcp/zeek-one-sided-2745.pcap.zeek-conn.log.cut': {
    pkts: [
      [
        [0, 3],
        [0, 2],
      ],
      [
        [0, 3],
        [0, 2],
      ],
    ],
    why: `responder-only flows: ${SYNACK_FIRST}`,
  },
  'tcp/zeek-retransmit-timeout.pcapng.zeek-conn.log': {
    count: [2, 1],
    pkts: [
      [
        [1, 1],
        [2, 1],
      ],
      [
        [1, 0],
        [2, 1],
      ],
    ],
    why: "Zeek's 5-minute TCP inactivity timeout splits the flow at the 300 s retransmission; nf_conntrack's ESTABLISHED timeout is 5 days",
  },
};

/** Zeek baselines produced with checksum validation (Zeek drops bad-checksum packets, as nf_conntrack_checksum does) */
const ZEEK_CHECKSUMS = new Set(['malformed/zeek-dns-corrupt-udp-checksum.pcap.zeek-conn.log.cut', 'malformed/zeek-syn-bad-checksum.pcap.zeek-conn.log.cut']);

interface ZeekRow {
  key: string | null;
  orig: number;
  resp: number;
}

function parseZeek(file: string): ZeekRow[] | null {
  let fields: string[] | null = null;
  const rows: ZeekRow[] = [];
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.startsWith('#fields')) {
      fields = line.split('\t').slice(1);
      continue;
    }
    if (!line || line.startsWith('#')) continue;
    if (!fields) {
      fields = line.split('\t');
      continue;
    }
    const r = Object.fromEntries(line.split('\t').map((v, i) => [fields![i]!, v]));
    if (!('orig_pkts' in r)) return null;
    const proto = r.proto ?? 'tcp';
    if (proto !== 'tcp' && proto !== 'udp') continue;
    const key = 'id.orig_h' in r && 'id.orig_p' in r ? `${proto} ${r['id.orig_h']}:${r['id.orig_p']} ${r['id.resp_h']}:${r['id.resp_p']}` : null;
    rows.push({ key, orig: Number(r.orig_pkts), resp: Number(r.resp_pkts) });
  }
  return fields && fields.includes('orig_pkts') ? rows : null;
}

async function track(file: string): Promise<ReplaySummary> {
  return replayFile(file, { track: { profile: 'netfilter', seed: 1, maxConns: 1 << 16 } });
}

describe('corpus: connection tracking vs tshark conversations and Zeek conn.log', function () {
  this.timeout(10 * 60 * 1000);
  const facts = loadFacts();

  it('TCP and UDP conns.total equal tshark conversation counts (exceptions listed with their reason)', async function () {
    const problems: string[] = [];
    let compared = 0;
    for (const [f, fact] of Object.entries(facts)) {
      if (!fact.packets || fact.tcp_conversations === null) continue;
      let s: ReplaySummary;
      try {
        s = await track(path.join(CORPUS, f));
      } catch {
        continue; // files that cannot be read to the end are covered by the decode test
      }
      const exc = CONV_EXCEPTIONS[f];
      const wantTcp = exc?.tcp ?? fact.tcp_conversations;
      const wantUdp = exc?.udp ?? fact.udp_conversations;
      if (s.conns!.tcp !== wantTcp || s.conns!.udp !== wantUdp) {
        problems.push(`${f}: tsvs tcp ${s.conns!.tcp} udp ${s.conns!.udp}; expected tcp ${wantTcp} udp ${wantUdp} (tshark ${fact.tcp_conversations}/${fact.udp_conversations})`);
      }
      compared++;
    }
    assert.deepEqual(problems, []);
    assert.ok(compared > 150, `compared ${compared} captures`);
  });

  it('each listed exception still differs from tshark (no stale entries)', function () {
    for (const [f, e] of Object.entries(CONV_EXCEPTIONS)) {
      const fact = facts[f]!;
      assert.ok(fact, f);
      assert.ok((e.tcp !== undefined && e.tcp !== fact.tcp_conversations) || (e.udp !== undefined && e.udp !== fact.udp_conversations), `${f} is listed but agrees with tshark`);
      assert.ok(e.why.length > 20);
    }
  });

  it('Zeek conn.log: connection count and per-direction packets of every connection (exceptions listed)', async function () {
    const logs: string[] = [];
    for (const d of fs.readdirSync(CORPUS)) {
      const dir = path.join(CORPUS, d);
      if (!fs.statSync(dir).isDirectory()) continue;
      for (const f of fs.readdirSync(dir)) if (/\.zeek-conn(-vlan)?\.log(\.cut)?$/.test(f)) logs.push(`${d}/${f}`);
    }
    const problems: string[] = [];
    let compared = 0;
    for (const log of logs.sort()) {
      const rows = parseZeek(path.join(CORPUS, log));
      if (!rows) continue; // baseline without packet counts
      const cap = path.join(CORPUS, log.replace(/\.zeek-conn.*$/, ''));
      const conns: ConnRecord[] = [];
      await replayFile(cap, {
        verifyChecksums: ZEEK_CHECKSUMS.has(log),
        track: { profile: 'netfilter', seed: 1, maxConns: 1 << 16, conns: { line: (l: string) => conns.push(JSON.parse(l) as ConnRecord) } },
      });
      const ours = conns.filter((c) => c.proto === 'tcp' || c.proto === 'udp');
      // Zeek rows with no packets at all (bad checksums, Zeek -C off) are connections tsvs does not open
      const zr = rows.filter((r) => r.orig + r.resp > 0);
      const exc = ZEEK_EXCEPTIONS[log];
      const wantCount = exc?.count ? exc.count[1] : zr.length;
      let missing = exc?.missing ?? 0;
      if (ours.length !== wantCount) problems.push(`${log}: ${ours.length} connections, Zeek ${zr.length}${exc?.count ? ` (expected ${wantCount})` : ''}`);
      for (const r of zr) {
        // find ours in either orientation (Zeek may flip originator and responder)
        const cand: Array<[number, number]> = [];
        for (const c of ours) {
          const k1 = `${c.proto} ${c.orig.src}:${c.orig.sport} ${c.orig.dst}:${c.orig.dport}`;
          const k2 = `${c.proto} ${c.orig.dst}:${c.orig.dport} ${c.orig.src}:${c.orig.sport}`;
          if (r.key === null || r.key === k1) cand.push([c.orig_pkts, c.reply_pkts]);
          if (r.key === null || r.key === k2) cand.push([c.reply_pkts, c.orig_pkts]);
        }
        const fix = exc?.pkts?.find(([z]) => z[0] === r.orig && z[1] === r.resp);
        const want: [number, number] = fix ? fix[1] : [r.orig, r.resp];
        if (cand.length === 0 && missing > 0) {
          missing--;
          continue;
        }
        if (!cand.some(([o, p]) => o === want[0] && p === want[1])) problems.push(`${log}: ${r.key ?? '(no id)'} Zeek ${r.orig}/${r.resp}, tsvs ${JSON.stringify(cand)}`);
      }
      compared++;
    }
    assert.deepEqual(problems, []);
    assert.ok(compared >= 15, `compared ${compared} baselines`);
  });
});

