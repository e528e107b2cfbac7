/**
 * The agent's data path (issue 18): a client's packet from the hub (the inner IP packet of GUE variant 1)
 * into this host's own stack, addressed to a VIP the agent put on lo; the server's replies, from the VIP,
 * routed by a policy rule (table 7700: `from VIP lookup 7700`, a default route to the agent's device) back to
 * the agent, which sends them to the hub. Two ways to do it:
 *
 *   tun   a TUN device through tsvs's own native module (native/tsvs.c): packets written to it are received
 *         by the kernel as from a network; the replies routed to it are read in batches (libuv watches its
 *         fd). Needs the module built and /dev/net/tun.
 *   veth  without the native module: packets handed to the stack with a raw socket (to a local address,
 *         the kernel takes them as received), replies routed into a veth pair and captured there with
 *         libpcap (offloads off, so what is captured is whole).
 *
 * Everything the agent adds (VIPs on lo, rules, the route, the device) is its own and goes when it ends;
 * a VIP that was already on lo stays.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { addrToWords } from '../packet/addr.js';
import { loadNative } from '../native.js';

/** the policy routing table the replies go through */
export const TABLE = '7700';

export interface DataPath {
  readonly kind: 'tun' | 'veth';
  readonly dev: string;
  readonly vips: Set<string>;
  has(vip: string): boolean;
  add(vip: string): void;
  /** stop serving `vip`: what add() changed for it undone */
  remove(vip: string): void;
  deliver(b: Buffer): void;
  counts(): { delivered: number; returned: number; deliver_errors: number };
  close(): void;
}

abstract class Base implements DataPath {
  abstract readonly kind: 'tun' | 'veth';
  readonly vips = new Set<string>();
  protected delivered = 0;
  protected returned = 0;
  protected errors = 0;
  private readonly undo: string[][] = [];
  /** what undoes each VIP's changes (the device's are in `undo`) */
  private readonly vipUndo = new Map<string, string[][]>();
  /** where ip() records the undo of what it changes */
  private undoTo: string[][] = this.undo;
  /** the VIPs as words (v4) and hex (v6): a packet goes to the hub only from one of them */
  private readonly v4 = new Set<number>();
  private readonly v6 = new Set<string>();

  constructor(
    readonly dev: string,
    private readonly toHub: (ip: Buffer) => void,
  ) {}

  has(vip: string): boolean {
    return this.vips.has(vip);
  }

  /** serve `vip`: on lo, and its replies routed to this path's device */
  add(vip: string): void {
    const six = vip.includes(':');
    const fam = six ? '-6' : '-4';
    const pfx = `${vip}/${six ? 128 : 32}`;
    const undo: string[][] = [];
    this.vipUndo.set(vip, undo);
    this.undoTo = undo;
    try {
      this.ip(['addr', 'add', pfx, 'dev', 'lo'], ['addr', 'del', pfx, 'dev', 'lo']);
      this.ip([fam, 'rule', 'add', 'from', vip, 'lookup', TABLE], [fam, 'rule', 'del', 'from', vip, 'lookup', TABLE]);
    } finally {
      this.undoTo = this.undo;
    }
    this.ip([fam, 'route', 'replace', 'default', 'dev', this.dev, 'table', TABLE]);
    const w = addrToWords(vip).words;
    if (six) this.v6.add(Array.from(w, (x) => x.toString(16).padStart(8, '0')).join(''));
    else this.v4.add(w[0]!);
    this.vips.add(vip);
    this.added(six);
  }

  remove(vip: string): void {
    if (!this.vips.has(vip)) return;
    for (const u of (this.vipUndo.get(vip) ?? []).reverse()) spawnSync('ip', u);
    this.vipUndo.delete(vip);
    this.vips.delete(vip);
    const w = addrToWords(vip).words;
    if (vip.includes(':')) this.v6.delete(Array.from(w, (x) => x.toString(16).padStart(8, '0')).join(''));
    else this.v4.delete(w[0]!);
  }

  /** (a subclass's own set-up for a VIP of that family) */
  protected added(_six: boolean): void {}

  /** the IP packet at `off` to `end` of `b`, to the hub when its source is a VIP here */
  protected reply(b: Buffer, off: number, end: number): void {
    if (end - off < 20) return;
    const ver = b[off]! >> 4;
    if (ver === 4 ? this.v4.has(b.readUInt32BE(off + 12)) : ver === 6 && end - off >= 40 && this.v6.has(b.toString('hex', off + 8, off + 24))) {
      this.returned++;
      this.toHub(off === 0 && end === b.length ? b : Buffer.from(b.subarray(off, end)));
    }
  }

  abstract deliver(b: Buffer): void;

  counts(): { delivered: number; returned: number; deliver_errors: number } {
    return { delivered: this.delivered, returned: this.returned, deliver_errors: this.errors };
  }

  close(): void {
    for (const vip of [...this.vips].reverse()) this.remove(vip);
    for (const u of this.undo.reverse()) spawnSync('ip', u);
    this.undo.length = 0;
  }

  protected ip(args: string[], undoArgs?: string[]): void {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status === 0) {
      if (undoArgs) this.undoTo.push(undoArgs);
      return;
    }
    if (/File exists|already assigned/.test(r.stderr ?? '')) return;
    throw new Error(`ip ${args.join(' ')}: ${r.stderr?.trim() || r.error?.message || `exit ${r.status}`}`);
  }

  protected sysctl(key: string, value: string): void {
    const r = spawnSync('sysctl', ['-qw', `${key}=${value}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`sysctl ${key}=${value}: ${r.stderr?.trim() || r.error?.message || `exit ${r.status}`}`);
  }
}

/** the TUN device's path (needs tsvs's native module) */
class TunPath extends Base {
  readonly kind = 'tun' as const;
  private readonly fd: number;
  private readonly poll: unknown;
  private readonly native: NonNullable<ReturnType<typeof loadNative>['mod']>;

  constructor(toHub: (ip: Buffer) => void) {
    super(`tsvst${process.pid % 100000}`, toHub);
    const n = loadNative();
    if (!n.mod) throw new Error(`no TUN device: ${n.why}`);
    this.native = n.mod;
    const t = this.native.tunOpen(this.dev);
    this.fd = t.fd;
    try {
      this.ip(['link', 'set', this.dev, 'up']);
      // the clients' packets come in on the TUN device from addresses routed elsewhere
      this.sysctl(`net.ipv4.conf.${this.dev}.rp_filter`, '0');
    } catch (e) {
      fs.closeSync(this.fd);
      throw e;
    }
    this.poll = this.native.pollStart(this.fd, (pkts) => {
      for (const p of pkts) this.reply(p, 0, p.length);
    }, 64);
  }

  deliver(b: Buffer): void {
    try {
      fs.writeSync(this.fd, b);
      this.delivered++;
    } catch {
      this.errors++;
    }
  }

  override close(): void {
    this.native.pollStop(this.poll);
    fs.closeSync(this.fd);
    super.close();
  }
}

interface PcapLike {
  createSession(dev: string, o: { filter?: string; snap_length?: number; buffer_timeout?: number; promiscuous?: boolean }): { on(ev: 'packet', f: (p: { buf: Buffer; header: Buffer }) => void): void; close(): void };
}
interface RawSock {
  send(b: Buffer, off: number, len: number, addr: string, cb: (e: Error | null) => void): void;
  close(): void;
}
interface RawLike {
  createSocket(o: { protocol: number; addressFamily?: number }): RawSock;
  AddressFamily: { IPv4: number; IPv6: number };
}

/** the veth pair's path (raw sockets in, libpcap out) */
class VethPath extends Base {
  readonly kind = 'veth' as const;
  private readonly raw: RawLike;
  private readonly s4: RawSock;
  private s6: RawSock | null = null;
  private readonly session: ReturnType<PcapLike['createSession']>;

  constructor(toHub: (ip: Buffer) => void) {
    super(`tsvsa${process.pid % 100000}`, toHub);
    const req = createRequire(import.meta.url);
    let pcap: PcapLike;
    try {
      this.raw = req('raw-socket') as RawLike;
      pcap = req('pcap') as PcapLike;
    } catch (e) {
      throw new Error(`the veth data path needs the pcap and raw-socket modules (${(e as Error).message.split('\n')[0]})`);
    }
    const dev = this.dev;
    this.ip(['link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}p`], ['link', 'del', dev]);
    try {
      this.ip(['link', 'set', dev, 'arp', 'off', 'up']);
      // what is captured on the veth must be whole: no checksum left to the "hardware", no 64 kB segments
      const eth = spawnSync('ethtool', ['-K', dev, 'tx', 'off', 'tso', 'off', 'gso', 'off'], { encoding: 'utf8' });
      if (eth.status !== 0) throw new Error(`ethtool -K ${dev} tx off tso off gso off: ${eth.stderr?.trim() || eth.error?.message || `exit ${eth.status}`} (install ethtool)`);
      this.ip(['link', 'set', `${dev}p`, 'up']);
      this.s4 = this.raw.createSocket({ protocol: 255, addressFamily: this.raw.AddressFamily.IPv4 });
      this.session = pcap.createSession(dev, { filter: 'ip or ip6', snap_length: 65535, buffer_timeout: 1, promiscuous: false });
    } catch (e) {
      super.close();
      throw e;
    }
    this.session.on('packet', (p) => {
      const caplen = p.header.readUInt32LE(8);
      if (caplen > 14) this.reply(p.buf, 14, caplen);
    });
  }

  protected override added(six: boolean): void {
    if (six) this.s6 ??= this.raw.createSocket({ protocol: 255, addressFamily: this.raw.AddressFamily.IPv6 });
  }

  deliver(b: Buffer): void {
    const v6 = b[0]! >> 4 === 6;
    const done = (e: Error | null) => {
      if (e) this.errors++;
    };
    if (v6 && this.s6 && b.length >= 40) {
      const w: string[] = [];
      for (let i = 24; i < 40; i += 2) w.push(b.readUInt16BE(i).toString(16));
      this.s6.send(b, 0, b.length, w.join(':'), done);
    } else if (!v6 && b.length >= 20) this.s4.send(b, 0, b.length, `${b[16]}.${b[17]}.${b[18]}.${b[19]}`, done);
    else return;
    this.delivered++;
  }

  override close(): void {
    this.session.close();
    this.s4.close();
    this.s6?.close();
    super.close();
  }
}

/** the data path `kind` (auto: the TUN device when the native module is there, else the veth pair) */
export function openDataPath(kind: 'auto' | 'tun' | 'veth', toHub: (ip: Buffer) => void): DataPath {
  if (kind === 'veth' || (kind === 'auto' && !loadNative().mod)) return new VethPath(toHub);
  return new TunPath(toHub);
}
