/** tshark as the oracle of what a capture holds */
import { strict as assert } from 'node:assert';
import { run, tsvs } from './corpus.js';

export interface Pkt {
  src: string;
  sport: number;
  dst: string;
  dport: number;
  ipBad: boolean;
  l4Bad: boolean;
}

/** every IP packet of a capture as tshark reads it, with IPv4/TCP/UDP checksum validation on */
export async function tsharkPackets(file: string): Promise<Pkt[]> {
  const r = await run('tshark', [
    '-n',
    '-r',
    file,
    '-o',
    'ip.check_checksum:TRUE',
    '-o',
    'tcp.check_checksum:TRUE',
    '-o',
    'udp.check_checksum:TRUE',
    '-T',
    'fields',
    '-E',
    'separator=|',
    '-e',
    'ip.src',
    '-e',
    'ipv6.src',
    '-e',
    'tcp.srcport',
    '-e',
    'udp.srcport',
    '-e',
    'ip.dst',
    '-e',
    'ipv6.dst',
    '-e',
    'tcp.dstport',
    '-e',
    'udp.dstport',
    '-e',
    'ip.checksum.status',
    '-e',
    'tcp.checksum.status',
    '-e',
    'udp.checksum.status',
  ]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split('|');
      return {
        src: f[0] || f[1]!,
        sport: Number(f[2] || f[3]),
        dst: f[4] || f[5]!,
        dport: Number(f[6] || f[7]),
        // tshark checksum status: 0 bad, 1 good, 2 unverified, 3 not present
        ipBad: f[8] !== '' && f[8] !== '1',
        l4Bad: !['1', '3'].includes(f[9] || f[10] || ''),
      };
    });
}


/**
 * Replay a two-packet capture (a UDP datagram and an ICMP error about its connection) with `cfg`, expect both
 * emitted, and return each emitted packet's fields: ip.src, ip.dst, udp.srcport, udp.dstport (outer and
 * quoted, comma-joined), ip.checksum.status, icmp.checksum.status, udp.checksum.status.
 */
export async function replayIcmpPair(cfg: string, cap: string, out: string): Promise<string[][]> {
  const r = await tsvs(['replay', '--json', '--config', cfg, '--out', out, cap]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).lb.emitted, 2);
  const fields = ['ip.src', 'ip.dst', 'udp.srcport', 'udp.dstport', 'ip.checksum.status', 'icmp.checksum.status', 'udp.checksum.status'];
  const t = await run('tshark', ['-n', '-r', out, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])]);
  assert.equal(t.code, 0, t.stderr);
  return t.stdout.trim().split('\n').map((l) => l.split('|'));
}

/** a TCP segment as tshark reads it (absolute sequence numbers, raw window field, checksums validated) */
export interface TcpSeg {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  flags: number;
  seq: number;
  ack: number;
  /** the window field as sent (unscaled) */
  win: number;
  len: number;
  ttl: number;
  mss: number | null;
  wscale: number | null;
  sackPerm: boolean;
  tsval: number | null;
  tsecr: number | null;
  /** SACK block edges, left and right alternating */
  sack: number[];
  /** IP and TCP checksums good */
  sumsOk: boolean;
}

/** every TCP segment of a capture, as tshark decodes it */
export async function tsharkTcp(file: string): Promise<TcpSeg[]> {
  const fields = [
    'ip.src',
    'ipv6.src',
    'ip.dst',
    'ipv6.dst',
    'tcp.srcport',
    'tcp.dstport',
    'tcp.flags',
    'tcp.seq',
    'tcp.ack',
    'tcp.window_size_value',
    'tcp.len',
    'ip.ttl',
    'tcp.options.mss_val',
    'tcp.options.wscale.shift',
    'tcp.options.sack_perm',
    'tcp.options.timestamp.tsval',
    'tcp.options.timestamp.tsecr',
    'tcp.options.sack_le',
    'tcp.options.sack_re',
    'ip.checksum.status',
    'tcp.checksum.status',
  ];
  const opts = ['ip.check_checksum:TRUE', 'tcp.check_checksum:TRUE', 'tcp.relative_sequence_numbers:FALSE', 'tcp.analyze_sequence_numbers:FALSE'];
  const r = await run('tshark', ['-n', '-r', file, ...opts.flatMap((o) => ['-o', o]), '-Y', 'tcp', '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])]);
  assert.equal(r.code, 0, r.stderr);
  const num = (s: string | undefined) => (s === undefined || s === '' ? null : Number(s));
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split('|');
      const le = f[17] ? f[17].split(',').map(Number) : [];
      const re = f[18] ? f[18].split(',').map(Number) : [];
      return {
        src: f[0] || f[1]!,
        dst: f[2] || f[3]!,
        sport: Number(f[4]),
        dport: Number(f[5]),
        flags: Number(f[6]),
        seq: Number(f[7]),
        ack: Number(f[8]),
        win: Number(f[9]),
        len: Number(f[10]),
        ttl: Number(f[11]),
        mss: num(f[12]),
        wscale: num(f[13]),
        sackPerm: f[14] !== '',
        tsval: num(f[15]),
        tsecr: num(f[16]),
        sack: le.flatMap((x, i) => [x, re[i]!]),
        sumsOk: (f[19] === '' || f[19] === '1') && f[20] === '1',
      };
    });
}
