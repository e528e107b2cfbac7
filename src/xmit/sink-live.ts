/**
 * Live transmit: what the engine emits leaves through a raw IP socket (IPPROTO_RAW, so the IP header is the
 * engine's own — IP_HDRINCL for IPv4, the IPv6 equivalent) and the kernel routes it; direct routing's frames
 * are injected at layer 2 through libpcap on the interface the server is reached by, with that interface's
 * MAC as their source (as the kernel's neighbour output would). Sends are asynchronous: each packet is copied
 * (the capture buffer is reused) and at most `txQueue` wait; beyond that a packet is dropped and counted.
 */
import type { PacketRecord } from '../capture/record.js';
import type { Sink } from '../engine.js';
import { loadNative } from '../capture/live.js';

interface RawSocketLike {
  send(b: Buffer, off: number, len: number, addr: string, after: (err: Error | null) => void): void;
  pauseRecv(): void;
  close(): void;
}
interface RawModule {
  createSocket(o: { protocol: number; addressFamily: number }): RawSocketLike;
  AddressFamily: { IPv4: number; IPv6: number };
}

/** where the IP header starts in a frame of this link type, or -1 */
export function l3Offset(b: Uint8Array, off: number, len: number, linktype: number): number {
  if (linktype === 101 || linktype === 228 || linktype === 229 || linktype === 12 || linktype === 14) return off;
  if (linktype === 113) return off + 16;
  if (linktype === 276) return off + 20;
  if (linktype === 0 || linktype === 108) return off + 4;
  if (linktype !== 1) return -1;
  let o = off + 12;
  // VLAN / QinQ tags
  while (o + 4 <= off + len && (((b[o]! << 8) | b[o + 1]!) === 0x8100 || ((b[o]! << 8) | b[o + 1]!) === 0x88a8)) o += 4;
  return o + 2;
}

export interface L2Port {
  /** the interface's own MAC (the source of injected frames) */
  mac: Uint8Array;
  inject(frame: Buffer): void;
}

export class LiveSink implements Sink {
  private sock4: RawSocketLike | null = null;
  private sock6: RawSocketLike | null = null;
  inFlight = 0;
  sent = 0;
  errors = 0;
  lastError = '';
  /** DR: the port each server MAC is reached by (key: the MAC as text) */
  readonly l2Ports = new Map<string, L2Port>();

  constructor(private readonly txQueue: number) {}

  /** open the raw sockets now (fails early without privileges) */
  open(): void {
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

  send(r: PacketRecord, buf: Uint8Array, off: number, len: number, _wirelen: number, l2: boolean): string | null {
    if (l2) {
      if (r.linktype !== 1) return 'dr_needs_ethernet';
      const key = macKey(buf, off);
      const port = this.l2Ports.get(key);
      if (!port) return 'no_l2_port';
      const frame = Buffer.from(buf.subarray(off, off + len));
      frame.set(port.mac, 6);
      port.inject(frame);
      this.sent++;
      return null;
    }
    const l3 = l3Offset(buf, off, len, r.linktype);
    if (l3 < 0 || l3 >= off + len) return 'tx_no_ip_header';
    const ver = buf[l3]! >> 4;
    const sock = ver === 4 ? this.sock4 : ver === 6 ? this.sock6 : null;
    if (!sock) return ver === 6 ? 'tx_no_ipv6' : 'tx_no_ip_header';
    if (this.inFlight >= this.txQueue) return 'tx_queue_full';
    const n = off + len - l3;
    const copy = Buffer.from(buf.subarray(l3, l3 + n));
    const dst = ver === 4 ? `${copy[16]}.${copy[17]}.${copy[18]}.${copy[19]}` : v6Text(copy, 24);
    this.inFlight++;
    sock.send(copy, 0, n, dst, (err) => {
      this.inFlight--;
      if (err) {
        this.errors++;
        this.lastError = err.message;
      } else this.sent++;
    });
    return null;
  }

  close(): void {
    this.sock4?.close();
    this.sock6?.close();
    this.sock4 = this.sock6 = null;
  }
}

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
