/**
 * Every capture of ../shared/pcaps through `bin/tsvs replay --json`, against two independent oracles:
 * capinfos (packet counts and timestamps recorded in facts.json) and tshark run here (per-frame outermost
 * transport). Differences that are expected are listed below with their reason; anything else fails.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { CORPUS, haveTool, loadFacts, pool, tsharkL4Counts, tsvs, type RunResult } from '../helpers/corpus.js';

type L4 = 'tcp' | 'udp' | 'icmp' | 'icmpv6';

/** tshark count minus tsvs count, per transport, with the reason. */
const L4_EXCEPTIONS: Record<string, { delta: Partial<Record<L4, number>>; why: string }> = {
  'fragments/suricata-frag-ip-tcp-syn.pcap': {
    delta: { tcp: 1 },
    why: 'the first fragment holds only part of the TCP header; tsvs does not reassemble, so it has no TCP header to count (tshark labels the frame tcp anyway)',
  },
  'fragments/suricata-frag-eth-vlan-ip-tcp-syn.pcap': { delta: { tcp: 1 }, why: 'as above, behind a VLAN tag' },
  'fragments/stopddos-amp.dns.RRSIG.fragmented.pcap': {
    delta: { udp: 1 },
    why: 'frame 4194 is UDP inside GRE: tshark dissects the tunnel, tsvs counts the outer packet (proto 47) as other',
  },
};

/** Frames tsvs drops at the IP layer that tshark still dissects. */
const IP_DROP_EXCEPTIONS: Record<string, { delta: Partial<Record<L4, number>>; why: string }> = {
  'fragments/zeek-tcp-reassembly.pcap': {
    delta: { tcp: 5 },
    why: '5 frames whose IPv4 total length exceeds the frame as sent on the wire: Linux ip_rcv drops these, and so does tsvs (ipv4_bad_total_length)',
  },
  'malformed/suricata-ipv4-truncated.pcap': { delta: { udp: 1 }, why: 'IPv4 total length larger than the frame on the wire (ipv4_bad_total_length)' },
};

/** capinfos's timestamps for these are wiretap int32 overflows of invalid sub-second values (>= 1e6 / 1e9). */
const TS_EXCEPTIONS = new Set(['malformed/tcpdump-timestamp_invalid_micro.pcap', 'malformed/tcpdump-timestamp_invalid_nano.pcap']);

/** Files libpcap refuses although capinfos (wiretap) reads them: tsvs follows libpcap. */
const LIBPCAP_REJECTS = new Set(['malformed/libpcap-pcap-invalid-version-2.pcap']);

interface Json {
  packets: number;
  first_ts: string | null;
  last_ts: string | null;
  decoded: Record<string, number>;
  drops: Record<string, number>;
  warnings: string[];
  error?: string;
}

describe('corpus: tsvs replay --json vs capinfos and tshark', function () {
  const facts = loadFacts();
  const files = Object.keys(facts).sort();
  const results = new Map<string, RunResult>();
  const tshark = new Map<string, Record<L4, number>>();

  before(async function () {
    this.timeout(15 * 60 * 1000);
    assert.ok(haveTool('tshark'), 'tshark is required (apt-get install tshark)');
    await pool(files, 4, async (f) => {
      const p = path.join(CORPUS, f);
      results.set(f, await tsvs(['replay', '--json', p]));
      if (facts[f]!.packets !== null) tshark.set(f, await tsharkL4Counts(p));
    });
  });

  it('covers the whole corpus (216 captures)', function () {
    assert.equal(files.length, 216);
  });

  it('reports capinfos packet counts and earliest/latest timestamps for every readable file', function () {
    const problems: string[] = [];
    for (const f of files) {
      const fact = facts[f]!;
      const r = results.get(f)!;
      if (fact.packets === null || LIBPCAP_REJECTS.has(f)) continue;
      const line = r.stdout.trim().split('\n')[0];
      if (!line) {
        problems.push(`${f}: no JSON (rc ${r.code}: ${r.stderr.trim()})`);
        continue;
      }
      const j = JSON.parse(line) as Json;
      if (j.packets !== fact.packets) problems.push(`${f}: packets ${j.packets} != capinfos ${fact.packets}`);
      if (TS_EXCEPTIONS.has(f)) continue;
      if (fact.packets > 0 && fact.first_timestamp && j.first_ts !== fact.first_timestamp) problems.push(`${f}: first_ts ${j.first_ts} != ${fact.first_timestamp}`);
      if (fact.packets > 0 && fact.last_timestamp && j.last_ts !== fact.last_timestamp) problems.push(`${f}: last_ts ${j.last_ts} != ${fact.last_timestamp}`);
    }
    assert.deepEqual(problems, []);
  });

  it('exits 0 on good files, 2 with one stderr line on files capinfos cannot read to the end', function () {
    const problems: string[] = [];
    for (const f of files) {
      const fact = facts[f]!;
      const r = results.get(f)!;
      const errLines = r.stderr.split('\n').filter((l) => l && !l.startsWith('tsvs: warning:'));
      const midFileError = fact.read_error_after_packets != null && !f.includes('partial-record');
      if (fact.packets === null || LIBPCAP_REJECTS.has(f) || midFileError) {
        if (r.code !== 2) problems.push(`${f}: expected exit 2, got ${r.code}`);
        if (errLines.length !== 1 || !errLines[0]!.includes(f)) problems.push(`${f}: expected one error line naming the file, got ${JSON.stringify(errLines)}`);
        if (/\n\s+at /.test(r.stderr)) problems.push(`${f}: stack trace on stderr`);
      } else {
        if (r.code !== 0) problems.push(`${f}: expected exit 0, got ${r.code}: ${r.stderr.trim()}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('agrees with tshark on TCP/UDP/ICMP/ICMPv6 frames (decoded + drops at that layer), exceptions documented', function () {
    const problems: string[] = [];
    for (const f of files) {
      const t = tshark.get(f);
      const r = results.get(f)!;
      const line = r.stdout.trim().split('\n')[0];
      if (!t || !line || LIBPCAP_REJECTS.has(f)) continue;
      const j = JSON.parse(line) as Json;
      const exc = { ...(L4_EXCEPTIONS[f]?.delta ?? {}), ...(IP_DROP_EXCEPTIONS[f]?.delta ?? {}) };
      for (const k of ['tcp', 'udp', 'icmp', 'icmpv6'] as L4[]) {
        let mine = j.decoded[k]!;
        for (const [reason, n] of Object.entries(j.drops)) if (reason.startsWith(`${k}_`)) mine += n;
        const want = t[k] - (exc[k] ?? 0);
        if (mine !== want) problems.push(`${f}: ${k} tsvs ${mine} vs tshark ${t[k]}${exc[k] ? ` (expected delta ${exc[k]})` : ''}`);
      }
    }
    assert.deepEqual(problems, []);
  });
});
