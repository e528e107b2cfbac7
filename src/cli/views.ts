/** The views ctstat and tsvs ctl print: connections (ipvsadm -lnc / conntrack -L), services (ipvsadm -Ln), counters. */
import chalk, { Chalk } from 'chalk';
import { UsageError } from './errors.js';
import { CtlClient } from '../ctl/client.js';
import { snapshotMatcher, type Snapshot, type SnapshotConn, type SnapshotService, type TupleJson } from '../report/records.js';
import type { FlowRecord } from '../report/flows.js';
import type { FlowSort } from '../report/flows.js';
import type { TemplateEntry } from '../ctl/server.js';
import { addrToWords } from '../packet/addr.js';

export interface ViewOpts {
  rate?: boolean;
  /** ipvsadm --sort: services by protocol, address and port, servers by address and port */
  sorted?: boolean;
  stats?: boolean;
  output: string;
  proto?: string;
  state?: string;
  src?: string;
  dst?: string;
  port?: string;
}

function hostPort(t: TupleJson, side: 'src' | 'dst'): string {
  const a = t[side];
  const p = side === 'src' ? t.sport : t.dport;
  const host = a.includes(':') ? `[${a}]` : a;
  return p === undefined ? host : `${host}:${p}`;
}

function mmss(secs: number): string {
  const m = Math.floor(secs / 60);
  return `${String(m).padStart(2, '0')}:${String(Math.floor(secs % 60)).padStart(2, '0')}`;
}

function colourState(c: typeof chalk, s: string): string {
  if (s === 'ESTABLISHED' || s === 'ASSURED' || s === 'NORMAL') return c.green(s);
  if (s.startsWith('SYN') || s === 'UNREPLIED' || s === 'ONEWAY') return c.yellow(s);
  if (s === 'CLOSE' || s === 'TIME_WAIT') return c.gray(s);
  return c.cyan(s);
}

export function filter(conns: SnapshotConn[], o: ViewOpts, profile: string): SnapshotConn[] {
  const port = o.port === undefined ? undefined : Number(o.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new UsageError(`--port: expected 0-65535, got "${o.port}"`);
  const f = { proto: o.proto, state: o.state, src: o.src, dst: o.dst, port };
  let match: (c: SnapshotConn) => boolean;
  try {
    match = snapshotMatcher(profile, f);
  } catch (e) {
    throw new UsageError(`--${(e as Error).message}`);
  }
  return conns.filter(match);
}

function icmpPart(t: TupleJson): string {
  return `type=${t.type} code=${t.code} id=${t.id}`;
}

/** "proto addr:port" / "addr:port" as a sort key: protocol, address family, address words, port */
function addrKey(label: string): Array<number | string> {
  const m = /^(?:(\w+) )?\[?([0-9a-fA-F.:]+?)\]?(?::(\d+))?$/.exec(label);
  if (!m) return [label];
  const w = addrToWords(m[2]!);
  return [m[1] ?? '', w.v6 ? 1 : 0, ...w.words, Number(m[3] ?? 0)];
}

function cmpKeys(a: Array<number | string>, b: Array<number | string>): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? -1;
    const y = b[i] ?? -1;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function sortServices(svcs: SnapshotService[]): SnapshotService[] {
  return [...svcs].sort((a, b) => cmpKeys(addrKey(a.service), addrKey(b.service))).map((s) => ({ ...s, servers: [...s.servers].sort((a, b) => cmpKeys(addrKey(a.server), addrKey(b.server))) }));
}

/** persistence templates as ipvsadm -Lnc lists them (state NONE, the client masked with port 0) */
export function templateLines(ts: TemplateEntry[]): string[] {
  const hp = (a: string, p: number) => `${a.includes(':') ? `[${a}]` : a}:${p}`;
  return ts.map((t) => `${t.proto.toUpperCase().padEnd(3)} ${mmss(t.expire).padEnd(6)} ${'NONE'.padEnd(11)} ${hp(t.client, 0).padEnd(22)} ${hp(t.vip, t.vport).padEnd(22)} ${t.server.padEnd(22)} ${hp(t.client, 0)}`);
}

/** one `conntrack -E` line of an event (as eventJson writes it) */
export function eventLine(e: { type: string; proto: string; state: string; orig: TupleJson; reply: TupleJson; timeout: number; assured: boolean; replied?: boolean }, extended: boolean): string {
  const head = `[${e.type.toUpperCase()}]`.padStart(9);
  const line = conntrackLine({ proto: e.proto, state: e.state, expire: e.timeout, orig: e.orig, reply: e.reply, replied: e.replied ?? true, assured: e.assured } as SnapshotConn).replace(/ mark=0 use=1$/, '');
  return `${head} ${extended ? `${e.orig.src.includes(':') ? 'ipv6     10' : 'ipv4     2'} ` : ''}${e.type === 'destroy' ? line.replace(/^(\S+ +\d+) 0 /, '$1 ') : line}`;
}

/** one `conntrack -L` line */
export function conntrackLine(c: SnapshotConn): string {
  const num = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58 }[c.proto] ?? 0;
  const tup = (t: TupleJson) => `src=${t.src} dst=${t.dst} ${t.type !== undefined ? icmpPart(t) : `sport=${t.sport} dport=${t.dport}`}`;
  const state = c.proto === 'tcp' ? `${c.state} ` : '';
  return `${c.proto.padEnd(8)} ${num} ${c.expire} ${state}${tup(c.orig)}${c.replied ? '' : ' [UNREPLIED]'} ${tup(c.reply)}${c.assured ? ' [ASSURED]' : ''} mark=0 use=1`;
}

export function list(snap: Snapshot, o: ViewOpts, color: boolean): string {
  const conns = filter(snap.conns, o, snap.profile);
  if (o.output === 'json') return JSON.stringify(conns);
  if (o.output === 'conntrack' || o.output === 'extended') {
    const line = o.output === 'extended' ? (x: SnapshotConn) => `${x.orig.src.includes(':') ? 'ipv6     10' : 'ipv4     2'} ${conntrackLine(x)}` : conntrackLine;
    return conns.map(line).join('\n') + (conns.length ? '\n' : '') + `conntrack v1.4 (tsvs): ${conns.length} flow entries have been shown.`;
  }
  const c = color ? chalk : new Chalk({ level: 0 });
  const lines = ['IPVS connection entries', `pro expire state       source                 destination            reply source           reply destination${conns.some((x) => x.server) ? '      server' : ''}`];
  for (const x of conns) {
    const st = x.state.padEnd(11);
    lines.push(
      `${x.proto.toUpperCase().padEnd(3)} ${mmss(x.expire).padEnd(6)} ${colourState(c, st)} ${hostPort(x.orig, 'src').padEnd(22)} ${hostPort(x.orig, 'dst').padEnd(22)} ${hostPort(x.reply, 'src').padEnd(22)} ${hostPort(x.reply, 'dst')}${x.server ? `  ${x.server}` : ''}`,
    );
  }
  return lines.join('\n');
}

const FWD: Record<string, string> = { nat: 'Masq', fnat: 'FullNat', dr: 'Route', tunnel: 'Tunnel', snat: 'SNAT' };

/** services and servers in the layout of `ipvsadm -Ln` (and `--stats`) */
export function services(snap: Snapshot, o: ViewOpts): string {
  let svcs = snap.services ?? [];
  if (o.sorted) svcs = sortServices(svcs);
  if (o.output === 'json') return JSON.stringify(svcs);
  const lines: string[] = [];
  // ipvsadm -Ln --rate and --stats: five numbers per service and per server
  const numbers = (head: string, cols: (x: SnapshotService | SnapshotService['servers'][number]) => number[]) => {
    lines.push(`Prot LocalAddress:Port           ${head}`, '  -> RemoteAddress:Port');
    const row = (name: string, v: number[]) => `${name.padEnd(33)}${v.map((n) => ` ${String(n).padStart(8)}`).join('')}`;
    for (const s of svcs) {
      const [proto, ...addr] = s.service.split(' ');
      lines.push(row(`${proto!.toUpperCase()}  ${addr.join(' ')}`, cols(s)));
      for (const d of s.servers) lines.push(row(`  -> ${d.server}`, cols(d)));
    }
    return lines.join('\n');
  };
  if (o.rate) {
    return numbers('      CPS    InPPS   OutPPS    InBPS   OutBPS', ({ rate: r }) => (r ? [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] : [0, 0, 0, 0, 0]));
  }
  if (o.stats) return numbers('    Conns   InPkts  OutPkts  InBytes OutBytes', (x) => [x.conns, x.in_pkts, x.out_pkts, x.in_bytes ?? 0, x.out_bytes ?? 0]);
  const health = svcs.some((x) => x.servers.some((d) => d.health));
  lines.push('IP Virtual Server version 1.2.1 (tsvs)', 'Prot LocalAddress:Port Scheduler Flags', `  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn${health ? ' Health' : ''}`);
  for (const s of svcs) {
    const [proto, ...addr] = s.service.split(' ');
    lines.push(`${proto!.toUpperCase()}  ${addr.join(' ')} ${s.scheduler}`);
    // region_select: the home and each region's latency in the last report
    if (s.region) lines.push(`  region home ${s.region.home ?? '-'} (${s.region.rule}): ${Object.entries(s.region.latency).map(([r, ms]) => `${r} ${ms === null ? '-' : `${Math.round(ms * 10) / 10} ms`}`).join(', ')}`);
    for (const d of s.servers) {
      lines.push(`  -> ${d.server.padEnd(28)} ${(FWD[s.forward ?? 'nat'] ?? 'Masq').padEnd(7)} ${String(d.weight).padEnd(6)} ${String(d.active).padEnd(10)} ${health ? `${String(d.inactive).padEnd(9)} ${d.health ?? ''}` : d.inactive}${d.region ? `  ${d.region}` : ''}`);
    }
  }
  return lines.join('\n');
}

export function stats(snap: Snapshot, o: ViewOpts): string {
  if (o.output === 'json') return JSON.stringify({ counters: snap.counters, gauges: snap.gauges, ...(snap.synproxy ? { synproxy: snap.synproxy } : {}), ...(snap.io ? { io: snap.io } : {}) });
  const lines = [`source ${snap.source}  profile ${snap.profile}  time ${snap.time}`, '', 'counters'];
  for (const [k, v] of Object.entries(snap.counters)) lines.push(`  ${k.padEnd(20)} ${v}`);
  if (snap.synproxy) {
    lines.push('', 'synproxy');
    for (const [k, v] of Object.entries(snap.synproxy)) lines.push(`  ${k.padEnd(24)} ${v}`);
  }
  if (snap.io) {
    lines.push('', `packet i/o: ${snap.io.path}`);
    for (const [k, v] of Object.entries(snap.io)) if (k !== 'path' && (k !== 'tx_last_error' || v)) lines.push(`  ${k.padEnd(20)} ${v}`);
  }
  lines.push('', `entries ${snap.gauges.entries}`);
  for (const [k, v] of Object.entries(snap.gauges.by_proto)) lines.push(`  ${k.padEnd(20)} ${v}`);
  lines.push('', 'by state');
  for (const [k, v] of Object.entries(snap.gauges.by_state)) lines.push(`  ${k.padEnd(20)} ${v}`);
  return lines.join('\n');
}


/** connect to a running daemon's control socket; a refusal (no daemon, no permission) is a usage error (exit 2) */
export async function connectCtl(socket: string): Promise<CtlClient> {
  const c = new CtlClient(socket);
  try {
    await c.connect();
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return c;
}

/* ---------------- flows (ctstat --flows) ---------------- */

export interface FlowViewOpts {
  output: string;
  top?: number;
  sort: FlowSort;
}

const flowKey = (f: FlowRecord, sort: FlowSort): number => (sort === 'drops' ? Object.values(f.drops).reduce((a, b) => a + b, 0) : sort === 'pkts' ? f.pkts : f.bytes);

/** flows largest first by `sort` (ties: source, destination), the first `top` of them */
export function sortFlows(flows: FlowRecord[], sort: FlowSort, top?: number): FlowRecord[] {
  const out = [...flows].sort((a, b) => flowKey(b, sort) - flowKey(a, sort) || (a.src < b.src ? -1 : a.src > b.src ? 1 : a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
  return top === undefined ? out : out.slice(0, top);
}

/** one line per flow (src, dst, packets and bytes seen, sent on directly / through a tunnel, drops by reason) */
export function flowList(flows: FlowRecord[], o: FlowViewOpts): string {
  if (o.output === 'json') return JSON.stringify(flows);
  const rows = flows.map((f) => [
    f.src,
    f.dst,
    String(f.pkts),
    String(f.bytes),
    `${f.fwd_pkts}/${f.fwd_bytes}`,
    `${f.tun_pkts}/${f.tun_bytes}`,
    Object.entries(f.drops)
      .map(([k, v]) => `${k}=${v}`)
      .join(',') || '-',
  ]);
  const head = ['SOURCE', 'DESTINATION', 'PKTS', 'BYTES', 'FWD PKTS/BYTES', 'TUN PKTS/BYTES', 'DROPS'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : i >= 2 ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}
