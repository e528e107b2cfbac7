/**
 * Per-connection records as a Zeek conn.log (`tsvs replay --conns FILE --conns-format zeek`): Zeek's TSV with
 * its header, so zeek-cut and the tools that read conn.log take it. What tsvs does not know is Zeek's unset
 * value `-`: the application service, payload byte counts (tsvs counts IP bytes, not TCP sequence space),
 * missed bytes, local networks, tunnel parents.
 *
 * conn_state is Zeek's (base/protocols/conn/main.zeek, conn_state()) from each endpoint's TCP state, which
 * is read here off the history letters (first SYN, SYN-ACK, ACK, data, FIN, RST of each side); community_id
 * is the Community ID v1 hash (seed 0) as Zeek's community-id plugin writes it.
 */
import { createHash } from 'node:crypto';
import { addrToWords } from '../packet/addr.js';
import type { ConnRecord } from './records.js';

export const ZEEK_FIELDS = [
  ['ts', 'time'],
  ['uid', 'string'],
  ['id.orig_h', 'addr'],
  ['id.orig_p', 'port'],
  ['id.resp_h', 'addr'],
  ['id.resp_p', 'port'],
  ['proto', 'enum'],
  ['service', 'string'],
  ['duration', 'interval'],
  ['orig_bytes', 'count'],
  ['resp_bytes', 'count'],
  ['conn_state', 'string'],
  ['local_orig', 'bool'],
  ['local_resp', 'bool'],
  ['missed_bytes', 'count'],
  ['history', 'string'],
  ['orig_pkts', 'count'],
  ['orig_ip_bytes', 'count'],
  ['resp_pkts', 'count'],
  ['resp_ip_bytes', 'count'],
  ['tunnel_parents', 'set[string]'],
  ['ip_proto', 'count'],
  ['community_id', 'string'],
] as const;

/** the header of a conn.log (`open`: its time, as Zeek writes it) */
export function zeekHeader(open: Date): string {
  return [
    '#separator \\x09',
    '#set_separator\t,',
    '#empty_field\t(empty)',
    '#unset_field\t-',
    '#path\tconn',
    `#open\t${zeekTime(open)}`,
    `#fields\t${ZEEK_FIELDS.map((f) => f[0]).join('\t')}`,
    `#types\t${ZEEK_FIELDS.map((f) => f[1]).join('\t')}`,
  ].join('\n');
}

export function zeekFooter(close: Date): string {
  return `#close\t${zeekTime(close)}`;
}

function zeekTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}-${p(d.getUTCHours())}-${p(d.getUTCMinutes())}-${p(d.getUTCSeconds())}`;
}

const PROTO_NUM: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58 };

/* TCP endpoint states as Zeek's analyzer has them */
const INACTIVE = 0;
const SYN_SENT = 1;
const SYN_ACK_SENT = 2;
const PARTIAL = 3;
const ESTABLISHED = 4;
const CLOSED = 5;
const RESET = 6;

/** Zeek's conn_state of a connection from its history letters (upper case: originator) and packet counts */
export function connState(proto: string, history: string, origPkts: number, respPkts: number): string {
  if (proto === 'udp') {
    if (origPkts > 0) return respPkts > 0 ? 'SF' : 'S0';
    return respPkts > 0 ? 'SHR' : 'OTH';
  }
  if (proto !== 'tcp') return 'OTH';
  const has = (ch: string) => history.includes(ch);
  const after = (a: string, b: string) => has(a) && has(b) && history.indexOf(b) > history.indexOf(a);
  // the originator: established once it acknowledged (or sent data after) the responder's SYN-ACK
  let os = INACTIVE;
  if (has('R')) os = RESET;
  else if (has('F')) os = CLOSED;
  else if (has('S') || has('H')) os = has('h') && (after('h', 'A') || after('h', 'D')) ? ESTABLISHED : SYN_SENT;
  else if (origPkts > 0) os = PARTIAL;
  let rs = INACTIVE;
  if (has('r')) rs = RESET;
  else if (has('f')) rs = CLOSED;
  else if (has('h')) rs = has('S') && (after('h', 'A') || after('h', 'D')) ? ESTABLISHED : SYN_ACK_SENT;
  else if (has('s')) rs = SYN_SENT;
  else if (respPkts > 0) rs = PARTIAL;
  const oInactive = os === INACTIVE || os === PARTIAL;
  const rInactive = rs === INACTIVE || rs === PARTIAL;
  if (rs === RESET) {
    if (os === SYN_SENT || os === SYN_ACK_SENT || (os === RESET && !has('D') && !has('d'))) return 'REJ';
    return oInactive ? 'RSTRH' : 'RSTR';
  }
  if (os === RESET) {
    if (rInactive) return /^\^?S[^HAFGIQ]*R/.test(history) ? 'RSTOS0' : 'OTH';
    return 'RSTO';
  }
  if (rs === CLOSED && os === CLOSED) return 'SF';
  if (os === CLOSED) return rInactive ? 'SH' : 'S2';
  if (rs === CLOSED) return oInactive ? 'SHR' : 'S3';
  if (os === SYN_SENT && rs === INACTIVE) return 'S0';
  if (os === ESTABLISHED && rs === ESTABLISHED) return 'S1';
  return 'OTH';
}

/** an IPv4 or IPv6 address as bytes (network order) */
export function addrBytes(a: string): Uint8Array {
  const { v6, words } = addrToWords(a);
  const b = new Uint8Array(v6 ? 16 : 4);
  const dv = new DataView(b.buffer);
  for (let k = 0; k < b.length / 4; k++) dv.setUint32(4 * k, words[k]!);
  return b;
}

/* ICMP types that have a counterpart (request/reply): the flow is two-way (Community ID v1, spec section "ICMP") */
const ICMP4_PAIRS: Record<number, number> = { 8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17 };
const ICMP6_PAIRS: Record<number, number> = { 128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130, 144: 145, 145: 144 };

/** Community ID v1 ("1:" + base64 SHA-1) of a flow; ICMP: sport = type, dport = code or the counterpart type */
export function communityId(proto: number, src: string, dst: string, sport: number, dport: number, seed = 0): string {
  let sa = addrBytes(src);
  let da = addrBytes(dst);
  let sp = sport;
  let dp = dport;
  let oneWay = false;
  if (proto === 1 || proto === 58) {
    const pair = (proto === 1 ? ICMP4_PAIRS : ICMP6_PAIRS)[sport];
    if (pair === undefined) oneWay = true;
    else dp = pair;
  }
  const less = (): boolean => {
    for (let i = 0; i < sa.length; i++) if (sa[i] !== da[i]) return sa[i]! < da[i]!;
    return sp < dp;
  };
  if (!oneWay && !less()) {
    [sa, da] = [da, sa];
    [sp, dp] = [dp, sp];
  }
  const h = createHash('sha1');
  h.update(Uint8Array.of(seed >>> 8, seed & 255));
  h.update(sa);
  h.update(da);
  h.update(Uint8Array.of(proto, 0));
  if (proto === 6 || proto === 17 || proto === 132 || proto === 1 || proto === 58) h.update(Uint8Array.of(sp >>> 8, sp & 255, dp >>> 8, dp & 255));
  return `1:${h.digest('base64')}`;
}

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** a Zeek-like uid ("C" + 96 bits in base 62), derived from the flow, its first packet time and the seed: the same for a replay repeated */
function uid(r: ConnRecord, seed: number): string {
  const d = createHash('sha1').update(`${seed} ${r.proto} ${r.orig.src} ${r.orig.sport ?? r.orig.type} ${r.orig.dst} ${r.orig.dport ?? r.orig.code} ${r.first_ts}`).digest();
  // 96 bits in base 62, as Zeek's own (up to 17 characters after the C)
  let x = (d.readBigUInt64BE(0) << 32n) | BigInt(d.readUInt32BE(8));
  let s = '';
  while (x > 0n) {
    s += B62[Number(x % 62n)];
    x /= 62n;
  }
  return `C${s}`;
}

/** one conn.log line of a connection record */
export function zeekLine(r: ConnRecord, seed: number): string {
  const p = PROTO_NUM[r.proto] ?? 0;
  const icmp = p === 1 || p === 58;
  const op = icmp ? r.orig.type! : r.orig.sport!;
  const icmpPair = icmp ? (p === 1 ? ICMP4_PAIRS : ICMP6_PAIRS)[r.orig.type!] : undefined;
  const rp = icmp ? (icmpPair ?? r.orig.code!) : r.orig.dport!;
  const dur = Number(r.last_ts) - Number(r.first_ts);
  return [
    r.first_ts.replace(/^(\d+\.\d{6})\d*$/, '$1'),
    uid(r, seed),
    r.orig.src,
    op,
    r.orig.dst,
    rp,
    r.proto === 'icmpv6' ? 'icmp' : r.proto,
    '-',
    r.orig_pkts + r.reply_pkts > 1 ? dur.toFixed(6) : '-',
    '-',
    '-',
    connState(r.proto, r.history, r.orig_pkts, r.reply_pkts),
    '-',
    '-',
    '-',
    r.history || '-',
    r.orig_pkts,
    r.orig_bytes,
    r.reply_pkts,
    r.reply_bytes,
    '-',
    p,
    communityId(p, r.orig.src, r.orig.dst, op, icmp ? r.orig.code! : rp),
  ].join('\t');
}
