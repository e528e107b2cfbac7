/**
 * `tsvs agent` (issue 18, first part): a remote server's side. It registers with the hub by authenticated
 * heartbeats (src/agents/heartbeat.ts) every second, learns the address the hub sees it at, and keeps its
 * state in a status file; `tsvs agent --check FILE` exits 0 while attached, 1 when detached (a lost heartbeat
 * retried at 1, 3 and 7 s with no answer). Not yet: the data path (GUE, the TUN device) and the KCP control
 * channel.
 */
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { AgentLink } from '../agents/heartbeat.js';
import { UsageError } from './errors.js';

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
  const link = new AgentLink(o.id, Buffer.from(hex, 'hex'));
  const sock = dgram.createSocket(hub.addr.includes(':') ? 'udp6' : 'udp4');
  let seen: string | null = null;
  let state = '';
  const write = () => {
    const st: AgentStatus = { id: o.id!, hub: o.hub!, attached: link.lastReplyMs > -Infinity && !link.detached, detached: link.detached, seen, rtt_ms: link.rttMs >= 0 ? Math.round(link.rttMs * 10) / 10 : null, heartbeats: link.counter, updated: new Date().toISOString() };
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
  sock.on('message', (b) => {
    const r = link.receive(b, Math.round(performance.now()));
    if (r) seen = `${r.seen.addr}:${r.seen.port}`;
    write();
  });
  sock.on('error', (e) => process.stderr.write(`tsvs agent: ${e.message}\n`));
  const timer = setInterval(() => {
    const hb = link.due(Math.round(performance.now()));
    if (hb) sock.send(hb, hub.port, hub.addr);
    write();
  }, 50);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  clearInterval(timer);
  sock.close();
  return 0;
}
