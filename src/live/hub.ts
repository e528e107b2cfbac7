/**
 * The agents' hub in `tsvs run` (issue 18): one UDP socket on `agents.listen` for the agents' heartbeats
 * (src/agents/heartbeat.ts), answered with the address the hub saw; agents silent for `agents.timeout` go
 * down; each agent's control channel (KCP, src/agents/control.ts) pushes its membership when it changes and
 * brings its statistics. Control datagrams start with a byte >= 0x80, GUE data (the inner IP packet) lower.
 */
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { AgentRegistry, type AgentState } from '../agents/heartbeat.js';
import { ControlEnd, openControl, T_CTL_DOWN, T_CTL_UP } from '../agents/control.js';
import { ReplayWindow } from '../agents/window.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Service } from '../service/services.js';

export class Hub {
  readonly registry: AgentRegistry;
  private readonly sock: dgram.Socket;
  private readonly timer: NodeJS.Timeout;
  /** data datagrams: from an agent up at that endpoint (sent on to the client), and from anyone else (dropped) */
  dataIn = 0;
  dataRefused = 0;
  dataOut = 0;
  /** told when an agent goes up or down (its servers take connections or stop) */
  onAgent: ((id: string, up: boolean) => void) | null = null;
  /** an agent's reply (an IP packet for a client), and the agent it came from */
  onData: ((b: Buffer, id: string) => void) | null = null;
  /** what agent `id` serves, sent in each heartbeat's reply: the agent puts these VIPs up on its host */
  membership: ((id: string) => Membership) | null = null;
  /** each agent's control channel (KCP), the membership last pushed on it, and the statistics it last reported */
  private readonly control = new Map<string, { end: ControlEnd; pushed: string; stats: Record<string, unknown> | null }>();
  private readonly keys = new Map<string, Uint8Array>();
  /** the agents as a list (the registry's map, fixed at start), and the one the last data datagram came from */
  private readonly agentList: AgentState[];
  private lastData: AgentState | null = null;
  /** each agent's control datagrams' replay window, across its conversations */
  private readonly ctlWindows = new Map<string, ReplayWindow>();
  private readonly ctlTimer: NodeJS.Timeout;

  constructor(
    cfg: NonNullable<Config['agents']>,
    private readonly log: Logger,
  ) {
    const keys = this.keys;
    for (const [id, hex] of Object.entries(cfg.keys)) keys.set(id, Buffer.from(hex, 'hex'));
    for (const [id, file] of Object.entries(cfg.key_files)) {
      const hex = fs.readFileSync(file, 'utf8').trim();
      if (!/^([0-9a-fA-F]{2}){16,64}$/.test(hex)) throw new Error(`agents.key_files.${id}: ${file} does not hold 16-64 bytes of hex`);
      keys.set(id, Buffer.from(hex, 'hex'));
    }
    this.registry = new AgentRegistry(keys, cfg.timeout * 1000, (id) => this.membership?.(id) ?? { services: [] });
    this.agentList = [...this.registry.agents.values()];
    const m = /^\[?([0-9a-fA-F:.]+?)\]?:(\d+)$/.exec(cfg.listen)!;
    this.sock = dgram.createSocket(m[1]!.includes(':') ? 'udp6' : 'udp4');
    this.sock.on('error', (e) => this.log.error('agents socket', { error: e.message }));
    this.sock.on('message', (b, rinfo) => this.message(b, rinfo));
    this.sock.bind(Number(m[2]), m[1]);
    this.timer = setInterval(() => {
      for (const id of this.registry.expire(Date.now())) {
        this.log.warn('agent down', { agent: id, why: `no heartbeat for ${cfg.timeout} s` });
        this.control.delete(id);
        this.onAgent?.(id, false);
      }
      this.push();
    }, 200);
    this.timer.unref();
    this.ctlTimer = setInterval(() => {
      const now = Math.round(performance.now());
      for (const [id, c] of this.control) {
        c.end.tick(now);
        if (c.end.dead) {
          this.log.warn('agent control channel lost', { agent: id, conv: c.end.conv });
          this.control.delete(id);
        }
      }
    }, 20);
    this.ctlTimer.unref();
  }

  private message(b: Buffer, rinfo: dgram.RemoteInfo): void {
    if (b.length === 0) return;
    if (b[0]! < 0x80) {
      // data (GUE variant 1: the inner IP packet itself), only from an agent that is up, at its endpoint (the
      // agent of the last data datagram first: a flow's datagrams come in runs)
      let from: AgentState | null = null;
      if (atEndpoint(this.lastData, rinfo)) from = this.lastData;
      else for (const a of this.agentList) if (atEndpoint(a, rinfo)) from = this.lastData = a;
      if (from === null || (b[0]! >> 4 !== 4 && b[0]! >> 4 !== 6)) {
        this.dataRefused++;
        return;
      }
      this.dataIn++;
      this.onData?.(b, from.id);
      return;
    }
    if (b[0] === T_CTL_UP) {
      this.controlIn(b);
      return;
    }
    const src = { addr: rinfo.address, port: rinfo.port };
    const id = b.length > 3 ? b.subarray(3, 3 + b[2]!).toString('utf8') : '';
    const before = this.registry.agents.get(id);
    const was = before ? { up: before.up, endpoint: before.endpoint } : null;
    const r = this.registry.handle(b, src, Date.now());
    if ('drop' in r) {
      this.log.debug('agent datagram refused', { from: `${src.addr}:${src.port}`, why: r.drop });
      return;
    }
    if (!was?.up) {
      this.log.info('agent up', { agent: id, endpoint: `${src.addr}:${src.port}` });
      this.onAgent?.(id, true);
    }
    else if (was.endpoint && (was.endpoint.addr !== src.addr || was.endpoint.port !== src.port)) this.log.info('agent moved', { agent: id, from: `${was.endpoint.addr}:${was.endpoint.port}`, to: `${src.addr}:${src.port}` });
    this.sock.send(r.reply, rinfo.port, rinfo.address);
  }

  /**
   * A control datagram from an agent: into its conversation, or (authentic, fresh, with a new conversation
   * number: the agent restarted or attached again) a new one, which is sent the membership at once. The
   * answers go to the endpoint the heartbeats taught.
   */
  private controlIn(b: Buffer): void {
    const id = b.length > 3 ? b.subarray(3, 3 + b[2]!).toString('utf8') : '';
    const key = this.keys.get(id);
    if (!key) {
      this.registry.drops.unknown_id++;
      return;
    }
    let w = this.ctlWindows.get(id);
    if (!w) this.ctlWindows.set(id, (w = new ReplayWindow()));
    const d = openControl(b, T_CTL_UP, id, key, w);
    if (typeof d === 'string') {
      this.registry.drops[d === 'kcp' ? 'malformed' : d]++;
      return;
    }
    let c = this.control.get(id);
    if (!c || c.end.conv !== d.conv) {
      const entry = { end: null as unknown as ControlEnd, pushed: '', stats: null as Record<string, unknown> | null };
      entry.end = new ControlEnd(id, key, T_CTL_DOWN, d.conv, (x) => this.sendControl(id, x), (m) => {
        if (m.t === 'stats') entry.stats = m;
      });
      this.control.set(id, entry);
      c = entry;
      this.log.info('agent control channel', { agent: id, conv: d.conv });
    }
    if (c.end.input(d.kcp, Math.round(performance.now())) !== null) this.registry.drops.malformed++;
    this.push();
  }

  private sendControl(id: string, d: Buffer): void {
    const a = this.registry.agents.get(id);
    if (a?.endpoint) this.sock.send(d, a.endpoint.port, a.endpoint.addr);
  }

  /** push each agent's membership on its control channel when it changed (or was never sent on it) */
  private push(): void {
    if (!this.membership) return;
    const now = Math.round(performance.now());
    for (const [id, c] of this.control) {
      const m = JSON.stringify(this.membership(id));
      if (m === c.pushed) continue;
      if (c.end.post({ t: 'membership', ...(JSON.parse(m) as object) }, now)) c.pushed = m;
    }
  }

  /** a client's packet to agent `id` (as it is: GUE variant 1), from this socket so that the agent's NAT lets it in */
  sendData(id: string, buf: Uint8Array, off: number, len: number): 'agent_down' | null {
    const a = this.registry.agents.get(id);
    if (!a?.up || !a.endpoint) return 'agent_down';
    this.sock.send(Buffer.from(buf.subarray(off, off + len)), a.endpoint.port, a.endpoint.addr);
    this.dataOut++;
    return null;
  }

  /** agent `id`'s latest heartbeat round trip (ms) as it reported it on the control channel; null while down or unsaid */
  rttOf(id: string): number | null {
    if (!this.registry.agents.get(id)?.up) return null;
    const r = this.control.get(id)?.stats?.rtt_ms;
    return typeof r === 'number' && Number.isFinite(r) && r >= 0 ? r : null;
  }

  list(): Array<AgentState & { last_heartbeat_ms_ago: number | null; control: ReturnType<ControlEnd['stats']> | null; reported: Record<string, unknown> | null }> {
    const now = Date.now();
    return [...this.registry.agents.values()].map((a) => {
      const c = this.control.get(a.id);
      return { ...a, lastMs: a.lastMs, last_heartbeat_ms_ago: Number.isFinite(a.lastMs) ? now - a.lastMs : null, control: c ? c.end.stats() : null, reported: c?.stats ?? null };
    });
  }

  close(): void {
    clearInterval(this.timer);
    clearInterval(this.ctlTimer);
    this.sock.close();
  }
}

/** is `a` up, at the endpoint a datagram came from */
function atEndpoint(a: AgentState | null, rinfo: dgram.RemoteInfo): boolean {
  return a !== null && a.up && a.endpoint !== null && a.endpoint.port === rinfo.port && a.endpoint.addr === rinfo.address;
}

/** an agent's membership: the services it is a server of (the VIP, and the port its server listens on) */
export interface Membership {
  services: Array<{ proto: 'tcp' | 'udp'; vip: string; port: number }>;
}

export function membershipOf(id: string, services: Service[]): Membership {
  const out: Membership['services'] = [];
  for (const s of services) {
    if (s.cfg.vip === undefined) continue;
    s.agentOf.forEach((a, i) => {
      if (a === id) out.push({ proto: s.cfg.proto, vip: s.cfg.vip!, port: s.serverPort[i] || s.port });
    });
  }
  return { services: out };
}

/** may agent `id` send IP packet `b` on to a client: its source is the VIP of a service the agent is a server of */
export function fromOwnVip(b: Uint8Array, id: string, services: Service[]): boolean {
  const v6 = b.length > 0 && b[0]! >> 4 === 6;
  if (b.length < (v6 ? 40 : 20)) return false;
  for (const s of services) if (s.v6 === v6 && s.agentOf.includes(id) && sameSrc(b, s.vip, v6)) return true;
  return false;
}

function sameSrc(b: Uint8Array, w: Uint32Array, v6: boolean): boolean {
  const at = v6 ? 8 : 12;
  for (let i = 0; i < (v6 ? 4 : 1); i++) {
    const o = at + 4 * i;
    if ((((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0) !== w[i]) return false;
  }
  return true;
}
