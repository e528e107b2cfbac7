/**
 * Live capture through libpcap (the optional `pcap` module, node_pcap), loaded only when live mode starts so
 * replay works where the native module is absent. Packets are delivered one at a time into one reused
 * buffer; the callback must finish with it before returning (the engine rewrites in place and the sink copies).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A native module could not be loaded: says which, why, and how to get it. */
export class NativeModuleError extends Error {}

/** Load an optional native module by name, with an error naming what is missing. */
export function loadNative<T>(name: string, purpose: string): T {
  try {
    return require(name) as T;
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    throw new NativeModuleError(
      `${purpose} needs the optional native module "${name}" (${why}); install libpcap-dev, then run "npm install-scripts approve ${name} && npm rebuild ${name}"`,
    );
  }
}

interface PcapSessionLike {
  readonly link_type: string;
  on(ev: 'packet', f: (p: { buf: Buffer; header: Buffer }) => void): void;
  close(): void;
  stats(): { ps_recv: number; ps_drop: number; ps_ifdrop: number };
  inject(b: Buffer): void;
}
interface PcapModule {
  createSession(dev: string, o: { filter?: string; buffer_size?: number; snap_length?: number; buffer_timeout?: number; promiscuous?: boolean }): PcapSessionLike;
}

const LINKTYPES: Record<string, number> = { LINKTYPE_NULL: 0, LINKTYPE_ETHERNET: 1, LINKTYPE_RAW: 101, LINKTYPE_LINUX_SLL: 113 };

export interface CaptureOptions {
  /** BPF filter (libpcap syntax) */
  filter: string;
  /** libpcap read timeout in ms (node_pcap's default of 1000 ms would delay packets up to a second) */
  bufferTimeoutMs: number;
  snapLength?: number;
}

/** One interface being captured; `onPacket(buf, caplen, wirelen, linktype, tsSec, tsUsec)` per packet. */
export class LiveCapture {
  private readonly session: PcapSessionLike;
  readonly linktype: number;

  constructor(
    readonly iface: string,
    o: CaptureOptions,
    onPacket: (buf: Buffer, caplen: number, wirelen: number, linktype: number) => void,
  ) {
    const pcap = loadNative<PcapModule>('pcap', 'live capture');
    try {
      this.session = pcap.createSession(iface, { filter: o.filter, snap_length: o.snapLength ?? 65535, buffer_timeout: o.bufferTimeoutMs, buffer_size: 16 * 1024 * 1024, promiscuous: false });
    } catch (e) {
      throw new NativeModuleError(`capture on ${iface}: ${(e as Error).message.trim()}`);
    }
    const lt = LINKTYPES[this.session.link_type];
    if (lt === undefined) throw new NativeModuleError(`capture on ${iface}: unsupported link type ${this.session.link_type}`);
    this.linktype = lt;
    this.session.on('packet', (p) => {
      const h = p.header;
      const caplen = h.readUInt32LE(8);
      onPacket(p.buf, caplen, h.readUInt32LE(12), lt);
    });
  }

  /** send a whole frame on this interface (L2 injection) */
  inject(frame: Buffer): void {
    this.session.inject(frame);
  }

  stats(): { received: number; dropped: number; ifdropped: number } {
    const s = this.session.stats();
    return { received: s.ps_recv, dropped: s.ps_drop, ifdropped: s.ps_ifdrop };
  }

  close(): void {
    this.session.close();
  }
}
