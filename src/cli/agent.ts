/**
 * `tsvs agent` (issue 18, first part): a remote server's side. It registers with the hub by authenticated
 * heartbeats (src/agents/heartbeat.ts) every second, learns the address the hub sees it at, and keeps its
 * state in a status file; `tsvs agent --check FILE` exits 0 while attached, 1 when detached (a lost heartbeat
 * retried at 1, 3 and 7 s with no answer). Not yet: the data path (GUE, the TUN device) and the KCP control
 * channel.
 */
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
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
  /** the VIPs it serves: put on lo, their replies routed back through the hub (needs root) */
  vip?: string[];
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
  const data = o.vip?.length ? dataPath(o.vip, (ip) => sock.send(ip, hub.port, hub.addr)) : null;
  sock.on('message', (b) => {
    // data from the hub: a client's packet for a VIP here (only from the hub's address and port)
    if (b.length > 0 && b[0]! < 0x80) {
      data?.deliver(b);
      return;
    }
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
  data?.close();
  return 0;
}

interface PcapLike {
  createSession(dev: string, o: { filter?: string; snap_length?: number; buffer_timeout?: number; promiscuous?: boolean }): { on(ev: 'packet', f: (p: { buf: Buffer; header: Buffer }) => void): void; close(): void };
}
interface RawLike {
  createSocket(o: { protocol: number; addressFamily?: number }): { send(b: Buffer, off: number, len: number, addr: string, cb: (e: Error | null) => void): void; close(): void };
  AddressFamily: { IPv4: number; IPv6: number };
}

/**
 * The agent's data path without a TUN device: a client's packet from the hub is handed to this host's own
 * stack with a raw socket (to a VIP on lo, the kernel takes it as received); the server's replies, from the
 * VIP, are routed by a policy rule into one end of a veth pair, captured there, and sent to the hub. The
 * addresses, the rule and the veth are this run's and go when it ends (a VIP already on lo stays).
 */
function dataPath(vips: string[], toHub: (ip: Buffer) => void): { deliver(b: Buffer): void; close(): void } {
  const dev = `tsvsa${process.pid % 100000}`;
  const undo: string[][] = [];
  const ip = (args: string[], undoArgs?: string[]) => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status === 0) {
      if (undoArgs) undo.push(undoArgs);
      return;
    }
    if (/File exists|already assigned/.test(r.stderr)) return;
    throw new UsageError(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.status}`}`);
  };
  for (const v of vips) ip(['addr', 'add', `${v}/${v.includes(':') ? 128 : 32}`, 'dev', 'lo'], ['addr', 'del', `${v}/${v.includes(':') ? 128 : 32}`, 'dev', 'lo']);
  ip(['link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}p`], ['link', 'del', dev]);
  ip(['link', 'set', dev, 'arp', 'off', 'up']);
  // what is captured on the veth must be whole: no checksum left to the "hardware", no 64 kB segments
  const eth = spawnSync('ethtool', ['-K', dev, 'tx', 'off', 'tso', 'off', 'gso', 'off'], { encoding: 'utf8' });
  if (eth.status !== 0) throw new UsageError(`ethtool -K ${dev} tx off tso off gso off: ${eth.stderr?.trim() || eth.error?.message || `exit ${eth.status}`} (install ethtool)`);
  ip(['link', 'set', `${dev}p`, 'up']);
  for (const v of vips) {
    const fam = v.includes(':') ? '-6' : '-4';
    ip([fam, 'rule', 'add', 'from', v, 'lookup', TABLE], [fam, 'rule', 'del', 'from', v, 'lookup', TABLE]);
    ip([fam, 'route', 'replace', 'default', 'dev', dev, 'table', TABLE]);
  }
  const req = createRequire(import.meta.url);
  const raw = req('raw-socket') as RawLike;
  const pcap = req('pcap') as PcapLike;
  const s4 = raw.createSocket({ protocol: 255, addressFamily: raw.AddressFamily.IPv4 });
  const s6 = vips.some((v) => v.includes(':')) ? raw.createSocket({ protocol: 255, addressFamily: raw.AddressFamily.IPv6 }) : null;
  const session = pcap.createSession(dev, { filter: vips.map((v) => `src host ${v}`).join(' or '), snap_length: 65535, buffer_timeout: 1, promiscuous: false });
  session.on('packet', (p) => {
    const caplen = p.header.readUInt32LE(8);
    if (caplen > 14) toHub(Buffer.from(p.buf.subarray(14, caplen)));
  });
  return {
    deliver(b) {
      const v6 = b[0]! >> 4 === 6;
      if (v6 && s6 && b.length >= 40) {
        const w: string[] = [];
        for (let i = 24; i < 40; i += 2) w.push(b.readUInt16BE(i).toString(16));
        s6.send(b, 0, b.length, w.join(':'), () => {});
      } else if (!v6 && b.length >= 20) s4.send(b, 0, b.length, `${b[16]}.${b[17]}.${b[18]}.${b[19]}`, () => {});
    },
    close() {
      session.close();
      s4.close();
      s6?.close();
      for (const u of undo.reverse()) spawnSync('ip', u);
    },
  };
}

/** the policy routing table the agent's replies go through */
const TABLE = '7700';
