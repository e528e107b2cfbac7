/**
 * Live capture in batches (issue 19): an AF_PACKET socket with a TPACKET_V2 receive ring, through tsvs's own
 * native module (native/tsvs.c). The kernel fills frames of the ring; libuv watches the socket; when it is
 * readable, one call into JavaScript gives the offsets of all the frames filled (up to 2048), the engine reads
 * and rewrites each frame where it lies (no copy), and the frames go back to the kernel when the call
 * returns. The daemon's classic BPF filter (libpcap's compiler, as for replay --filter) is attached in the
 * kernel before the socket is bound; outgoing packets are not captured.
 */
import { Bpf } from './bpf.js';
import { loadNative } from '../native.js';
import { NativeModuleError } from './live.js';
import { ifaceAttr } from '../live/host.js';

/** link type by the device's ARPHRD type (what its frames start with) */
const LINKTYPE_OF_ARPHRD: Record<number, number> = { 1: 1, 772: 1, 65534: 101 };

/** ring geometry: blocks of up to 256 KiB (the ring's size is live.ring_kb), frames by the MTU; descriptors per call into JS */
const BLOCK = 256 * 1024;
const DESC = 2048;

export class RingCapture {
  readonly linktype: number;
  private readonly handle: unknown;
  private readonly ring: Buffer;
  private readonly desc = new Int32Array(3 * DESC);
  /** the ring's frame size (from the interface's MTU) */
  readonly frameSize: number;
  /** calls into JavaScript (batches) and the packets they carried */
  batches = 0;
  packets = 0;

  constructor(
    readonly iface: string,
    filter: string,
    ringKb: number,
    /** while busy, how long an empty ring is given to fill before the socket is waited on again (µs) */
    coalesceUs: number,
    onPacket: (buf: Buffer, off: number, caplen: number, wirelen: number, linktype: number) => void,
    /** after each batch (the sink sends what the batch emitted) */
    onBatchEnd: () => void,
    /** live workers: join this PACKET_FANOUT group, whose program (raw-IP form, fanout.ts) names each packet's member */
    fanout?: { group: number; prog: Int32Array },
  ) {
    const n = loadNative();
    if (!n.mod) throw new NativeModuleError(`batched capture on ${iface}: ${n.why}`);
    const type = ifaceAttr(iface, 'type');
    if (type === null) throw new NativeModuleError(`capture on ${iface}: no such interface`);
    const arp = Number(type);
    const lt = LINKTYPE_OF_ARPHRD[arp];
    if (lt === undefined) throw new NativeModuleError(`batched capture on ${iface}: device type ${arp} (ARPHRD) is not Ethernet, loopback or TUN`);
    this.linktype = lt;
    const prog = Bpf.compile(filter, lt).program;
    let r: { handle: unknown; ring: ArrayBuffer };
    try {
      // frames that hold the interface's largest frame (MTU, Ethernet header, two VLAN tags) and the ring's
      // header: 2 KiB for an MTU of 1500, 16 KiB for 9000
      const mtu = Number(ifaceAttr(iface, 'mtu')) || 1500;
      let frame = 2048;
      while (frame < mtu + 14 + 8 + 96) frame *= 2;
      this.frameSize = frame;
      const block = Math.max(frame, Math.min(BLOCK, (ringKb * 1024) / 2));
      if ((ringKb * 1024) / block < 2) throw new Error(`live.ring_kb ${ringKb} holds fewer than two blocks of ${block / 1024} KiB frames (MTU ${mtu}): make it larger`);
      r = fanout
        ? n.mod.ringOpen(iface, prog, block, (ringKb * 1024) / block, this.desc, frame, coalesceUs, fanout.group, fanout.prog)
        : n.mod.ringOpen(iface, prog, block, (ringKb * 1024) / block, this.desc, frame, coalesceUs);
    } catch (e) {
      throw new NativeModuleError(`batched capture on ${iface}: ${(e as Error).message}`);
    }
    this.handle = r.handle;
    this.ring = Buffer.from(r.ring);
    const desc = this.desc;
    const ring = this.ring;
    n.mod.ringStart(this.handle, (count: number) => {
      this.batches++;
      this.packets += count;
      for (let i = 0; i < count; i++) onPacket(ring, desc[3 * i]!, desc[3 * i + 1]!, desc[3 * i + 2]!, lt);
      onBatchEnd();
    });
  }

  /** replace the filter while the ring runs (live workers keep their places in the fanout group) */
  setFilter(filter: string): void {
    loadNative().mod!.ringSetProgram(this.handle, 0, Bpf.compile(filter, this.linktype).program);
  }

  /** replace the fanout group's program (for every member) */
  setFanout(prog: Int32Array): void {
    loadNative().mod!.ringSetProgram(this.handle, 1, prog);
  }

  stats(): { received: number; dropped: number; ifdropped: number; batches: number; per_batch: number } {
    const s = loadNative().mod!.ringStats(this.handle);
    return { received: s.packets, dropped: s.drops, ifdropped: 0, batches: this.batches, per_batch: this.batches ? Math.round((this.packets / this.batches) * 10) / 10 : 0 };
  }

  /** the interface's index (L2 frames leave on it) */
  get ifindex(): number {
    return ifindex(this.iface);
  }

  /** send a whole frame on this interface (L2 injection), at once */
  inject(frame: Buffer): void {
    const n = loadNative().mod!;
    const tx = txHandle();
    const d = Int32Array.of(0, frame.length, 2, this.ifindex);
    n.txSend(tx, frame, d, 1);
  }

  close(): void {
    loadNative().mod?.ringClose(this.handle);
  }
}

let tx: unknown = null;
/** one set of transmit sockets for the process, with `threads` transmit threads (the first call decides) */
export function txHandle(threads = 0): unknown {
  tx ??= loadNative().mod!.txOpen(threads);
  return tx;
}

const ifindexes = new Map<string, number>();
function ifindex(iface: string): number {
  let i = ifindexes.get(iface);
  if (i === undefined) {
    i = Number(ifaceAttr(iface, 'ifindex'));
    ifindexes.set(iface, i);
  }
  return i;
}
