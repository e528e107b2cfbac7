/**
 * The netfilter TCP state machine (Linux nf_conntrack_proto_tcp.c nf_conntrack_tcp_packet(), without window
 * tracking) over the table of tcp.ts: sIG/sIV handling, reopen on SYN in TIME_WAIT/CLOSE after a close or
 * RST (RFC 1122), immediate removal on RST before any reply, SYN retransmits not refreshing the timer,
 * mid-stream pickup capped at the 300 s "unacknowledged" timeout until a reply is seen, ASSURED, the RFC 5961
 * challenge ACK in LAST_ACK. Rows and actions are the connection tracker's.
 */
import type { Conntrack } from '../conntrack/conntrack.js';
import { C_IGNORE, C_INVALID, C_KILLED, C_REOPENED, S_ASSURED, S_CHALLENGE, S_CLOSE_INIT0, S_CLOSE_INIT1, S_NO_LAST, S_SEEN_REPLY, S_SIMOPEN, STEP_INVALID, STEP_OK, STEP_REOPEN } from '../conntrack/bits.js';
import { TCP_FIN, TCP_RST, TCP_SYN, type PacketView } from '../packet/view.js';
import { NI_ACK, NI_NONE, NI_RST, NI_SYN, NI_SYNACK, N_CLOSE, N_ESTABLISHED, N_FIN_WAIT, N_IGNORE, N_INVALID, N_LAST_ACK, N_SYN_RECV, N_SYN_SENT, N_SYN_SENT2, N_TIME_WAIT, N_UNACK, nfIndex, nfNext } from './tcp.js';

export class NfTcp {
  constructor(private readonly ct: Conntrack) {}

  step(c: number, dir: number, v: PacketView, isNew: boolean): number {
    const ct = this.ct;
    const flags = v.tcpFlags;
    let old = ct.state[c]!;
    const idx = nfIndex(flags);
    let ns = nfNext(dir, idx, old);
    const st = ct.status[c]!;
    const last = ct.tcpLast[c]!;
    const lastIdx = st & S_NO_LAST ? NI_NONE : last & 7;
    const lastDir = (last >>> 3) & 1;
    let ignored = false;
    switch (ns) {
      case N_SYN_SENT:
        if (old < N_TIME_WAIT) break;
        // reopen from TIME_WAIT/CLOSE after a close or an RST from this side (RFC 1122)
        if (st & (S_CLOSE_INIT0 | S_CLOSE_INIT1) || (lastDir === dir && lastIdx === NI_RST)) {
          ct.counters[C_REOPENED]!++;
          ct.destroy(c, ct.time.nowUs, 'reopened');
          return STEP_REOPEN;
        }
        ignored = true;
        break;
      case N_IGNORE:
        ignored = true;
        break;
      case N_INVALID:
        ct.counters[C_INVALID]!++;
        return STEP_INVALID;
      case N_TIME_WAIT:
        if (old === N_LAST_ACK && idx === NI_ACK && lastDir !== dir && lastIdx === NI_SYN && st & S_CHALLENGE) {
          ct.status[c] = st & ~S_CHALLENGE; // RFC 5961 challenge ACK: not the last ACK
          ct.counters[C_IGNORE]!++;
          ct.seenReply(c, dir);
          return STEP_OK;
        }
        break;
      case N_SYN_SENT2:
        ct.status[c] = st | S_SIMOPEN;
        break;
      case N_SYN_RECV:
        if (dir === 1 && idx === NI_ACK && st & S_SIMOPEN) ns = N_ESTABLISHED;
        break;
      default:
        break;
    }
    if (ignored) {
      if (idx === NI_SYNACK && lastIdx === NI_SYN && lastDir !== dir && v.ack === ct.lastEnd[c]) {
        // this SYN/ACK answers a SYN we ignored: client and server are in sync, resynchronise
        old = N_SYN_SENT;
        ns = N_SYN_RECV;
      } else {
        ct.tcpLast[c] = idx | (dir << 3);
        ct.status[c]! &= ~S_NO_LAST;
        ct.lastEnd[c] = (v.seq + v.payloadLen + (flags & TCP_SYN ? 1 : 0) + (flags & TCP_FIN ? 1 : 0)) >>> 0;
        if (idx === NI_SYN && dir === 0) {
          if (old === N_LAST_ACK) ct.status[c]! |= S_CHALLENGE;
          else ct.status[c]! &= ~S_CHALLENGE;
        }
        ct.counters[C_IGNORE]!++;
        ct.seenReply(c, dir);
        return STEP_OK;
      }
    }
    // in-window (no window tracking: every segment is). last_end is recorded only for ignored segments, as
    // the kernel does when it does not track windows (tcp_in_window keeps it otherwise)
    ct.tcpLast[c] = idx | (dir << 3);
    ct.status[c]! &= ~S_NO_LAST;
    ct.state[c] = ns;
    if (ns !== old) ct.transition(c, old, dir);
    if (old !== ns && ns === N_FIN_WAIT) ct.status[c]! |= dir === 0 ? S_CLOSE_INIT0 : S_CLOSE_INIT1;
    const to = ct.tcpTimeouts;
    let timeout = idx === NI_RST ? to[N_CLOSE]! : ct.tcpTimeout(c, ns);
    const s2 = ct.status[c]!;
    let changed = old !== ns;
    if (!(s2 & S_SEEN_REPLY)) {
      if (flags & TCP_RST) {
        // only a RST answered: not an established connection, delete it at once
        if (isNew) ct.emit('new', c);
        ct.counters[C_KILLED]!++;
        ct.destroy(c, ct.time.nowUs, 'killed');
        return STEP_OK;
      }
      if (idx === NI_SYN && old === N_SYN_SENT && !isNew) {
        // SYN retransmit (or simultaneous-open SYN): the state may change, the timeout is not renewed
        if (changed) ct.emit('update', c);
        ct.seenReply(c, dir);
        return STEP_OK;
      }
      if (ns === N_ESTABLISHED && timeout > to[N_UNACK]!) timeout = to[N_UNACK]!;
    } else if (!(s2 & S_ASSURED) && (old === N_SYN_RECV || old === N_ESTABLISHED) && ns === N_ESTABLISHED) {
      ct.status[c] = s2 | S_ASSURED;
      changed = true;
    }
    ct.armTimeout(c, timeout, isNew);
    const firstReply = ct.seenReply(c, dir);
    if (isNew) ct.emit('new', c);
    else if (changed || firstReply) ct.emit('update', c);
    return STEP_OK;
  }

  /** the timeout in force in state st (the unacknowledged cap while no reply was seen) */
  timeout(c: number, st: number): number {
    const ct = this.ct;
    const t = ct.tcpTimeout(c, st);
    if (st === N_ESTABLISHED && !(ct.status[c]! & S_SEEN_REPLY)) return Math.min(t, ct.tcpTimeouts[N_UNACK]!);
    return t;
  }
}
