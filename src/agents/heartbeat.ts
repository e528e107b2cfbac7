/**
 * Agents' heartbeats (issue 18, first part): the wire format, its authentication, and the hub's view of each
 * agent. An agent (a real server anywhere, behind NAT or not) sends a heartbeat every second on the hub's
 * one UDP socket; each carries the agent's id, a strictly increasing counter and the agent's clock, and is
 * authenticated with HMAC-SHA256 under the agent's key (the first 16 bytes of the MAC). The hub rejects
 * malformed datagrams, unknown ids, bad MACs and replays (RFC 6479's window, as WireGuard), counting each;
 * it learns the agent's endpoint from the latest authenticated, fresh heartbeat only (NAT and its
 * rebindings are followed, a replayed datagram from elsewhere moves nothing), and answers with the address
 * it saw and the membership the agent needs.
 *
 * Datagrams on the hub's socket are told apart by their first byte: GUE (data) starts with 0x00-0x7f (its
 * version bits), control types are 0x80 and up.
 *
 *   heartbeat (agent -> hub)           reply (hub -> agent)
 *   0   type 0x81                      0   type 0x82
 *   1   version 1                      1   version 1
 *   2   id length n (1-64)             2   id length n
 *   3   id (n bytes, UTF-8)            3   id
 *   +0  counter (8, big-endian)        +0  the heartbeat's counter (8)
 *   +8  agent time, ms (8)             +8  the heartbeat's agent time (8): the agent's round trip
 *   +16 MAC (16)                       +16 family (4 or 6), port (2), address (4 or 16): as the hub saw it
 *                                      ..  membership length (2), membership (JSON, UTF-8)
 *                                      ..  MAC (16)
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { ReplayWindow } from './window.js';
import { addrToWords } from '../packet/addr.js';
import { formatAddr } from '../packet/bytes.js';

export const T_HEARTBEAT = 0x81;
export const T_REPLY = 0x82;
export const HB_VERSION = 1;
const MAC_LEN = 16;
const MAX_ID = 64;

export interface Heartbeat {
  id: string;
  counter: number;
  timeMs: number;
}

export interface Reply {
  id: string;
  counter: number;
  timeMs: number;
  /** the agent's address and port as the hub saw them */
  seen: { addr: string; port: number };
  membership: unknown;
}

function mac(key: Uint8Array, b: Uint8Array): Buffer {
  return createHmac('sha256', key).update(b).digest().subarray(0, MAC_LEN);
}

function head(type: number, id: string): Buffer {
  const idb = Buffer.from(id, 'utf8');
  if (idb.length < 1 || idb.length > MAX_ID) throw new Error(`agent id: 1-${MAX_ID} bytes`);
  return Buffer.concat([Buffer.of(type, HB_VERSION, idb.length), idb]);
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export function encodeHeartbeat(h: Heartbeat, key: Uint8Array): Buffer {
  const body = Buffer.concat([head(T_HEARTBEAT, h.id), u64(h.counter), u64(h.timeMs)]);
  return Buffer.concat([body, mac(key, body)]);
}

export function encodeReply(r: Reply, key: Uint8Array): Buffer {
  const six = isIP(r.seen.addr) === 6;
  const w = addrToWords(r.seen.addr).words;
  const addr = Buffer.alloc(six ? 16 : 4);
  for (let k = 0; k < addr.length / 4; k++) addr.writeUInt32BE(w[k]!, 4 * k);
  const port = Buffer.alloc(2);
  port.writeUInt16BE(r.seen.port);
  const m = Buffer.from(JSON.stringify(r.membership ?? null), 'utf8');
  const ml = Buffer.alloc(2);
  ml.writeUInt16BE(m.length);
  const body = Buffer.concat([head(T_REPLY, r.id), u64(r.counter), u64(r.timeMs), Buffer.of(six ? 6 : 4), port, addr, ml, m]);
  return Buffer.concat([body, mac(key, body)]);
}

/** the id of a control datagram (before its MAC is checked: which key to check it with), or null when malformed */
export function peekId(b: Uint8Array, type: number): string | null {
  if (b.length < 3 + 1 + 16 + MAC_LEN || b[0] !== type || b[1] !== HB_VERSION) return null;
  const n = b[2]!;
  if (n < 1 || n > MAX_ID || b.length < 3 + n + 16 + MAC_LEN) return null;
  return Buffer.from(b.subarray(3, 3 + n)).toString('utf8');
}

/** does the MAC at the end of `b` hold under `key` */
export function macOk(b: Uint8Array, key: Uint8Array): boolean {
  if (b.length <= MAC_LEN) return false;
  const body = b.subarray(0, b.length - MAC_LEN);
  return timingSafeEqual(mac(key, body), Buffer.from(b.subarray(b.length - MAC_LEN)));
}

/** a heartbeat's fields (its MAC checked by the caller); null when malformed */
export function decodeHeartbeat(b: Uint8Array): Heartbeat | null {
  const id = peekId(b, T_HEARTBEAT);
  if (id === null) return null;
  const o = 3 + Buffer.byteLength(id, 'utf8');
  if (b.length !== o + 16 + MAC_LEN) return null;
  const v = Buffer.from(b.buffer, b.byteOffset, b.length);
  const counter = v.readBigUInt64BE(o);
  const timeMs = v.readBigUInt64BE(o + 8);
  if (counter > BigInt(Number.MAX_SAFE_INTEGER) || timeMs > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { id, counter: Number(counter), timeMs: Number(timeMs) };
}

/** a reply's fields (its MAC checked by the caller); null when malformed */
export function decodeReply(b: Uint8Array): Reply | null {
  const id = peekId(b, T_REPLY);
  if (id === null) return null;
  const v = Buffer.from(b.buffer, b.byteOffset, b.length);
  let o = 3 + Buffer.byteLength(id, 'utf8');
  const counter = Number(v.readBigUInt64BE(o));
  const timeMs = Number(v.readBigUInt64BE(o + 8));
  o += 16;
  const fam = v[o];
  const alen = fam === 6 ? 16 : fam === 4 ? 4 : -1;
  if (alen < 0 || v.length < o + 3 + alen + 2 + MAC_LEN) return null;
  const port = v.readUInt16BE(o + 1);
  const words = new Uint32Array(4);
  for (let k = 0; k < alen / 4; k++) words[k] = v.readUInt32BE(o + 3 + 4 * k);
  const addr = formatAddr(words, fam === 6 ? 6 : 4);
  o += 3 + alen;
  const ml = v.readUInt16BE(o);
  if (v.length !== o + 2 + ml + MAC_LEN) return null;
  let membership: unknown;
  try {
    membership = JSON.parse(v.subarray(o + 2, o + 2 + ml).toString('utf8'));
  } catch {
    return null;
  }
  return { id, counter, timeMs, seen: { addr, port }, membership };
}

/** why the hub refused a datagram (each counted) */
export type HeartbeatDrop = 'malformed' | 'unknown_id' | 'bad_mac' | 'replay';

export interface AgentState {
  id: string;
  /** where it is reached: the source of its latest authenticated, fresh heartbeat (null: never heard) */
  endpoint: { addr: string; port: number } | null;
  /** hub time (ms) of that heartbeat */
  lastMs: number;
  heartbeats: number;
  /** endpoint changes after the first (NAT rebindings, moves) */
  moves: number;
  up: boolean;
}

/**
 * The hub's agents: keys by id, each agent's replay window and state. `handle` takes a datagram from
 * `src` at hub time `nowMs` and returns the reply to send back (or why there is none).
 */
export class AgentRegistry {
  readonly drops: Record<HeartbeatDrop, number> = { malformed: 0, unknown_id: 0, bad_mac: 0, replay: 0 };
  private readonly windows = new Map<string, ReplayWindow>();
  readonly agents = new Map<string, AgentState>();

  constructor(
    private readonly keys: Map<string, Uint8Array>,
    /** an agent without a fresh authenticated heartbeat for this long is down */
    readonly timeoutMs = 5000,
    /** what an agent is told it serves */
    private readonly membership: (id: string) => unknown = () => null,
  ) {
    for (const id of keys.keys()) {
      this.windows.set(id, new ReplayWindow());
      this.agents.set(id, { id, endpoint: null, lastMs: -Infinity, heartbeats: 0, moves: 0, up: false });
    }
  }

  handle(b: Uint8Array, src: { addr: string; port: number }, nowMs: number): { reply: Buffer } | { drop: HeartbeatDrop } {
    const id = peekId(b, T_HEARTBEAT);
    if (id === null) return this.drop('malformed');
    const key = this.keys.get(id);
    if (!key) return this.drop('unknown_id');
    if (!macOk(b, key)) return this.drop('bad_mac');
    const h = decodeHeartbeat(b);
    if (!h) return this.drop('malformed');
    if (!this.windows.get(id)!.accept(h.counter)) return this.drop('replay');
    const a = this.agents.get(id)!;
    if (a.endpoint && (a.endpoint.addr !== src.addr || a.endpoint.port !== src.port)) a.moves++;
    a.endpoint = { addr: src.addr, port: src.port };
    a.lastMs = nowMs;
    a.heartbeats++;
    a.up = true;
    return { reply: encodeReply({ id, counter: h.counter, timeMs: h.timeMs, seen: src, membership: this.membership(id) }, key) };
  }

  private drop(why: HeartbeatDrop): { drop: HeartbeatDrop } {
    this.drops[why]++;
    return { drop: why };
  }

  /** mark down the agents silent for timeoutMs; returns the ids that went down now */
  expire(nowMs: number): string[] {
    const down: string[] = [];
    for (const a of this.agents.values()) {
      if (a.up && nowMs - a.lastMs >= this.timeoutMs) {
        a.up = false;
        down.push(a.id);
      }
    }
    return down;
  }
}

/**
 * The agent's side of the schedule: a heartbeat every second while the hub answers. One unanswered for a
 * second starts the retries, 1, 3 and 7 s after it was sent (the regular beat pauses); with the third, the
 * agent is detached, and it keeps trying every second until an authentic reply comes.
 */
export class AgentLink {
  /**
   * The last counter sent. It starts from the wall clock in microseconds and goes up by at least one per
   * heartbeat (WireGuard's handshakes use a TAI64N time the same way): an agent restarted after a crash is
   * above everything its earlier run sent, so the hub's replay window takes it back at once.
   */
  counter = 0;
  /** heartbeats sent */
  sent = 0;
  detached = false;
  /** time of the last reply, and the round trip it gave (-1: none yet) */
  lastReplyMs = -Infinity;
  rttMs = -1;
  private lastSendMs = -Infinity;
  /** send time of the first heartbeat left unanswered (-1: none), and the retries sent since */
  private lostAt = -1;
  private retries = 0;
  /** (counter, send time) of the last heartbeats sent: a reply must answer one of them */
  private readonly pending: number[] = [];

  constructor(
    readonly id: string,
    private readonly key: Uint8Array,
    /** the wall clock, microseconds since the epoch */
    private readonly wallUs: () => number = () => Date.now() * 1000,
  ) {}

  /** the heartbeat to send at `nowMs`, if one is due */
  due(nowMs: number): Buffer | null {
    if (this.lostAt < 0 && this.lastSendMs > this.lastReplyMs && nowMs - this.lastSendMs >= 1000) this.lostAt = this.lastSendMs;
    let send: boolean;
    if (this.lostAt < 0) send = nowMs - this.lastSendMs >= 1000;
    else if (this.detached) send = nowMs - this.lastSendMs >= 1000;
    else {
      send = nowMs - this.lostAt >= RETRY_AT[this.retries]!;
      if (send && ++this.retries === RETRY_AT.length) this.detached = true;
    }
    if (!send) return null;
    this.lastSendMs = nowMs;
    this.counter = Math.max(this.counter + 1, Math.floor(this.wallUs()));
    this.sent++;
    this.pending.push(this.counter, nowMs);
    if (this.pending.length > 2 * PENDING) this.pending.splice(0, 2);
    return encodeHeartbeat({ id: this.id, counter: this.counter, timeMs: nowMs }, this.key);
  }

  /** a datagram from the hub: the reply when it is an authentic answer to one of ours (attached again, the round trip measured) */
  receive(b: Uint8Array, nowMs: number): Reply | null {
    if (peekId(b, T_REPLY) !== this.id || !macOk(b, this.key)) return null;
    const r = decodeReply(b);
    if (!r) return null;
    let i = 0;
    while (i < this.pending.length && (this.pending[i] !== r.counter || this.pending[i + 1] !== r.timeMs)) i += 2;
    if (i === this.pending.length) return null;
    this.pending.splice(0, i + 2);
    this.rttMs = nowMs - r.timeMs;
    this.lastReplyMs = nowMs;
    this.lostAt = -1;
    this.retries = 0;
    this.detached = false;
    return r;
  }
}

/** heartbeats an agent remembers while waiting for their replies */
const PENDING = 16;

/** retries of a lost heartbeat, after it was sent (ms) */
const RETRY_AT = [1000, 3000, 7000];
