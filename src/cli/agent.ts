/**
 * `tsvs agent` (issue 18, first part): a remote server's side. It registers with the hub by authenticated
 * heartbeats (src/agents/heartbeat.ts) every second, learns the address the hub sees it at, and keeps its
 * state in a status file; `tsvs agent --check FILE` exits 0 while attached, 1 when detached (a lost heartbeat
 * retried at 1, 3 and 7 s with no answer). Each answer names the VIPs the agent serves (the hub's
 * membership): the agent puts them on lo and routes their replies back through the hub (src/agents/datapath.ts).
 */
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { AgentLink } from '../agents/heartbeat.js';
import { ControlEnd, newConv, openControl, T_CTL_DOWN, T_CTL_UP } from '../agents/control.js';
import { ReplayWindow } from '../agents/window.js';
import { UsageError } from './errors.js';
import { openDataPath, type DataPath } from '../agents/datapath.js';
import { loadNative } from '../native.js';
import { isIP } from 'node:net';
import { addrToWords } from '../packet/addr.js';
import { formatAddr } from '../packet/bytes.js';

export interface AgentStatus {
  id: string;
  hub: string;
  attached: boolean;
  detached: boolean;
  /** the address and port the hub saw us at (our NAT's, behind one) */
  seen: string | null;
  rtt_ms: number | null;
  heartbeats: number;
  updated: string;
}

export interface AgentOptions {
  hub?: string;
  id?: string;
  key?: string;
  keyFile?: string;
  status?: string;
  check?: string;
  /** the VIPs it serves: put on lo, their replies routed back through the hub (needs root) */
  vip?: string[];
  /** how packets reach this host's stack and come back: a TUN device (the native module), a veth pair, or auto */
  data?: 'auto' | 'tun' | 'veth';
}

function hostPort(s: string): { addr: string; port: number } {
  const m = /^\[?([0-9a-fA-F:.]+?)\]?:(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`--hub: expected ADDR:PORT, got "${s}"`);
  return { addr: m[1]!, port: Number(m[2]) };
}

export async function agentCmd(o: AgentOptions): Promise<number> {
  if (o.check !== undefined) {
    let st: AgentStatus;
    try {
      st = JSON.parse(fs.readFileSync(o.check, 'utf8')) as AgentStatus;
    } catch (e) {
      throw new UsageError(`--check ${o.check}: cannot read an agent status (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    process.stdout.write(`${st.id}: ${st.attached ? `attached to ${st.hub}, seen as ${st.seen}, round trip ${st.rtt_ms} ms` : st.detached ? `detached from ${st.hub}` : `not yet attached to ${st.hub}`} (${st.updated})\n`);
    return st.attached ? 0 : 1;
  }
  if (!o.hub || !o.id) throw new UsageError('tsvs agent: needs --hub ADDR:PORT and --id ID (and --key HEX or --key-file FILE)');
  const hub = hostPort(o.hub);
  let hex = o.key;
  if (o.keyFile) {
    try {
      hex = fs.readFileSync(o.keyFile, 'utf8').trim();
    } catch (e) {
      throw new UsageError(`--key-file ${o.keyFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  if (!hex || !/^([0-9a-fA-F]{2}){16,64}$/.test(hex)) throw new UsageError('--key / --key-file: 16-64 bytes of hex');
  const key = Buffer.from(hex, 'hex');
  const link = new AgentLink(o.id, key);
  const sock = dgram.createSocket(hub.addr.includes(':') ? 'udp6' : 'udp4');
  let seen: string | null = null;
  let state = '';
  let wroteAt = -Infinity;
  /** the status line when it changes, and the status file then, after each answer, and at least once a second */
  const write = (force = true) => {
    const t = performance.now();
    if (!force && t - wroteAt < 1000) {
      const changed = (link.lastReplyMs > -Infinity && !link.detached ? `attached ${seen}` : link.detached ? 'detached' : '') !== state;
      if (!changed) return;
    }
    wroteAt = t;
    const st: AgentStatus = { id: o.id!, hub: o.hub!, attached: link.lastReplyMs > -Infinity && !link.detached, detached: link.detached, seen, rtt_ms: link.rttMs >= 0 ? Math.round(link.rttMs * 10) / 10 : null, heartbeats: link.sent, updated: new Date().toISOString() };
    const now = st.attached ? `attached ${seen}` : st.detached ? 'detached' : '';
    if (now !== state) {
      process.stderr.write(`${st.updated} ${st.attached ? `attached to ${o.hub}, the hub sees us as ${seen}` : st.detached ? `detached: no answer from ${o.hub} to a heartbeat and its retries at 1, 3 and 7 s (still trying)` : 'starting'}\n`);
      state = now;
    }
    if (o.status) {
      fs.writeFileSync(`${o.status}.tmp`, JSON.stringify(st));
      fs.renameSync(`${o.status}.tmp`, o.status);
    }
  };
  // the data path: set up for the VIPs given and those the hub's membership names (from its first answer on)
  let data: DataPath | null = null;
  const hubAddr = normAddr(hub.addr);
  let lastFrom = '';
  let fromHub = false;
  const serve = (vips: string[], how: string) => {
    const fresh = vips.filter((v) => !data?.has(v));
    if (fresh.length === 0) return;
    try {
      if (!data) {
        data = openDataPath(o.data ?? 'auto', (ip) => sock.send(ip, hub.port, hub.addr));
        process.stderr.write(`${new Date().toISOString()} data path: ${data.kind === 'tun' ? `TUN device ${data.dev}` : `veth pair ${data.dev} (raw socket in, libpcap out${o.data === 'veth' ? '' : `: no TUN device, ${loadNative().why}`})`}\n`);
      }
      for (const v of fresh) data.add(v);
      process.stderr.write(`${new Date().toISOString()} serving ${fresh.join(', ')} (${how}; on lo, replies routed back through the hub)\n`);
    } catch (e) {
      process.stderr.write(`tsvs agent: cannot serve ${fresh.join(', ')}: ${(e as Error).message}\n`);
      failed = (e as Error).message;
    }
  };
  let failed = '';
  if (o.vip?.length) {
    serve(o.vip, '--vip');
    if (failed) throw new UsageError(failed);
  }
  // the hub's membership is the whole list: VIPs it no longer names (and not given by --vip) are let go
  const membership = (m: unknown, how: string) => {
    const x = m as { services?: Array<{ vip?: unknown }> } | null;
    if (!x || !Array.isArray(x.services) || failed) return;
    const want = x.services.map((v) => String(v.vip)).filter((v) => isIP(v) !== 0);
    serve(want, how);
    const d = data as DataPath | null;
    for (const v of d ? [...d.vips] : []) {
      if (want.includes(v) || o.vip?.includes(v)) continue;
      d!.remove(v);
      process.stderr.write(`${new Date().toISOString()} no longer serving ${v} (${how}; taken off lo)\n`);
    }
  };
  // the control channel (KCP): opened when the hub answers, a new conversation each time the agent attaches
  let ctl: ControlEnd | null = null;
  const ctlWindow = new ReplayWindow();
  const started = Date.now();
  let lastStats = -Infinity;
  const stats = (now: number) => {
    lastStats = now;
    ctl?.post({ t: 'stats', uptime_s: Math.round((Date.now() - started) / 1000), rtt_ms: link.rttMs, vips: data ? [...data.vips] : [], ...(data ? data.counts() : {}) }, now);
  };
  sock.on('message', (b, rinfo) => {
    // (the source's text compared once per address, not normalised for every datagram)
    if (rinfo.address !== lastFrom) {
      lastFrom = rinfo.address;
      fromHub = normAddr(rinfo.address) === hubAddr;
    }
    if (b.length === 0 || rinfo.port !== hub.port || !fromHub) return;
    // data from the hub: a client's packet for a VIP here
    if (b[0]! < 0x80) {
      data?.deliver(b);
      return;
    }
    const now = Math.round(performance.now());
    if (b[0] === T_CTL_DOWN) {
      const d = openControl(b, T_CTL_DOWN, o.id!, key, ctlWindow);
      if (typeof d !== 'string' && ctl && d.conv === ctl.conv) ctl.input(d.kcp, now);
      return;
    }
    const attached = link.lastReplyMs > -Infinity && !link.detached;
    const r = link.receive(b, now);
    if (r) {
      seen = `${r.seen.addr}:${r.seen.port}`;
      membership(r.membership, 'from the hub');
      if (!attached || !ctl) {
        ctl = new ControlEnd(o.id!, key, T_CTL_UP, newConv(), (d) => sock.send(d, hub.port, hub.addr), (m) => {
          if (m.t === 'membership') membership(m, 'pushed on the control channel');
        });
        stats(now);
      }
    }
    write();
  });
  sock.on('error', (e) => process.stderr.write(`tsvs agent: ${e.message}\n`));
  const timer = setInterval(() => {
    const now = Math.round(performance.now());
    const hb = link.due(now);
    if (hb) sock.send(hb, hub.port, hub.addr);
    if (ctl) {
      ctl.tick(now);
      if (now - lastStats >= 2000) stats(now);
      // the hub stopped acknowledging: a new conversation at the next answer
      if (ctl.dead) ctl = null;
    }
    write(false);
  }, 20);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  clearInterval(timer);
  sock.close();
  (data as DataPath | null)?.close();
  return 0;
}

/** an address as the hub's parser and formatter write it (IPv6 compressed), to compare a datagram's source */
function normAddr(a: string): string {
  const w = addrToWords(a.replace(/^::ffff:/, ''));
  return formatAddr(w.words, w.v6 ? 6 : 4);
}
