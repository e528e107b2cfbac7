/**
 * Nearest-region selection, live: the probe plans of src/lb/regions.ts on the engine's timeline (the daemon's
 * one timer), probes sent from the LB itself to each region's servers (rotating over them), never on the
 * packet path: a plan starts on a tick, its probes run as timers and sockets, and its report goes to every
 * service with region_select when the last try has answered or timed out. Kinds: `tcp` (connect time),
 * `http` (the time of a GET of `probe_path` on a connection already open, to its status line), `icmp` (an
 * echo request to the server's address, through the optional raw-socket module). An agent's server is not
 * probed: its agent's latest heartbeat round trip stands for it.
 */
import * as net from 'node:net';
import { loadNative } from '../capture/live.js';
import { finish, sum16 } from '../packet/checksum.js';
import type { Timeline } from '../timer/timeline.js';
import type { Service } from '../service/services.js';
import { planFor, type HomeChange, type RegionsConfig, type Report } from '../lb/regions.js';

/** a try is a failure after this long */
export const PROBE_TIMEOUT_MS = 1000;

interface RawSocketLike {
  close(): void;
  on(ev: 'message', f: (b: Buffer, source: string) => void): void;
  on(ev: 'error', f: (e: Error) => void): void;
  send(b: Buffer, off: number, len: number, addr: string, cb: (e: Error | null) => void): void;
}
interface RawModule {
  createSocket(o: { protocol: number; addressFamily?: number }): RawSocketLike;
  AddressFamily: { IPv4: number; IPv6: number };
}

/** ICMP echo from the LB: one raw socket per family, echo id = this process, replies matched by sequence number */
class Pinger {
  private readonly socks: Array<RawSocketLike | null> = [null, null];
  private seq = 0;
  private readonly waiting = new Map<number, (reply: boolean) => void>();
  private readonly id = process.pid & 0xffff;

  private sock(v6: boolean): RawSocketLike {
    const k = v6 ? 1 : 0;
    let s = this.socks[k];
    if (s) return s;
    const raw = loadNative<RawModule>('raw-socket', 'ICMP probes (regions.probe: icmp)');
    s = raw.createSocket({ protocol: v6 ? 58 : 1, addressFamily: v6 ? raw.AddressFamily.IPv6 : raw.AddressFamily.IPv4 });
    s.on('error', () => {});
    s.on('message', (b) => {
      // IPv4 raw sockets hand over the IP header; ICMPv6 ones do not
      const o = v6 ? 0 : (b[0]! & 15) * 4;
      if (b.length < o + 8 || b[o] !== (v6 ? 129 : 0) || b.readUInt16BE(o + 4) !== this.id) return;
      const f = this.waiting.get(b.readUInt16BE(o + 6));
      if (f) f(true);
    });
    this.socks[k] = s;
    return s;
  }

  close(): void {
    for (const s of this.socks) s?.close();
    this.socks.fill(null);
    for (const f of this.waiting.values()) f(false);
  }

  ping(addr: string, timeoutMs: number): Promise<number | null> {
    const v6 = addr.includes(':');
    const seq = (this.seq = (this.seq + 1) & 0xffff);
    const b = Buffer.alloc(16);
    b[0] = v6 ? 128 : 8;
    b.writeUInt16BE(this.id, 4);
    b.writeUInt16BE(seq, 6);
    // IPv4: the checksum is ours; ICMPv6: the kernel computes it (the pseudo-header has addresses we do not pick)
    if (!v6) b.writeUInt16BE(finish(sum16(b, 0, b.length)), 2);
    return new Promise((resolve) => {
      const t0 = performance.now();
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.waiting.delete(seq);
        resolve(ok ? performance.now() - t0 : null);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.waiting.set(seq, done);
      try {
        this.sock(v6).send(b, 0, b.length, addr, (e) => e && done(false));
      } catch {
        done(false);
      }
    });
  }
}

let pinger: Pinger | null = null;

/** close the ICMP probes' raw sockets (they would keep the process alive): at the daemon's stop */
export function closeProbes(): void {
  pinger?.close();
  pinger = null;
}

/** one round trip to addr:port in ms (null: no answer within the timeout); icmp: an echo to addr */
export function rtt(addr: string, port: number, kind: 'tcp' | 'http' | 'icmp', path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<number | null> {
  if (kind === 'icmp') return (pinger ??= new Pinger()).ping(addr, timeoutMs);
  return new Promise((resolve) => {
    let done = false;
    let t0 = performance.now();
    const s = net.createConnection({ host: addr, port });
    const finish = (v: number | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    s.on('error', () => finish(null));
    s.on('connect', () => {
      if (kind === 'tcp') return finish(performance.now() - t0);
      t0 = performance.now();
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${addr}\r\nUser-Agent: tsvs-region-probe\r\nConnection: close\r\n\r\n`);
      s.setEncoding('latin1');
      let head = '';
      s.on('data', (d: string) => {
        head += d;
        if (/^HTTP\/\d\.\d \d{3}/.test(head)) finish(performance.now() - t0);
        else if (head.length > 64) finish(null);
      });
    });
  });
}

export class LiveRegionProber {
  private nextUs = -1;
  private lastFullUs = -Infinity;
  private last: Report | null = null;
  private inFlight = false;
  private readonly rotate = new Map<string, number>();
  plans = 0;

  constructor(
    private readonly services: () => Service[],
    private readonly cfg: RegionsConfig,
    private readonly time: Timeline,
    /** told every change of home */
    private readonly onChange: (service: Service, c: HomeChange) => void,
    private readonly probe = rtt,
    /**
     * an agent's latest heartbeat round trip (ms), or null while it is down or has not said: the probe of an
     * agent's server (its address is only a stand-in: the path to it is the agent's, through its NAT)
     */
    private readonly agentRtt: (id: string) => number | null = () => null,
  ) {
    time.every(this.tick);
  }

  private readonly tick = (_tick: number, nowUs: number): void => {
    const list = this.services();
    for (const s of list) {
      const r = s.regions!;
      if (r.home !== null && !r.usable(r.home)) this.watch(s, () => r.recheck(nowUs / 1e6));
    }
    if (this.nextUs < 0) this.nextUs = nowUs;
    if (nowUs < this.nextUs || this.inFlight || list.length === 0) return;
    const full = nowUs - this.lastFullUs >= this.cfg.full_interval * 1e6;
    if (full) this.lastFullUs = nowUs;
    this.nextUs = nowUs + this.cfg.incremental_interval * 1e6;
    this.inFlight = true;
    void this.run(list, full).finally(() => (this.inFlight = false));
  };

  /** run `f` and report the changes of home it made */
  private watch(s: Service, f: () => void): void {
    const n = s.regions!.changes.length;
    f();
    for (const c of s.regions!.changes.slice(n)) this.onChange(s, c);
  }

  private async run(list: Service[], full: boolean): Promise<void> {
    const regions = [...new Set(list.flatMap((s) => s.regions!.regions))];
    const byRegion = planFor(this.cfg, regions, full, this.last, list.map((s) => s.regions!.home));
    // each region's servers (of every service that has it), probed in turn
    const targets = new Map<string, Array<{ addr: string; port: number; agent?: string }>>();
    for (const s of list) {
      s.cfg.servers.forEach((x) => {
        if (!x.region) return;
        const l = targets.get(x.region) ?? [];
        if (!l.some((y) => y.addr === x.addr && y.port === (x.port ?? s.port) && y.agent === x.agent)) l.push({ addr: x.addr, port: x.port ?? s.port, ...(x.agent !== undefined ? { agent: x.agent } : {}) });
        targets.set(x.region, l);
      });
    }
    const rep: Report = new Map();
    await Promise.all(
      [...byRegion].map(async ([r, probes]) => {
        const tl = targets.get(r) ?? [];
        const answers = await Promise.all(
          probes.map(async (p) => {
            await new Promise((res) => setTimeout(res, p.delayMs));
            if (tl.length === 0) return null;
            const k = this.rotate.get(r) ?? 0;
            this.rotate.set(r, k + 1);
            const t = tl[k % tl.length]!;
            return t.agent !== undefined ? this.agentRtt(t.agent) : this.probe(t.addr, t.port, this.cfg.probe, this.cfg.probe_path);
          }),
        );
        const ok = answers.filter((a): a is number => a !== null);
        rep.set(r, ok.length ? Math.min(...ok) : null);
      }),
    );
    this.plans++;
    this.last = rep;
    // the services now (a reload may have replaced them while the probes ran)
    for (const s of this.services()) this.watch(s, () => s.regions!.report(this.time.nowUs / 1e6, rep));
  }
}
