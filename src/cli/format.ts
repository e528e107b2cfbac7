/** Human-readable report formatting (the CLI is the only place that uses chalk). */
import chalk, { Chalk } from 'chalk';
import type { ReplaySummary } from '../replay.js';

const LINKTYPE_NAMES: Record<number, string> = {
  0: 'NULL',
  1: 'EN10MB',
  12: 'RAW',
  14: 'RAW',
  101: 'RAW',
  108: 'LOOP',
  113: 'LINUX_SLL',
  228: 'IPV4',
  229: 'IPV6',
  274: 'ETHERNET_MPACKET',
  276: 'LINUX_SLL2',
};

export function linktypeName(lt: number): string {
  return `${LINKTYPE_NAMES[lt] ?? 'unknown'}(${lt})`;
}

function n(x: number): string {
  return x.toLocaleString('en-US');
}

function kv(obj: Record<string, number>): string {
  const parts = Object.entries(obj).map(([k, v]) => `${k} ${n(v)}`);
  return parts.length ? parts.join('  ') : 'none';
}

export function formatSummary(s: ReplaySummary, color: boolean): string {
  const c = color ? chalk : new Chalk({ level: 0 });
  const lines: string[] = [];
  const label = (t: string) => c.bold(t.padEnd(10));
  lines.push(`${label('file')}${s.file}  (${s.format}${s.compressed ? ', gzip' : ''}; ${s.linktypes.map(linktypeName).join(', ') || 'no interfaces'})`);
  lines.push(`${label('packets')}${n(s.packets)}   bytes ${n(s.bytes)}${s.read !== undefined ? `   (of ${n(s.read)} read: --filter)` : ''}`);
  if (s.first_ts && s.last_ts) {
    const dur = Number(s.last_ts) - Number(s.first_ts);
    lines.push(`${label('time')}${s.first_ts} .. ${s.last_ts}  (${dur.toFixed(3)} s)`);
  }
  lines.push(`${label('decoded')}${kv(s.decoded as unknown as Record<string, number>)}`);
  const drops = kv(s.drops);
  lines.push(`${label('drops')}${drops === 'none' ? c.green(drops) : c.yellow(drops)}`);
  if (s.checksums) lines.push(`${label('checksums')}${kv(s.checksums)}`);
  if (s.workers) lines.push(`${label('workers')}${s.workers.n} lanes (${s.workers.dispatch} dispatch), packets ${s.workers.packets.map(n).join(' / ')}${s.workers.dispatch === 'tuple' ? `, NAT replies redirected ${n(s.workers.redirected)}` : ''}`);
  if (s.conns && s.conntrack) {
    const ct = s.conntrack;
    lines.push(`${label('conns')}${n(s.conns.total)} tracked (tcp ${n(s.conns.tcp)}, udp ${n(s.conns.udp)}, icmp ${n(s.conns.icmp)}), ${n(s.conns.open_at_end)} open at the end`);
    lines.push(`${label('conntrack')}expired ${n(ct.expired ?? 0)}  invalid ${n(ct.invalid ?? 0)}  related ${n(ct.related ?? 0)}  early_drop ${n(ct.early_drop ?? 0)}  insert_failed ${n(ct.insert_failed ?? 0)}`);
  }
  if (s.lb) {
    const lb = s.lb;
    const extra = `${lb.icmp_sent ? `  icmp sent ${kv(lb.icmp_sent)}` : ''}${lb.toa_added !== undefined ? `  toa added ${n(lb.toa_added)}` : ''}`;
    lines.push(`${label('lb')}emitted ${n(lb.emitted)}  not emitted: ${kv(lb.not_emitted)}${extra}`);
    if (lb.synproxy) {
      const sp = Object.entries(lb.synproxy).filter(([, v]) => v > 0);
      lines.push(`${label('synproxy')}${sp.length ? sp.map(([k, v]) => `${k.replace('SYNPROXY_', '').toLowerCase()} ${n(v)}`).join('  ') : 'no activity'}`);
    }
    for (const v of lb.services) lines.push(`${label('service')}${v.service} ${v.scheduler} ${v.forward ?? ''}  conns ${n(v.conns)}: ${v.servers.map((x) => `${x.server} ${n(x.conns)}`).join(', ')}`);
  }
  if (s.flows) {
    const f = s.flows;
    lines.push(`${label('flows')}${n(f.count)} at the end, ${n(f.evicted)} evicted (${n(f.evicted_full)} when full)  drops: ${kv(f.drops)}`);
  }
  if (s.warnings.length) for (const w of s.warnings) lines.push(`${label('warning')}${c.yellow(w)}`);
  if (s.error) lines.push(`${label('error')}${c.red(s.error)}`);
  return lines.join('\n');
}

/** A one-line progress bar for stderr on a TTY. */
export function progressBar(done: number, total: number, packets: number): string {
  const width = 30;
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const fill = Math.round(frac * width);
  return `\r[${'='.repeat(fill)}${' '.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${n(packets)} packets`;
}
