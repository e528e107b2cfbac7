/**
 * The protocol state machines of a profile, chosen once per connection tracker:
 * - netfilter: Linux nf_conntrack (TCP in tcp-nf.ts; UDP 30 s until replied, 120 s and ASSURED once a
 *   replied flow is older than 2 s; ICMP queries 30 s). UDP and ICMP, which have no kernel state, are shown
 *   as UNREPLIED / REPLIED / ASSURED.
 * - dpvs: DPVS's tables (INPUT for the original direction, OUTPUT for replies; INPUT-ONLY for connections
 *   whose replies bypass the box, as DR/tunnel); the timeout changes with the state and every packet re-arms
 *   it; UDP ONEWAY/NORMAL; ICMP 60 s.
 * Each machine is a class with `step()` over the tracker's rows; the tracker calls the three of its profile.
 */
import type { Conntrack } from '../conntrack/conntrack.js';
import { F_INPUT_ONLY, S_ASSURED, S_SEEN_REPLY, STEP_OK } from '../conntrack/bits.js';
import { IPPROTO_TCP, IPPROTO_UDP, type PacketView } from '../packet/view.js';
import { DPVS_ICMP_TIMEOUT, NF_ICMP_TIMEOUT } from './icmp.js';
import { D_CLOSE, D_DIR_INPUT, D_DIR_INPUT_ONLY, D_DIR_OUTPUT, D_ESTABLISHED, D_SYN_RECV, D_SYN_SENT, DPVS_TCP_STATE_NAMES, DPVS_TCP_TIMEOUTS, dpvsNext, N_CLOSE, N_ESTABLISHED, N_SYN_SENT, NF_TCP_STATE_NAMES, NF_TCP_TIMEOUTS } from './tcp.js';
import { NfTcp } from './tcp-nf.js';
import { DPVS_UDP_STATE_NAMES, DPVS_UDP_TIMEOUTS, NF_UDP_REPLIED, NF_UDP_STREAM_AFTER, NF_UDP_UNREPLIED, U_NONE, U_NORMAL, U_ONEWAY } from './udp.js';

export type Profile = 'netfilter' | 'dpvs';

/* netfilter UDP / ICMP pseudo-states */
export const X_UNREPLIED = 0;
export const X_REPLIED = 1;
export const X_ASSURED = 2;
const X_NAMES = ['UNREPLIED', 'REPLIED', 'ASSURED'];

export interface TcpMachine {
  step(c: number, dir: number, v: PacketView, isNew: boolean): number;
  timeout(c: number, st: number): number;
}
export interface FlowMachine {
  step(c: number, dir: number, isNew: boolean): number;
}

export interface Machines {
  tcp: TcpMachine;
  udp: FlowMachine;
  icmp: FlowMachine;
  tcpNames: string[];
  tcpTimeouts: readonly number[];
  defaults: { unreplied: number; replied: number; oneway: number; normal: number; icmp: number };
  /** the profile's TCP states: ESTABLISHED, CLOSE, the one a new connection waits in for its server's answer, and the synproxy's SYN_SENT */
  established: number;
  closed: number;
  awaitServer: number;
  synSent: number;
  timeoutOf(c: number): number;
  /** the name of state `st` of a connection of protocol `p` */
  nameOf(p: number, st: number): string;
}

class DpvsTcp implements TcpMachine {
  constructor(private readonly ct: Conntrack) {}

  step(c: number, dir: number, v: PacketView, isNew: boolean): number {
    const ct = this.ct;
    const old = ct.state[c]!;
    const off = ct.flags[c]! & F_INPUT_ONLY ? D_DIR_INPUT_ONLY : dir === 0 ? D_DIR_INPUT : D_DIR_OUTPUT;
    const ns = dpvsNext(off, v.tcpFlags, old);
    if (dir === 1) ct.status[c]! |= S_SEEN_REPLY;
    if (ns !== old || isNew) {
      ct.state[c] = ns;
      if (ns !== old) ct.transition(c, old, dir);
      ct.armTimeout(c, ct.tcpTimeout(c, ns), isNew);
      ct.emit(isNew ? 'new' : 'update', c);
      if (ns === D_ESTABLISHED && !(ct.status[c]! & S_ASSURED)) ct.status[c]! |= S_ASSURED;
    } else {
      ct.armTimeout(c, ct.tcpTimeout(c, old), false);
    }
    return STEP_OK;
  }

  timeout(c: number, st: number): number {
    return this.ct.tcpTimeout(c, st);
  }
}

class DpvsUdp implements FlowMachine {
  constructor(private readonly ct: Conntrack) {}

  step(c: number, dir: number, isNew: boolean): number {
    const ct = this.ct;
    const old = ct.state[c]!;
    const ns = dir === 1 ? U_NORMAL : old === U_NONE ? U_ONEWAY : old;
    if (dir === 1) ct.status[c]! |= S_SEEN_REPLY;
    ct.state[c] = ns;
    if (ns !== old) ct.transition(c, old, dir);
    ct.armTimeout(c, ct.udpTimeout(c, ns === U_NORMAL ? ct.udpT.normal : ct.udpT.oneway), isNew);
    if (isNew) ct.emit('new', c);
    else if (ns !== old) ct.emit('update', c);
    return STEP_OK;
  }
}

class NfUdp implements FlowMachine {
  constructor(private readonly ct: Conntrack) {}

  step(c: number, dir: number, isNew: boolean): number {
    const ct = this.ct;
    const st = ct.status[c]!;
    const old = ct.state[c]!;
    let timeout = ct.udpT.unreplied;
    let changed = false;
    if (st & S_SEEN_REPLY) {
      if (ct.time.nowUs - ct.acct.firstUs(c) > NF_UDP_STREAM_AFTER * 1e6) {
        timeout = ct.udpT.replied;
        if (!(st & S_ASSURED)) {
          ct.status[c] = st | S_ASSURED;
          ct.state[c] = X_ASSURED;
          changed = true;
        }
      }
    }
    ct.armTimeout(c, ct.udpTimeout(c, timeout), isNew);
    if (ct.seenReply(c, dir)) {
      if (ct.state[c] === X_UNREPLIED) ct.state[c] = X_REPLIED;
      changed = true;
    }
    if (ct.state[c] !== old) ct.transition(c, old, dir);
    if (isNew) ct.emit('new', c);
    else if (changed) ct.emit('update', c);
    return STEP_OK;
  }
}

class Icmp implements FlowMachine {
  constructor(private readonly ct: Conntrack) {}

  step(c: number, dir: number, isNew: boolean): number {
    const ct = this.ct;
    ct.armTimeout(c, ct.icmpT, isNew);
    const first = ct.seenReply(c, dir);
    if (first) {
      const old = ct.state[c]!;
      ct.state[c] = X_REPLIED;
      if (old !== X_REPLIED) ct.transition(c, old, dir);
    }
    if (isNew) ct.emit('new', c);
    else if (first) ct.emit('update', c);
    return STEP_OK;
  }
}

export function machines(profile: Profile, ct: Conntrack): Machines {
  const icmp = new Icmp(ct);
  if (profile === 'dpvs') {
    const tcp = new DpvsTcp(ct);
    return {
      tcp,
      udp: new DpvsUdp(ct),
      icmp,
      tcpNames: DPVS_TCP_STATE_NAMES,
      tcpTimeouts: DPVS_TCP_TIMEOUTS,
      defaults: { unreplied: 0, replied: 0, oneway: DPVS_UDP_TIMEOUTS[U_ONEWAY]!, normal: DPVS_UDP_TIMEOUTS[U_NORMAL]!, icmp: DPVS_ICMP_TIMEOUT },
      established: D_ESTABLISHED,
      closed: D_CLOSE,
      awaitServer: D_SYN_RECV,
      synSent: D_SYN_SENT,
      timeoutOf(c) {
        const p = ct.table.protoOf(c);
        if (p === IPPROTO_TCP) return tcp.timeout(c, ct.state[c]!);
        if (p === IPPROTO_UDP) return ct.udpTimeout(c, ct.state[c] === U_NORMAL ? ct.udpT.normal : ct.udpT.oneway);
        return ct.icmpT;
      },
      nameOf(p, st) {
        if (p === IPPROTO_TCP) return ct.tcpNames[st]!;
        return p === IPPROTO_UDP ? DPVS_UDP_STATE_NAMES[st]! : 'NORMAL';
      },
    };
  }
  const tcp = new NfTcp(ct);
  return {
    tcp,
    udp: new NfUdp(ct),
    icmp,
    tcpNames: [...NF_TCP_STATE_NAMES, 'RETRANS', 'UNACK'],
    tcpTimeouts: NF_TCP_TIMEOUTS,
    defaults: { unreplied: NF_UDP_UNREPLIED, replied: NF_UDP_REPLIED, oneway: 0, normal: 0, icmp: NF_ICMP_TIMEOUT },
    established: N_ESTABLISHED,
    closed: N_CLOSE,
    awaitServer: N_SYN_SENT,
    synSent: N_SYN_SENT,
    timeoutOf(c) {
      const p = ct.table.protoOf(c);
      if (p === IPPROTO_TCP) return tcp.timeout(c, ct.state[c]!);
      if (p === IPPROTO_UDP) return ct.udpTimeout(c, ct.state[c] === X_ASSURED ? ct.udpT.replied : ct.udpT.unreplied);
      return ct.icmpT;
    },
    nameOf(p, st) {
      return p === IPPROTO_TCP ? ct.tcpNames[st]! : X_NAMES[st]!;
    },
  };
}

/** every state name a connection can have in a profile (TCP's, then the UDP/ICMP ones) */
export function stateNames(profile: Profile): string[] {
  return profile === 'dpvs' ? [...new Set([...DPVS_TCP_STATE_NAMES, ...DPVS_UDP_STATE_NAMES, 'NORMAL'])] : [...NF_TCP_STATE_NAMES, ...X_NAMES];
}
