/**
 * KCP (issue 18): a reliable, ordered stream over datagrams, wire-compatible with the reference C
 * implementation (skywind3000/kcp, ikcp.c), for the agents' control channel (membership pushes, agent
 * statistics). Never under client TCP traffic: TCP over a reliable tunnel melts down.
 *
 * Segment (24 bytes, little-endian, then `len` bytes of data; several segments per datagram up to the MTU):
 *   conv u32 | cmd u8 | frg u8 | wnd u16 | ts u32 | sn u32 | una u32 | len u32
 * Commands: 81 PUSH (data), 82 ACK, 83 WASK (window probe), 84 WINS (window size). `frg` counts down the
 * fragments of one message (0: the last; always 0 in stream mode); `wnd` is the sender's free receive
 * window; `una` acknowledges everything below it; an ACK's `ts` echoes the PUSH's for the round trip.
 *
 * The behaviour follows ikcp's (its RTO estimator, fast resend after `resend` skipped ACKs, the congestion
 * window unless `nc`, window probes, `nodelay` modes), so that either side may be the reference one. Times
 * are 32-bit milliseconds, compared modulo 2^32 as ikcp does.
 */

export const KCP_OVERHEAD = 24;
export const CMD_PUSH = 81;
export const CMD_ACK = 82;
export const CMD_WASK = 83;
export const CMD_WINS = 84;

const ASK_SEND = 1;
const ASK_TELL = 2;
const WND_SND = 32;
const WND_RCV = 128;
const MTU_DEF = 1400;
const RTO_NDL = 30;
const RTO_MIN = 100;
const RTO_DEF = 200;
const RTO_MAX = 60000;
const THRESH_INIT = 2;
const THRESH_MIN = 2;
const PROBE_INIT = 7000;
const PROBE_LIMIT = 120000;
const FASTACK_LIMIT = 5;
const DEADLINK = 20;
const INTERVAL = 100;

/** a - b as a signed 32-bit difference (ikcp's _itimediff) */
function diff(a: number, b: number): number {
  return (a - b) | 0;
}

interface Seg {
  sn: number;
  frg: number;
  ts: number;
  una: number;
  wnd: number;
  resendts: number;
  rto: number;
  fastack: number;
  xmit: number;
  data: Uint8Array;
}

function seg(data: Uint8Array, frg: number): Seg {
  return { sn: 0, frg, ts: 0, una: 0, wnd: 0, resendts: 0, rto: 0, fastack: 0, xmit: 0, data };
}

export class Kcp {
  mtu = MTU_DEF;
  mss = MTU_DEF - KCP_OVERHEAD;
  /** -1 once a segment was sent `deadLink` times unacknowledged (the peer is gone) */
  state = 0;
  sndUna = 0;
  sndNxt = 0;
  rcvNxt = 0;
  ssthresh = THRESH_INIT;
  rxRttval = 0;
  rxSrtt = 0;
  rxRto = RTO_DEF;
  rxMinrto = RTO_MIN;
  sndWnd = WND_SND;
  rcvWnd = WND_RCV;
  rmtWnd = WND_RCV;
  cwnd = 0;
  incr = 0;
  probe = 0;
  current = 0;
  interval = INTERVAL;
  tsFlush = INTERVAL;
  nodelay = 0;
  updated = false;
  tsProbe = 0;
  probeWait = 0;
  deadLink = DEADLINK;
  fastresend = 0;
  fastlimit = FASTACK_LIMIT;
  nocwnd = 0;
  stream = false;
  /** retransmissions (timeouts), for statistics */
  xmit = 0;
  private readonly sndQueue: Seg[] = [];
  private readonly sndBuf: Seg[] = [];
  /** received out of order, by sn */
  private readonly rcvBuf: Seg[] = [];
  private readonly rcvQueue: Seg[] = [];
  /** (sn, ts) of each PUSH to acknowledge at the next flush */
  private acks: number[] = [];
  private buffer = Buffer.alloc((MTU_DEF + KCP_OVERHEAD) * 3);

  constructor(
    readonly conv: number,
    private readonly output: (datagram: Buffer) => void,
  ) {}

  /** ikcp_nodelay: (0, 100, 0, 0) is the default, (1, 10, 2, 1) the fastest */
  setNodelay(nodelay: number, interval: number, resend: number, nc: number): void {
    if (nodelay >= 0) {
      this.nodelay = nodelay;
      this.rxMinrto = nodelay ? RTO_NDL : RTO_MIN;
    }
    if (interval >= 0) this.interval = Math.min(5000, Math.max(10, interval));
    if (resend >= 0) this.fastresend = resend;
    if (nc >= 0) this.nocwnd = nc;
  }

  setWndSize(snd: number, rcv: number): void {
    if (snd > 0) this.sndWnd = snd;
    // the receive window must hold the largest message's fragments
    if (rcv > 0) this.rcvWnd = Math.max(rcv, WND_RCV);
  }

  setMtu(mtu: number): boolean {
    if (mtu < 50 || mtu < KCP_OVERHEAD) return false;
    this.mtu = mtu;
    this.mss = mtu - KCP_OVERHEAD;
    this.buffer = Buffer.alloc((mtu + KCP_OVERHEAD) * 3);
    return true;
  }

  /** segments waiting to be sent or acknowledged */
  waitSnd(): number {
    return this.sndBuf.length + this.sndQueue.length;
  }

  /** queue a message (in stream mode: bytes, appended to the last unsent segment while it has room); false when it has too many fragments */
  send(data: Uint8Array): boolean {
    let off = 0;
    let len = data.length;
    if (this.stream && this.sndQueue.length > 0) {
      const old = this.sndQueue[this.sndQueue.length - 1]!;
      if (old.data.length < this.mss) {
        const extend = Math.min(len, this.mss - old.data.length);
        const merged = new Uint8Array(old.data.length + extend);
        merged.set(old.data);
        merged.set(data.subarray(0, extend), old.data.length);
        old.data = merged;
        off = extend;
        len -= extend;
      }
      if (len <= 0) return true;
    }
    const count = len <= this.mss ? 1 : Math.ceil(len / this.mss);
    if (count >= WND_RCV) return false;
    for (let i = 0; i < count; i++) {
      const size = Math.min(len, this.mss);
      this.sndQueue.push(seg(data.slice(off, off + size), this.stream ? 0 : count - i - 1));
      off += size;
      len -= size;
    }
    return true;
  }

  /** the size of the next whole message (-1: none yet) */
  peekSize(): number {
    const q = this.rcvQueue;
    if (q.length === 0) return -1;
    if (q[0]!.frg === 0) return q[0]!.data.length;
    if (q.length < q[0]!.frg + 1) return -1;
    let n = 0;
    for (const s of q) {
      n += s.data.length;
      if (s.frg === 0) break;
    }
    return n;
  }

  /** the next whole message (in stream mode: the next segment's bytes), or null */
  recv(): Buffer | null {
    const size = this.peekSize();
    if (size < 0) return null;
    const recover = this.rcvQueue.length >= this.rcvWnd;
    const out = Buffer.alloc(size);
    let o = 0;
    while (this.rcvQueue.length > 0) {
      const s = this.rcvQueue.shift()!;
      out.set(s.data, o);
      o += s.data.length;
      if (s.frg === 0) break;
    }
    this.moveToQueue();
    // the window was full and has room again: tell the peer at the next flush
    if (this.rcvQueue.length < this.rcvWnd && recover) this.probe |= ASK_TELL;
    return out;
  }

  private moveToQueue(): void {
    while (this.rcvBuf.length > 0 && this.rcvBuf[0]!.sn === this.rcvNxt && this.rcvQueue.length < this.rcvWnd) {
      this.rcvQueue.push(this.rcvBuf.shift()!);
      this.rcvNxt = (this.rcvNxt + 1) >>> 0;
    }
  }

  /** a datagram from the peer; 0, or ikcp's negative codes: -1 short or another conversation, -2 cut, -3 an unknown command */
  input(b: Uint8Array): number {
    const prevUna = this.sndUna;
    let maxack = 0;
    let flag = false;
    if (b.length < KCP_OVERHEAD) return -1;
    const v = Buffer.from(b.buffer, b.byteOffset, b.length);
    let o = 0;
    while (b.length - o >= KCP_OVERHEAD) {
      const conv = v.readUInt32LE(o);
      if (conv !== this.conv) return -1;
      const cmd = v[o + 4]!;
      const frg = v[o + 5]!;
      const wnd = v.readUInt16LE(o + 6);
      const ts = v.readUInt32LE(o + 8);
      const sn = v.readUInt32LE(o + 12);
      const una = v.readUInt32LE(o + 16);
      const len = v.readUInt32LE(o + 20);
      o += KCP_OVERHEAD;
      if (b.length - o < len || len > 0x7fffffff) return -2;
      if (cmd !== CMD_PUSH && cmd !== CMD_ACK && cmd !== CMD_WASK && cmd !== CMD_WINS) return -3;
      this.rmtWnd = wnd;
      this.parseUna(una);
      this.shrinkBuf();
      if (cmd === CMD_ACK) {
        if (diff(this.current, ts) >= 0) this.updateAck(diff(this.current, ts));
        this.parseAck(sn);
        this.shrinkBuf();
        if (!flag) {
          flag = true;
          maxack = sn;
        } else if (diff(sn, maxack) > 0) maxack = sn;
      } else if (cmd === CMD_PUSH) {
        if (diff(sn, (this.rcvNxt + this.rcvWnd) >>> 0) < 0) {
          this.acks.push(sn, ts);
          if (diff(sn, this.rcvNxt) >= 0) this.parseData(sn, frg, v.slice(o, o + len));
        }
      } else if (cmd === CMD_WASK) this.probe |= ASK_TELL;
      o += len;
    }
    if (flag) this.parseFastack(maxack);
    if (diff(this.sndUna, prevUna) > 0 && this.cwnd < this.rmtWnd) {
      const mss = this.mss;
      if (this.cwnd < this.ssthresh) {
        this.cwnd++;
        this.incr += mss;
      } else {
        if (this.incr < mss) this.incr = mss;
        this.incr += Math.floor((mss * mss) / this.incr) + Math.floor(mss / 16);
        if ((this.cwnd + 1) * mss <= this.incr) this.cwnd = Math.floor((this.incr + mss - 1) / (mss > 0 ? mss : 1));
      }
      if (this.cwnd > this.rmtWnd) {
        this.cwnd = this.rmtWnd;
        this.incr = this.rmtWnd * mss;
      }
    }
    return 0;
  }

  private updateAck(rtt: number): void {
    if (this.rxSrtt === 0) {
      this.rxSrtt = rtt;
      this.rxRttval = Math.floor(rtt / 2);
    } else {
      const delta = Math.abs(rtt - this.rxSrtt);
      this.rxRttval = Math.floor((3 * this.rxRttval + delta) / 4);
      this.rxSrtt = Math.max(1, Math.floor((7 * this.rxSrtt + rtt) / 8));
    }
    const rto = this.rxSrtt + Math.max(this.interval, 4 * this.rxRttval);
    this.rxRto = Math.min(RTO_MAX, Math.max(this.rxMinrto, rto));
  }

  private shrinkBuf(): void {
    this.sndUna = this.sndBuf.length > 0 ? this.sndBuf[0]!.sn : this.sndNxt;
  }

  private parseAck(sn: number): void {
    if (diff(sn, this.sndUna) < 0 || diff(sn, this.sndNxt) >= 0) return;
    for (let i = 0; i < this.sndBuf.length; i++) {
      const s = this.sndBuf[i]!;
      if (s.sn === sn) {
        this.sndBuf.splice(i, 1);
        return;
      }
      if (diff(sn, s.sn) < 0) return;
    }
  }

  private parseUna(una: number): void {
    let n = 0;
    while (n < this.sndBuf.length && diff(una, this.sndBuf[n]!.sn) > 0) n++;
    if (n > 0) this.sndBuf.splice(0, n);
  }

  /** every segment sent before `sn` and still unacknowledged was skipped by one more ACK */
  private parseFastack(sn: number): void {
    if (diff(sn, this.sndUna) < 0 || diff(sn, this.sndNxt) >= 0) return;
    for (const s of this.sndBuf) {
      if (diff(sn, s.sn) < 0) break;
      if (sn !== s.sn) s.fastack++;
    }
  }

  private parseData(sn: number, frg: number, data: Uint8Array): void {
    if (diff(sn, (this.rcvNxt + this.rcvWnd) >>> 0) >= 0 || diff(sn, this.rcvNxt) < 0) return;
    // into rcvBuf in sn order, once
    let i = this.rcvBuf.length;
    while (i > 0 && diff(sn, this.rcvBuf[i - 1]!.sn) <= 0) {
      if (this.rcvBuf[i - 1]!.sn === sn) return;
      i--;
    }
    const s = seg(data, frg);
    s.sn = sn;
    this.rcvBuf.splice(i, 0, s);
    this.moveToQueue();
  }

  private wndUnused(): number {
    return this.rcvQueue.length < this.rcvWnd ? this.rcvWnd - this.rcvQueue.length : 0;
  }

  /** send what is due: ACKs, window probes, new segments the windows allow, retransmissions */
  flush(): void {
    if (!this.updated) return;
    const current = this.current;
    const buf = this.buffer;
    let ptr = 0;
    const wnd = this.wndUnused();
    const room = (need: number) => {
      if (ptr + need > this.mtu) {
        this.output(Buffer.from(buf.subarray(0, ptr)));
        ptr = 0;
      }
    };
    const header = (cmd: number, frg: number, ts: number, sn: number, len: number) => {
      buf.writeUInt32LE(this.conv, ptr);
      buf[ptr + 4] = cmd;
      buf[ptr + 5] = frg;
      buf.writeUInt16LE(wnd, ptr + 6);
      buf.writeUInt32LE(ts >>> 0, ptr + 8);
      buf.writeUInt32LE(sn >>> 0, ptr + 12);
      buf.writeUInt32LE(this.rcvNxt, ptr + 16);
      buf.writeUInt32LE(len, ptr + 20);
      ptr += KCP_OVERHEAD;
    };
    for (let i = 0; i < this.acks.length; i += 2) {
      room(KCP_OVERHEAD);
      header(CMD_ACK, 0, this.acks[i + 1]!, this.acks[i]!, 0);
    }
    this.acks = [];
    // the peer's window is closed: probe it, backing off from 7 s to 120 s
    if (this.rmtWnd === 0) {
      if (this.probeWait === 0) {
        this.probeWait = PROBE_INIT;
        this.tsProbe = (current + this.probeWait) >>> 0;
      } else if (diff(current, this.tsProbe) >= 0) {
        if (this.probeWait < PROBE_INIT) this.probeWait = PROBE_INIT;
        this.probeWait = Math.min(PROBE_LIMIT, this.probeWait + Math.floor(this.probeWait / 2));
        this.tsProbe = (current + this.probeWait) >>> 0;
        this.probe |= ASK_SEND;
      }
    } else {
      this.tsProbe = 0;
      this.probeWait = 0;
    }
    if (this.probe & ASK_SEND) {
      room(KCP_OVERHEAD);
      header(CMD_WASK, 0, 0, 0, 0);
    }
    if (this.probe & ASK_TELL) {
      room(KCP_OVERHEAD);
      header(CMD_WINS, 0, 0, 0, 0);
    }
    this.probe = 0;
    let cwnd = Math.min(this.sndWnd, this.rmtWnd);
    if (this.nocwnd === 0) cwnd = Math.min(this.cwnd, cwnd);
    while (diff(this.sndNxt, (this.sndUna + cwnd) >>> 0) < 0 && this.sndQueue.length > 0) {
      const s = this.sndQueue.shift()!;
      s.ts = current;
      s.sn = this.sndNxt;
      this.sndNxt = (this.sndNxt + 1) >>> 0;
      s.resendts = current;
      s.rto = this.rxRto;
      s.fastack = 0;
      s.xmit = 0;
      this.sndBuf.push(s);
    }
    const resent = this.fastresend > 0 ? this.fastresend : 0xffffffff;
    const rtomin = this.nodelay === 0 ? this.rxRto >> 3 : 0;
    let change = 0;
    let lost = false;
    for (const s of this.sndBuf) {
      let needsend = false;
      if (s.xmit === 0) {
        needsend = true;
        s.xmit++;
        s.rto = this.rxRto;
        s.resendts = (current + s.rto + rtomin) >>> 0;
      } else if (diff(current, s.resendts) >= 0) {
        needsend = true;
        s.xmit++;
        this.xmit++;
        if (this.nodelay === 0) s.rto += Math.max(s.rto, this.rxRto);
        else s.rto += Math.floor((this.nodelay < 2 ? s.rto : this.rxRto) / 2);
        s.resendts = (current + s.rto) >>> 0;
        lost = true;
      } else if (s.fastack >= resent && (s.xmit <= this.fastlimit || this.fastlimit <= 0)) {
        needsend = true;
        s.xmit++;
        s.fastack = 0;
        s.resendts = (current + s.rto) >>> 0;
        change++;
      }
      if (needsend) {
        s.ts = current;
        room(KCP_OVERHEAD + s.data.length);
        header(CMD_PUSH, s.frg, current, s.sn, s.data.length);
        buf.set(s.data, ptr);
        ptr += s.data.length;
        if (s.xmit >= this.deadLink) this.state = -1;
      }
    }
    if (ptr > 0) this.output(Buffer.from(buf.subarray(0, ptr)));
    if (change) {
      const inflight = (this.sndNxt - this.sndUna) >>> 0;
      this.ssthresh = Math.max(THRESH_MIN, Math.floor(inflight / 2));
      this.cwnd = this.ssthresh + resent;
      this.incr = this.cwnd * this.mss;
    }
    if (lost) {
      this.ssthresh = Math.max(THRESH_MIN, Math.floor(cwnd / 2));
      this.cwnd = 1;
      this.incr = this.mss;
    }
    if (this.cwnd < 1) {
      this.cwnd = 1;
      this.incr = this.mss;
    }
  }

  /** call every `interval` ms (or at check()'s time) with the clock in ms */
  update(nowMs: number): void {
    this.current = nowMs >>> 0;
    if (!this.updated) {
      this.updated = true;
      this.tsFlush = this.current;
    }
    let slap = diff(this.current, this.tsFlush);
    if (slap >= 10000 || slap < -10000) {
      this.tsFlush = this.current;
      slap = 0;
    }
    if (slap >= 0) {
      this.tsFlush = (this.tsFlush + this.interval) >>> 0;
      if (diff(this.current, this.tsFlush) >= 0) this.tsFlush = (this.current + this.interval) >>> 0;
      this.flush();
    }
  }

  /** when update() is next needed (ms, the same clock) */
  check(nowMs: number): number {
    const current = nowMs >>> 0;
    if (!this.updated) return current;
    let tsFlush = this.tsFlush;
    if (diff(current, tsFlush) >= 10000 || diff(current, tsFlush) < -10000) tsFlush = current;
    if (diff(current, tsFlush) >= 0) return current;
    let next = diff(tsFlush, current);
    for (const s of this.sndBuf) {
      const d = diff(s.resendts, current);
      if (d <= 0) return current;
      if (d < next) next = d;
    }
    return (current + Math.min(next, this.interval)) >>> 0;
  }
}
