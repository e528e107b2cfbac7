/**
 * Flow accounting (`tsvs replay --flows`) over every capture of ../shared/pcaps against tshark run here: per
 * directional (source, destination) pair of the outermost IP header, the packets and the IP bytes (IPv4 total
 * length, IPv6 payload length + 40) tshark reads from the same file. Flows of one pair split by idle eviction
 * are summed. Differences that are expected are listed with their reason; anything else fails.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CORPUS, haveTool, loadFacts, pool, run, tsvs } from '../helpers/corpus.js';

interface Pair {
  pkts: number;
  bytes: number;
}

/** per pair "src>dst" as tshark reads the file (the first IP header of each frame, IPv4 or IPv6, whichever is outer) */
async function tsharkPairs(file: string): Promise<Map<string, Pair>> {
  const r = await run('tshark', ['-n', '-r', file, '-T', 'fields', '-E', 'separator=|', '-E', 'occurrence=f', '-e', 'frame.protocols', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'ip.len', '-e', 'ipv6.src', '-e', 'ipv6.dst', '-e', 'ipv6.plen']);
  const m = new Map<string, Pair>();
  for (const l of r.stdout.split('\n')) {
    if (!l) continue;
    const [protos, s4, d4, len4, s6, d6, plen6] = l.split('|');
    const layers = protos!.split(':');
    const i4 = layers.indexOf('ip');
    const i6 = layers.indexOf('ipv6');
    let key: string;
    let bytes: number;
    if (i4 >= 0 && (i6 < 0 || i4 < i6) && s4) {
      key = `${s4}>${d4}`;
      bytes = Number(len4);
    } else if (i6 >= 0 && s6) {
      key = `${s6}>${d6}`;
      bytes = Number(plen6) + 40;
    } else continue;
    const p = m.get(key) ?? { pkts: 0, bytes: 0 };
    p.pkts++;
    p.bytes += bytes;
    m.set(key, p);
  }
  return m;
}

function tsvsPairs(jsonl: string): Map<string, Pair> {
  const m = new Map<string, Pair>();
  for (const l of jsonl.split('\n')) {
    if (!l) continue;
    const f = JSON.parse(l) as { src: string; dst: string; pkts: number; bytes: number };
    const key = `${f.src}>${f.dst}`;
    const p = m.get(key) ?? { pkts: 0, bytes: 0 };
    p.pkts += f.pkts;
    p.bytes += f.bytes;
    m.set(key, p);
  }
  return m;
}

/** files where tsvs and tshark are expected to differ: pair → [packets, bytes] tshark minus tsvs, and why */
const EXCEPTIONS: Record<string, { why: string; pairs?: Record<string, [number, number]>; skip?: boolean }> = {
  'ipv6/tcpdump-bigtcp-ipv6.pcap': {
    why: 'a BIG TCP packet: payload length 0 and the length (80000) in a hop-by-hop Jumbo Payload option (RFC 2675); tshark reads ipv6.plen 0, tsvs the option',
    pairs: { '2604:1380:4091:ce00::b>2604:1380:4091:ce00::d': [0, 40 - 80040] },
  },
  'malformed/zeek-trunc-ipv4-internally-truncated-header.pcap': {
    why: 'a 34-byte frame: a 20-byte IPv4 header whose IHL says 60; both addresses are in the frame and tsvs counts the packet (114 B by its total length) on their pair, as its decode drop ipv4_truncated; tshark stops after the source address',
    pairs: { '163.253.48.183>': [1, 114], '163.253.48.183>192.150.187.43': [-1, -114] },
  },
  'malformed/zeek-trunc-ipv4-truncated-broken-header.pcap': {
    why: 'the same frame with total length 20 (< IHL 60): tsvs counts it on its pair (20 B, decode drop ipv4_truncated), tshark shows no address',
    pairs: { '163.253.48.183>192.150.187.43': [-1, -20] },
  },
  'malformed/zeek-trunc-ip6-trunc.pcap': {
    why: 'the frame was cut (snap length) inside the destination address: no pair to count it on (tshark shows a source only); tsvs counts it as the decode drop ipv6_truncated',
    pairs: { '2001:4f8:4:7:2e0:81ff:fe52:ffff>': [1, 60] },
  },
  'malformed/libpcap-pcap-invalid-version-2.pcap': { why: 'libpcap refuses the file (version 2.5) while tshark reads it: tsvs follows libpcap', skip: true },
};

describe('corpus: tsvs replay --flows vs tshark, per (source, destination)', function () {
  const facts = loadFacts();
  const files = Object.keys(facts)
    .sort()
    .filter((f) => facts[f]!.packets !== null && facts[f]!.read_error_after_packets == null);
  const problems: string[] = [];
  let compared = 0;
  let pairsCompared = 0;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-flows-'));

  before(async function () {
    this.timeout(15 * 60 * 1000);
    assert.ok(haveTool('tshark'), 'tshark is required (apt-get install tshark)');
    await pool(files, 4, async (f) => {
      const p = path.join(CORPUS, f);
      const out = path.join(tmp, f.replace(/\//g, '_') + '.jsonl');
      if (EXCEPTIONS[f]?.skip) return;
      const r = await tsvs(['replay', p, '--flows', out]);
      if (r.code !== 0) {
        problems.push(`${f}: tsvs exit ${r.code}: ${r.stderr.trim()}`);
        return;
      }
      const mine = tsvsPairs(fs.readFileSync(out, 'utf8'));
      const theirs = await tsharkPairs(p);
      const exc = EXCEPTIONS[f];
      compared++;
      for (const k of new Set([...mine.keys(), ...theirs.keys()])) {
        const a = mine.get(k) ?? { pkts: 0, bytes: 0 };
        const b = theirs.get(k) ?? { pkts: 0, bytes: 0 };
        const d = exc?.pairs?.[k] ?? [0, 0];
        pairsCompared++;
        if (b.pkts - a.pkts !== d[0] || b.bytes - a.bytes !== d[1]) problems.push(`${f}: ${k} tsvs ${a.pkts} pkts ${a.bytes} B, tshark ${b.pkts} pkts ${b.bytes} B`);
      }
    });
  });

  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('every directional pair has the packets and IP bytes tshark counts (exceptions listed with their reason)', function () {
    assert.ok(compared > 190, `compared ${compared} captures`);
    assert.ok(pairsCompared > 1000, `compared ${pairsCompared} pairs`);
    assert.deepEqual(problems, []);
  });
});
