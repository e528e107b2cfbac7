/**
 * Live transmit: what the engine emits leaves through a raw IP socket (IPPROTO_RAW, so the IP header is the
 * engine's own — IP_HDRINCL for IPv4, the IPv6 equivalent) and the kernel routes it; direct routing's frames
 * are injected at layer 2 through libpcap on the interface the server is reached by, with that interface's
 * MAC as their source (as the kernel's neighbour output would). Sends are asynchronous: each packet is copied
 * (the capture buffer is reused) and at most `txQueue` wait; beyond that a packet is dropped and counted.
 */
import * as os from 'node:os';
import { PacketRecord } from '../capture/record.js';
import type { Sink } from '../engine.js';
import type { NotEmittedReason } from './xmit.js';
import { loadNative } from '../capture/live.js';
import type { Native } from '../native.js';

interface RawSocketLike {
  send(b: Buffer, off: number, len: number, addr: string, after: (err: Error | null) => void): void;
  pauseRecv(): void;
  close(): void;
}
interface RawModule {
  createSocket(o: { protocol: number; addressFamily: number }): RawSocketLike;
  AddressFamily: { IPv4: number; IPv6: number };
}

export interface L2Port {
  /** the interface's own MAC (the source of injected frames) */
  mac: Uint8Array;
  inject(frame: Buffer): void;
  /** the interface's index: on the batched path, frames leave with the batch's sendmmsg on a packet socket */
  ifindex?: number;
}

/** packets up to this size are copied into pooled buffers for the asynchronous send; bigger ones get their own */
const POOLED = 2048;

export class LiveSink implements Sink {
  private sock4: RawSocketLike | null = null;
  private sock6: RawSocketLike | null = null;
  inFlight = 0;
  /** DR: the port each server MAC is reached by (key: the MAC as text) */
  readonly l2Ports = new Map<string, L2Port>();
  /** copies waiting to be sent, in order (raw-socket sends and calls back first in, first out) */
  private readonly queued: Buffer[] = [];
  private readonly pool: Buffer[] = [];
  /** destination address text by IPv4 address (raw-socket takes a string): flows repeat their destination */
  private readonly dst4 = new Map<number, string>();
  /**
   * One callback for every send: the oldest copy is the one done. (raw-socket also calls back at once, out of
   * order, for an invalid address or length — which this sink never passes; a copy whose send failed is not
   * pooled again, so a mix-up could only retire a buffer, never reuse one still queued.)
   */
  private readonly done = (err: Error | null): void => {
    this.inFlight--;
    const b = this.queued.shift();
    if (b && !err && b.length === POOLED) this.pool.push(b);
    if (err) {
      this.errorsNow++;
      this.lastErrorNow = err.message;
    } else this.sentNow++;
  };

  constructor(private readonly txQueue: number) {}

  /**
   * Batched transmit (issue 19, with the native module): packets are copied into one arena as they are
   * emitted and leave together with sendmmsg when the batch ends (flush(): after each capture batch, and
   * soon after an emit outside one — a timer's, the control socket's)
   */
  private batch: { tx: unknown; mod: BatchedTx; arena: Buffer; desc: Int32Array; n: number; used: number; scheduled: boolean } | null = null;
  /** sendmmsg batches and the packets they carried */
  txBatches = 0;
  txPackets = 0;

  /** room left in the transmit queue */
  spare(): number {
    return this.batch ? this.txQueue - this.batch.n : this.txQueue - this.inFlight;
  }

  /** send in batches through the native module's sockets (instead of raw-socket's one asynchronous send per packet) */
  openBatched(tx: unknown, mod: BatchedTx): void {
    this.batch = { tx, mod, arena: Buffer.allocUnsafe(ARENA), desc: new Int32Array(4 * Math.min(this.txQueue, 65536)), n: 0, used: 0, scheduled: false };
  }

  /** packets sent, and failed (socket buffer full, no route...): with transmit threads, what they have done so far */
  get sent(): number {
    this.collect();
    return this.sentNow;
  }
  get errors(): number {
    this.collect();
    return this.errorsNow;
  }
  get lastError(): string {
    this.collect();
    return this.lastErrorNow;
  }
  private sentNow = 0;
  private errorsNow = 0;
  private lastErrorNow = '';

  /** the transmit threads' counts since the last look */
  private collect(): void {
    const b = this.batch;
    if (!b) return;
    const [sent, failed, errno, queued] = b.mod.txCollect(b.tx);
    this.count(sent, failed, errno);
    this.queuedNow = queued;
  }
  private queuedNow = 0;

  /** packets handed to the kernel's send but not yet through it: raw-socket's in flight, or those queued on the transmit threads */
  get pending(): number {
    if (!this.batch) return this.inFlight;
    this.collect();
    return this.queuedNow;
  }

  private count(sent: number, failed: number, errno: number): void {
    this.sentNow += sent;
    if (failed > 0) {
      this.errorsNow += failed;
      this.lastErrorNow = errnoName(errno);
    }
  }

  get batched(): boolean {
    return this.batch !== null;
  }

  /** send what the batch holds */
  flush(): void {
    const b = this.batch;
    if (!b || b.n === 0) return;
    const [sent, failed, errno] = b.mod.txSend(b.tx, b.arena, b.desc, b.n);
    this.count(sent, failed, errno);
    this.txBatches++;
    this.txPackets += b.n;
    b.n = 0;
    b.used = 0;
  }

  /** batched: `n` bytes at `from` into the arena, to leave with the batch (kind 4, 6: an IP packet; 2: a frame on interface `ifindex`) */
  private queue(buf: Uint8Array, from: number, n: number, kind: number, ifindex: number): NotEmittedReason | null {
    const b = this.batch!;
    if (b.used + n > b.arena.length || 4 * (b.n + 1) > b.desc.length) this.flush();
    if (n > b.arena.length) return 'tx_no_ip_header';
    // (Buffer's copy takes any Uint8Array as its source: no view object per packet, as subarray() would make)
    COPY.call(buf, b.arena, b.used, from, from + n);
    const d = 4 * b.n;
    b.desc[d] = b.used;
    b.desc[d + 1] = n;
    b.desc[d + 2] = kind;
    b.desc[d + 3] = ifindex;
    b.n++;
    b.used += n;
    if (!b.scheduled) {
      // (a capture batch flushes at its end; anything else is sent at the next turn of the event loop)
      b.scheduled = true;
      setImmediate(this.flushSoon);
    }
    return null;
  }

  private readonly flushSoon = (): void => {
    this.batch!.scheduled = false;
    this.flush();
  };

  /** open the raw sockets now (fails early without privileges) */
  open(): void {
    if (this.batch) return;
    const raw = loadNative<RawModule>('raw-socket', 'live transmit');
    // IPPROTO_RAW (255): send-only, the IP header comes with the packet
    this.sock4 = raw.createSocket({ protocol: 255, addressFamily: raw.AddressFamily.IPv4 });
    this.sock4.pauseRecv();
    try {
      this.sock6 = raw.createSocket({ protocol: 255, addressFamily: raw.AddressFamily.IPv6 });
      this.sock6.pauseRecv();
    } catch {
      this.sock6 = null; // no IPv6 on this host: IPv6 packets are counted as not sent
    }
  }

  send(r: PacketRecord, buf: Uint8Array, off: number, len: number, _wirelen: number, l2len: number, l2: boolean): NotEmittedReason | null {
    if (l2) {
      if (r.linktype !== 1) return 'dr_needs_ethernet';
      const port = this.l2Ports.get(macKey(buf, off));
      if (!port) return 'no_l2_port';
      buf.set(port.mac, off + 6);
      if (this.batch !== null && port.ifindex !== undefined) return this.queue(buf, off, len, 2, port.ifindex);
      // libpcap injects synchronously: the frame goes from where it is, with this interface's MAC as source
      port.inject(Buffer.from(buf.buffer, buf.byteOffset + off, len));
      this.sentNow++;
      return null;
    }
    const l3 = off + l2len;
    if (l3 >= off + len) return 'tx_no_ip_header';
    const ver = buf[l3]! >> 4;
    if (this.batch !== null) return ver === 4 || ver === 6 ? this.queue(buf, l3, off + len - l3, ver, 0) : 'tx_no_ip_header';
    const sock = ver === 4 ? this.sock4 : ver === 6 ? this.sock6 : null;
    if (!sock) return ver === 6 ? 'tx_no_ipv6' : 'tx_no_ip_header';
    if (this.inFlight >= this.txQueue) return 'tx_queue_full';
    const n = off + len - l3;
    // the capture buffer is reused before the send happens: copy
    const copy = n <= POOLED ? (this.pool.pop() ?? Buffer.allocUnsafe(POOLED)) : Buffer.allocUnsafe(n);
    copy.set(buf.subarray(l3, l3 + n), 0);
    let dst: string;
    if (ver === 4) {
      const a = ((copy[16]! << 24) | (copy[17]! << 16) | (copy[18]! << 8) | copy[19]!) >>> 0;
      let t = this.dst4.get(a);
      if (t === undefined) {
        if (this.dst4.size >= 65536) this.dst4.clear();
        t = `${copy[16]}.${copy[17]}.${copy[18]}.${copy[19]}`;
        this.dst4.set(a, t);
      }
      dst = t;
    } else dst = v6Text(copy, 24);
    this.inFlight++;
    this.queued.push(copy);
    sock.send(copy, 0, n, dst, this.done);
    return null;
  }

  /** an agent's server: set by the daemon when there is a hub (src/live/hub.ts) */
  agent: Sink['agent'] = undefined;

  /** an IP packet as it is (an agent's reply, for the client) */
  sendIp(buf: Uint8Array, off: number, len: number): NotEmittedReason | null {
    return this.send(NO_RECORD, buf, off, len, len, 0, false);
  }

  close(): void {
    this.flush();
    // (what the transmit threads still hold leaves before the process does)
    if (this.batch) this.batch.mod.txDrain(this.batch.tx, 1000);
    this.sock4?.close();
    this.sock6?.close();
    this.sock4 = this.sock6 = null;
  }
}

const COPY = Buffer.prototype.copy;

/** the batched transmit's arena: 4 MiB (some 2,800 full-size packets, 30,000 small ones) */
const ARENA = 4 << 20;

/** an errno number's name (EAGAIN...) */
function errnoName(e: number): string {
  for (const [k, v] of Object.entries(os.constants.errno)) if (v === e) return k;
  return `errno ${e}`;
}

/** the native module's batched transmit (src/native.ts) */
type BatchedTx = Pick<Native, 'txSend' | 'txCollect' | 'txDrain'>;

/** (send() reads the record only for L2 frames) */
const NO_RECORD = new PacketRecord();

export function macKey(b: Uint8Array, o: number): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += (i ? ':' : '') + b[o + i]!.toString(16).padStart(2, '0');
  return s;
}

function v6Text(b: Uint8Array, o: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[o + i]! << 8) | b[o + i + 1]!).toString(16));
  return parts.join(':');
}
