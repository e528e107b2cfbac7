/**
 * The agents' control channel (issue 18): a KCP conversation (src/agents/kcp.ts, ikcp's wire format) on
 * the hub's one UDP socket, carrying JSON messages both ways: the hub pushes an agent's membership when it
 * changes (reloads, `tsvs ctl`), the agent reports its statistics. Reliable and ordered for these small
 * messages only: client traffic never goes over it (TCP over a reliable tunnel melts down).
 *
 * Each datagram is authenticated like a heartbeat, under the agent's key, with a counter of its own per
 * direction (the receiver's replay window refuses a datagram seen before), and a type per direction, so a
 * datagram reflected back to its sender is not taken:
 *   0   type 0x83 (agent -> hub) or 0x84 (hub -> agent)
 *   1   version 1
 *   2   id length n, id (n bytes)
 *   +0  counter (8, big-endian; from the wall clock in microseconds, as the heartbeats')
 *   +8  the KCP datagram (24-byte segment headers, little-endian, and their data)
 *   ..  MAC (16): HMAC-SHA256 of everything before it, cut to 16 bytes
 * The agent picks the KCP conversation number at random when it attaches; a datagram with another number
 * (an agent restarted, or attached again) starts a new conversation at the hub.
 */
import { createHmac, randomInt } from 'node:crypto';
import { Kcp, KCP_OVERHEAD } from './kcp.js';
import { HB_VERSION, macOk, peekId } from './heartbeat.js';
import { ReplayWindow } from './window.js';

export const T_CTL_UP = 0x83;
export const T_CTL_DOWN = 0x84;
const MAC_LEN = 16;
/** the control channel's KCP datagrams leave room for the framing in a 1280-byte IPv6 minimum MTU */
const KCP_MTU = 1100;

export function encodeControl(type: number, id: string, counter: number, kcp: Uint8Array, key: Uint8Array): Buffer {
  const idb = Buffer.from(id, 'utf8');
  const c = Buffer.alloc(8);
  c.writeBigUInt64BE(BigInt(counter));
  const body = Buffer.concat([Buffer.of(type, HB_VERSION, idb.length), idb, c, kcp]);
  return Buffer.concat([body, createHmac('sha256', key).update(body).digest().subarray(0, MAC_LEN)]);
}

/** a control datagram's fields, before its MAC is checked (null: malformed) */
export function decodeControl(b: Uint8Array, type: number): { id: string; counter: number; kcp: Buffer } | null {
  const id = peekId(b, type);
  if (id === null) return null;
  const o = 3 + Buffer.byteLength(id, 'utf8');
  if (b.length < o + 8 + KCP_OVERHEAD + MAC_LEN) return null;
  const v = Buffer.from(b.buffer, b.byteOffset, b.length);
  const counter = v.readBigUInt64BE(o);
  if (counter > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { id, counter: Number(counter), kcp: v.subarray(o + 8, v.length - MAC_LEN) };
}

/** why a control datagram was refused */
export type ControlDrop = 'malformed' | 'bad_mac' | 'replay' | 'kcp';

/**
 * Check a control datagram of type `type` from agent `id` under `key`, and its counter against `window`
 * (the receiver's, kept across conversations: a datagram of an earlier one replayed is refused too)
 */
export function openControl(b: Uint8Array, type: number, id: string, key: Uint8Array, window: ReplayWindow): { conv: number; kcp: Buffer } | ControlDrop {
  const d = decodeControl(b, type);
  if (!d || d.id !== id) return 'malformed';
  if (!macOk(b, key)) return 'bad_mac';
  if (!window.accept(d.counter)) return 'replay';
  return { conv: d.kcp.readUInt32LE(0), kcp: d.kcp };
}

/**
 * One end of the channel: frames, authenticates and counts datagrams, runs the KCP conversation, and
 * delivers whole JSON messages to `onMessage`. `tick` is called every few ms with a millisecond clock.
 */
export class ControlEnd {
  readonly kcp: Kcp;
  private counter = 0;
  /** messages sent and received, datagrams out and in */
  sent = 0;
  received = 0;
  datagramsOut = 0;
  datagramsIn = 0;

  constructor(
    readonly id: string,
    private readonly key: Uint8Array,
    /** this end's type (0x83 at the agent, 0x84 at the hub); the peer's is the other */
    private readonly type: number,
    readonly conv: number,
    private readonly send: (datagram: Buffer) => void,
    private readonly onMessage: (m: Record<string, unknown>) => void,
    private readonly wallUs: () => number = () => Date.now() * 1000,
  ) {
    this.kcp = new Kcp(conv, (d) => {
      this.counter = Math.max(this.counter + 1, Math.floor(this.wallUs()));
      this.datagramsOut++;
      this.send(encodeControl(this.type, this.id, this.counter, d, this.key));
    });
    this.kcp.setMtu(KCP_MTU);
    // fast mode: these are a few small messages, and a push should not wait for a 200 ms timer
    this.kcp.setNodelay(1, 20, 2, 1);
  }

  /** the KCP datagram of an authentic, fresh control datagram (openControl) from the peer: null when taken */
  input(kcp: Uint8Array, nowMs: number): 'kcp' | null {
    this.datagramsIn++;
    this.kcp.update(nowMs);
    if (this.kcp.input(kcp) !== 0) return 'kcp';
    for (let m = this.kcp.recv(); m; m = this.kcp.recv()) {
      let msg: unknown;
      try {
        msg = JSON.parse(m.toString('utf8'));
      } catch {
        continue;
      }
      if (msg !== null && typeof msg === 'object' && !Array.isArray(msg)) {
        this.received++;
        this.onMessage(msg as Record<string, unknown>);
      }
    }
    // acknowledge at once rather than at the next tick
    this.kcp.flush();
    return null;
  }

  /** queue a message; false when it is too large for one KCP message (127 fragments) */
  post(m: Record<string, unknown>, nowMs: number): boolean {
    if (!this.kcp.send(Buffer.from(JSON.stringify(m), 'utf8'))) return false;
    this.sent++;
    this.kcp.update(nowMs);
    this.kcp.flush();
    return true;
  }

  tick(nowMs: number): void {
    this.kcp.update(nowMs);
  }

  /** the peer stopped acknowledging (a segment sent 20 times) */
  get dead(): boolean {
    return this.kcp.state === -1;
  }

  stats(): { conv: number; rtt_ms: number; retransmits: number; messages_out: number; messages_in: number; waiting: number } {
    return { conv: this.conv, rtt_ms: this.kcp.rxSrtt, retransmits: this.kcp.xmit, messages_out: this.sent, messages_in: this.received, waiting: this.kcp.waitSnd() };
  }
}

/** a random conversation number (never 0) */
export function newConv(): number {
  return randomInt(1, 0xffffffff);
}
