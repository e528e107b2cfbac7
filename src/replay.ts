/**
 * Replay of one capture file in virtual time: every record is decoded in place, counted, and run through
 * connection tracking with the clock set from its timestamp. Outputs (events, per-connection records,
 * snapshot) are written only when asked for.
 */
import { readCapture, type ReadOptions } from './capture/reader.js';
import { CaptureError, formatTs, PacketRecord } from './capture/record.js';
import { decode } from './packet/decode.js';
import { sameAddr } from './packet/bytes.js';
import { l4ChecksumStatus, ipv4HeaderOk } from './packet/checksum.js';
import { IPPROTO_TCP, PacketView, TCP_ACK, TCP_RST, TCP_SYN } from './packet/view.js';
import { DecodeStats, type DecodedCounts } from './stats/decode-stats.js';
import { connRecord, counterObject, eventJson, gauges, snapshot, writeSnapshot, type Snapshot, type SnapshotService } from './conntrack/records.js';

/** where JSON lines go (a LineWriter for files) */
export interface LineSink {
  line(s: string): void;
}
import { Tracker, type TrackerConfig } from './conntrack/tracker.js';
import { PcapWriter } from './capture/writer.js';
import { FWD_DR, FWD_FNAT, FWD_NAT, FWD_SNAT, serverLabel, ST_CONNS, ST_INBYTES, ST_INPKTS, ST_N, ST_OUTBYTES, ST_OUTPKTS, type Services } from './service/services.js';
import { icmpXlate, natRewrite, natRewrite4 } from './xmit/nat.js';
import { drRewrite } from './xmit/dr.js';
import { tunnelEncap } from './xmit/tunnel.js';
import { decrementTtl } from './xmit/ttl.js';
import { addToa } from './xmit/toa.js';
import { icmpError, ICMPGEN_FRAG_NEEDED, ICMPGEN_TIME_EXCEEDED, tooBig } from './xmit/icmp-gen.js';
import { MAX_CAPLEN } from './capture/pcap.js';
import { SP_NO_CONN, SP_SYN } from './conntrack/tracker.js';
import { Synproxy, SP_DROP, SP_FLUSH, SP_FORWARD, SP_REPLY } from './synproxy/synproxy.js';
import type { SynproxyConfig } from './config.js';

export interface ConnsSummary {
  total: number;
  tcp: number;
  udp: number;
  icmp: number;
  open_at_end: number;
}

export interface ReplaySummary {
  file: string;
  format: 'pcap' | 'pcapng';
  compressed: boolean;
  linktypes: number[];
  packets: number;
  bytes: number;
  first_ts: string | null;
  last_ts: string | null;
  decoded: DecodedCounts;
  drops: Record<string, number>;
  checksums?: { ipv4_bad: number; l4_bad: number; l4_unverified: number };
  conns?: ConnsSummary;
  conntrack?: Record<string, number>;
  /** load balancing: what the LB emitted, what it did not and why, per-service counters */
  lb?: {
    /** ICMP errors the LB generated (fragmentation needed / packet too big, time exceeded) */
    icmp_sent?: { frag_needed: number; time_exceeded: number };
    /** FNAT packets that got a TOA option */
    toa_added?: number;
    /** synproxy counters (DPVS names) */
    synproxy?: Record<string, number>;
    /** persistence templates */
    templates?: { created: number; expired: number; open_at_end: number };
    emitted: number;
    not_emitted: Record<string, number>;
    services: SnapshotService[];
  };
  /** connections open at the end, by protocol and by protocol/state */
  gauges?: { entries: number; by_proto: Record<string, number>; by_state: Record<string, number> };
  warnings: string[];
  /** set when the file could not be read to its end: the counts cover what was read before */
  error?: string;
}

export interface ReplayOptions extends ReadOptions {
  /** verify IPv4 header and L4 checksums: counted, and packets that fail are not tracked (nf_conntrack_checksum) */
  verifyChecksums?: boolean;
  onPacket?: (r: PacketRecord, v: PacketView) => void;
  /** connection tracking; omit to only decode */
  track?: TrackerConfig & {
    drain?: boolean;
    events?: LineSink;
    conns?: LineSink;
    /** receives the table at the end of the replay */
    onSnapshot?: (s: Snapshot) => void;
    /** write the table at the end of the replay to this file (streamed) */
    snapshotFile?: string;
  };
  /** load balancing: services (NAT), and where to write what the LB emits */
  /** decrementTtl: forwarded packets lose one TTL / hop; those arriving with 1 or 0 are not forwarded */
  /** mtu: of the path to the servers (default 1500); bigger packets get ICMP fragmentation needed / packet too big */
  /** synproxy: its settings and the cookie secret (16 bytes) */
  lb?: { services: Services; out?: string; decrementTtl?: boolean; mtu?: number; synproxy?: { cfg: SynproxyConfig; secret: Uint8Array } };
}

export async function replayFile(file: string, opts: ReplayOptions = {}): Promise<ReplaySummary> {
  const view = new PacketView();
  const stats = new DecodeStats();
  let firstSec = -1;
  let firstFrac = 0;
  let firstDigits = 6;
  let lastSec = -1;
  let lastFrac = 0;
  let lastDigits = 6;
  let firstNs = 0;
  let lastNs = 0;
  const verify = opts.verifyChecksums === true;
  let ipv4Bad = 0;
  let l4Bad = 0;
  let l4Unverified = 0;
  const onPacket = opts.onPacket;
  const tc = opts.track;
  const tracker = tc ? new Tracker(tc) : null;
  const lb = opts.lb;
  if (tracker && lb) tracker.lb = lb.services;
  let writer: PcapWriter | null = null;
  let emitted = 0;
  const notEmitted: Record<string, number> = {};
  const skip = (why: string) => (notEmitted[why] = (notEmitted[why] ?? 0) + 1);
  const scratch = lb ? Buffer.allocUnsafe(MAX_CAPLEN + 128) : Buffer.alloc(0);
  const caddr = new Uint32Array(4);
  const oaddr = new Uint32Array(4);
  const aaddr = new Uint32Array(4);
  const baddr = new Uint32Array(4);
  const decTtl = lb?.decrementTtl === true;
  const mtu = lb?.mtu ?? 1500;
  const icmpOut = lb ? Buffer.allocUnsafe(2048) : Buffer.alloc(0);
  const icmpSent = { frag_needed: 0, time_exceeded: 0 };
  /** answer the packet with an ICMP error of the LB's own (emitted like any packet the LB sends) */
  const sendIcmp = (r: PacketRecord, kind: number, pathMtu: number) => {
    const n = icmpError(r.buf, r.linktype, view, kind, pathMtu, icmpOut);
    if (n < 0) return;
    if (kind === ICMPGEN_FRAG_NEEDED) icmpSent.frag_needed++;
    else icmpSent.time_exceeded++;
    emit(r, icmpOut, 0, n, n);
  };
  /**
   * The hop this LB is, for a packet it would forward toward a server over a path of `pathMtu` (0: a reply
   * toward the client or an ICMP error, neither checked nor answered): true when it may go (its TTL then
   * decremented, if configured); else it is answered with time exceeded or fragmentation needed, and counted.
   */
  const hop = (r: PacketRecord, v: PacketView, pathMtu: number): boolean => {
    if (pathMtu > 0 && tooBig(v, pathMtu)) {
      sendIcmp(r, ICMPGEN_FRAG_NEEDED, pathMtu);
      skip('frag_needed');
      return false;
    }
    if (!decTtl || decrementTtl(r.buf, v)) return true;
    // (an expiring reply is only dropped: the error would have to come from the LB's own address)
    if (pathMtu > 0) sendIcmp(r, ICMPGEN_TIME_EXCEEDED, 0);
    skip('ttl_exceeded');
    return false;
  };
  /**
   * Translated modes: the original tuple client:cport -> vip:vport (for SNAT the remote host) is seen on the
   * other side as the inverse of the reply tuple, a:pa -> b:pb (NAT: client -> server, FNAT: local address ->
   * server, SNAT: SNAT address -> remote). `dir` is the packet's, or for an ICMP error the quoted packet's.
   */
  const translate = (b: Uint8Array, view: PacketView, c: number, dir: number, icmpErr: boolean) => {
    const t = tracker!.table;
    if (view.ipVersion === 4 && !icmpErr) {
      // IPv4 TCP/UDP: both endpoints in one rewrite, addresses read in place
      if (dir === 0) natRewrite4(b, view, t.rdst[c]!, t.rdport[c]!, t.rsrc[c]!, t.rsport[c]!);
      else natRewrite4(b, view, t.dst[c]!, t.dport[c]!, t.src[c]!, t.sport[c]!);
      return;
    }
    t.addrWords(c, 'src', caddr);
    t.addrWords(c, 'dst', oaddr);
    t.replyAddrWords(c, 'dst', aaddr);
    t.replyAddrWords(c, 'src', baddr);
    const cport = t.sport[c]!;
    const vport = t.dport[c]!;
    const pa = t.rdport[c]!;
    const pb = t.rsport[c]!;
    if (icmpErr) {
      // 0: the quoted packet went out translated and the error comes back
      if (dir === 0) icmpXlate(b, view, aaddr, caddr, cport, baddr, oaddr, vport);
      else icmpXlate(b, view, oaddr, baddr, pb, caddr, aaddr, pa);
    } else if (dir === 0) {
      natRewrite(b, view, 0, aaddr, pa);
      natRewrite(b, view, 1, baddr, pb);
    } else {
      // a reply seen from the VIP (client-side capture) needs no source change: natRewrite skips it
      natRewrite(b, view, 0, oaddr, vport);
      natRewrite(b, view, 1, caddr, cport);
    }
  };
  /** TOA (FNAT): per connection, the server's ISN + 1 once its SYN-ACK passed (DPVS fdata_seq) */
  const toaOn = lb?.services.list.some((x) => x.toa) === true;
  const toaAck = toaOn && tracker ? new Uint32Array(tracker.table.capacity) : new Uint32Array(0);
  let toaAdded = 0;
  /**
   * Emit a translated packet. FNAT with TOA, as DPVS: the client's SYN and its packets that acknowledge just
   * the server's SYN-ACK (the handshake's ACK, the first data) carry the client's address in a TCP option.
   */
  const sendTranslated = (r: PacketRecord, view: PacketView, c: number, dir: number, toa: boolean) => {
    if (toa && view.proto === IPPROTO_TCP) {
      const f = view.tcpFlags;
      if (dir === 1) {
        if ((f & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK)) toaAck[c] = (view.seq + 1) >>> 0;
      } else {
        const syn = (f & (TCP_SYN | TCP_ACK)) === TCP_SYN;
        if (syn) toaAck[c] = 0; // a new connection (handles are reused)
        if (syn || ((f & (TCP_SYN | TCP_RST)) === 0 && toaAck[c] !== 0 && view.ack === toaAck[c])) {
          tracker!.table.addrWords(c, 'src', caddr);
          const n = addToa(r.buf, view, scratch, caddr, tracker!.table.sport[c]!, mtu);
          if (n > 0) {
            toaAdded++;
            emit(r, scratch, 0, n, n + (r.wirelen - r.caplen));
            return;
          }
        }
      }
    }
    emit(r, r.buf, r.off, r.caplen, r.wirelen);
  };
  /* synproxy: the packets it makes toward servers are decoded and sent like the connection's own */
  const sp = tracker && lb?.synproxy && lb.services.hasSynproxy ? new Synproxy(lb.synproxy.cfg, tracker, lb.services, lb.synproxy.secret) : null;
  const spView = new PacketView();
  /** the record being processed: generated packets take its link type and timestamp */
  let cur: PacketRecord | null = null;
  const gen = new PacketRecord();
  if (sp) {
    sp.toServer = (c, frame, len) => {
      if (!cur) return;
      gen.buf = frame;
      gen.off = 0;
      gen.caplen = gen.wirelen = len;
      gen.linktype = cur.linktype;
      gen.tsSec = cur.tsSec;
      gen.tsFrac = cur.tsFrac;
      gen.digits = cur.digits;
      decode(frame, 0, len, len, cur.linktype, spView);
      sp.translateSaved(frame, spView, c);
      translate(frame, spView, c, 0, false);
      sendTranslated(gen, spView, c, 0, lb!.services.list[tracker!.serviceOf(c)]!.toa);
    };
  }
  /** what the LB transmits: to the output pcap (same link type, timestamps at its precision) */
  const emit = (r: PacketRecord, buf: Uint8Array, off: number, len: number, wirelen: number) => {
    if (!lb?.out) {
      emitted++;
      return;
    }
    if (!writer) writer = new PcapWriter(lb.out, r.linktype, r.digits === 9 ? 9 : 6);
    if (r.linktype !== writer.linktype) {
      skip('other_linktype');
      return;
    }
    const frac = r.digits === writer.digits ? r.tsFrac : writer.digits === 9 ? r.tsFrac * 1000 : Math.floor(r.tsFrac / 1000);
    writer.write(r.tsSec, frac, buf, off, len, wirelen);
    emitted++;
  };
  if (tracker && tc?.events) {
    const w = tc.events;
    tracker.onEvent = (type, c, tsUs) => w.line(eventJson(tracker, type, c, tsUs));
  }
  if (tracker && tc?.conns) {
    const w = tc.conns;
    tracker.onDestroy = (c, _tsUs, reason) => w.line(JSON.stringify(connRecord(tracker, c, reason)));
  }
  const build = (res: { format: 'pcap' | 'pcapng'; linktypes: number[]; packets: number; bytes: number; warnings: string[] }, compressed: boolean): ReplaySummary => {
    const summary: ReplaySummary = {
      file,
      format: res.format,
      compressed,
      linktypes: res.linktypes,
      packets: res.packets,
      bytes: res.bytes,
      first_ts: firstSec < 0 ? null : formatTs(firstSec, firstFrac, firstDigits),
      last_ts: lastSec < 0 ? null : formatTs(lastSec, lastFrac, lastDigits),
      decoded: stats.decoded(),
      drops: stats.drops(),
      warnings: res.warnings,
    };
    if (verify) summary.checksums = { ipv4_bad: ipv4Bad, l4_bad: l4Bad, l4_unverified: l4Unverified };
    if (lb) {
      summary.lb = lbSummary(lb.services, emitted, notEmitted);
      if (icmpSent.frag_needed + icmpSent.time_exceeded > 0) summary.lb.icmp_sent = icmpSent;
      if (toaOn) summary.lb.toa_added = toaAdded;
      if (sp) summary.lb.synproxy = sp.counterObject();
      if (tracker?.templates) summary.lb.templates = { created: tracker.templates.created, expired: tracker.templates.expired, open_at_end: tracker.templates.count };
    }
    if (tracker) {
      summary.conns = { total: tracker.created, ...tracker.createdByProto, open_at_end: tracker.table.count };
      summary.conntrack = counterObject(tracker);
      summary.gauges = gauges(tracker);
    }
    return summary;
  };
  const finishTracking = () => {
    writer?.close();
    if (!tracker || !tc) return;
    if (tc.drain) tracker.drain();
    if (tc.conns) for (const c of tracker.handles()) tc.conns.line(JSON.stringify(connRecord(tracker, c, 'open')));
    if (tc.onSnapshot) tc.onSnapshot(snapshot(tracker, file));
    if (tc.snapshotFile) writeSnapshot(tracker, file, tc.snapshotFile, lb ? lbSummary(lb.services, emitted, notEmitted).services : undefined, sp?.counterObject());
  };
  let res;
  try {
    res = await readCapture(
    file,
    (r) => {
      decode(r.buf, r.off, r.caplen, r.wirelen, r.linktype, view);
      stats.add(view);
      // earliest and latest timestamps (as capinfos reports them; captures can be out of order)
      const fracNs = r.digits === 9 ? r.tsFrac : r.tsFrac * 1000;
      if (firstSec < 0 || r.tsSec < firstSec || (r.tsSec === firstSec && fracNs < firstNs)) {
        firstSec = r.tsSec;
        firstNs = fracNs;
        firstFrac = r.tsFrac;
        firstDigits = r.digits;
      }
      if (lastSec < 0 || r.tsSec > lastSec || (r.tsSec === lastSec && fracNs > lastNs)) {
        lastSec = r.tsSec;
        lastNs = fracNs;
        lastFrac = r.tsFrac;
        lastDigits = r.digits;
      }
      let badSum = false;
      if (verify && view.status === 0) {
        if (view.ipVersion === 4 && !ipv4HeaderOk(r.buf, view)) {
          ipv4Bad++;
          badSum = true;
        }
        const c = l4ChecksumStatus(r.buf, view);
        if (c === 0) {
          l4Bad++;
          badSum = true;
        } else if (c < 0 && view.hasL4) l4Unverified++;
      }
      if (tracker) {
        cur = r;
        tracker.setTime(r.tsSec, r.tsFrac, r.digits);
        const e = badSum ? (tracker.rejectChecksum(), -1) : tracker.track(view);
        if (lb) {
          const icmpErr = view.icmpIsError && view.inner.valid;
          if (sp && (e === SP_NO_CONN || e === SP_SYN)) {
            // synproxy step 1 or 2, or a new handshake on a closing connection
            const a = e === SP_NO_CONN ? sp.noConn(r.buf, view) : sp.synOnConn(r.buf, view, tracker.spConn);
            if (a === SP_REPLY) emit(r, r.buf, r.off, sp.replyLen, sp.replyLen);
            else if (a === SP_DROP) skip('synproxy');
            else if (a === SP_FORWARD) skip('not_tracked');
          } else if (e < 0) skip(view.status !== 0 ? 'decode_drop' : badSum ? 'bad_checksum' : 'not_tracked');
          else if (tracker.serviceOf(e >>> 1) < 0) skip('not_service');
          else if (view.isFragment || (view.proto !== 6 && view.proto !== 17 && !icmpErr)) skip('not_tcp_udp');
          else {
            const c = e >>> 1;
            const s = lb.services.list[tracker.serviceOf(c)]!;
            const d = tracker.serverOf(c);
            const mode = s.fwd[d]!;
            const v6 = view.ipVersion === 6;
            const a = sp !== null && !icmpErr && tracker.isSynproxy(c) ? sp.onConn(r.buf, view, c, e & 1) : SP_FORWARD;
            if (a === SP_FLUSH) {
              // the server's SYN-ACK: the saved packets go (TOA on those that acknowledge it)
              if (toaOn) toaAck[c] = (view.seq + 1) >>> 0;
              sp!.flush(c);
              skip('synproxy_handshake');
            } else if (a === SP_DROP) skip('synproxy');
            else if (a !== SP_FORWARD) {
              // saved for the server
            } else if (mode === FWD_NAT || mode === FWD_FNAT || mode === FWD_SNAT) {
              // (a packet hop() refuses expired here or does not fit the path: counted, maybe answered, by hop)
              if (hop(r, view, (e & 1) === 0 && !icmpErr ? mtu : 0)) {
                translate(r.buf, view, c, e & 1, icmpErr);
                sendTranslated(r, view, c, e & 1, s.toa && !icmpErr);
              }
            } else {
              // DR and tunnel: the server answers the client directly; only what goes to the VIP is forwarded
              const toVip = sameAddr(view.dst, s.vip, v6);
              if (!toVip) skip('direct_return');
              else if (!hop(r, view, mode === FWD_DR ? mtu : mtu - (v6 ? 40 : 20) - (s.gue ? 8 : 0))) {
                // expired here (the tunnel's inner packet is the one forwarded, as the kernel's)
              } else if (mode === FWD_DR) {
                if (r.linktype !== 1) skip('dr_needs_ethernet');
                else {
                  drRewrite(r.buf, r.off, s.mac[d]!);
                  emit(r, r.buf, r.off, r.caplen, r.wirelen);
                }
              } else {
                const n = tunnelEncap(r.buf, view, scratch, s.vip, s.serverAddr[d]!, s.gue, s.guePort);
                if (n < 0) skip('tunnel_too_big');
                else emit(r, scratch, 0, n, n + (r.wirelen - r.caplen));
              }
            }
          }
        }
      }
      if (onPacket) onPacket(r, view);
    },
    opts,
  );
  } catch (e) {
    if (e instanceof CaptureError && e.partial) {
      finishTracking();
      const s = build(e.partial, false);
      s.error = e.message;
      throw new ReplayError(e, s);
    }
    throw new ReplayError(e as Error, null);
  }
  finishTracking();
  return build(res, res.compressed);
}

function lbSummary(sv: Services, emitted: number, notEmitted: Record<string, number>): NonNullable<ReplaySummary['lb']> {
  return {
    emitted,
    not_emitted: notEmitted,
    services: sv.list.map((s) => ({
      service: s.label,
      scheduler: s.cfg.scheduler,
      forward: s.cfg.forward,
      conns: s.stats[ST_CONNS]!,
      in_pkts: s.stats[ST_INPKTS]!,
      out_pkts: s.stats[ST_OUTPKTS]!,
      in_bytes: s.stats[ST_INBYTES]!,
      out_bytes: s.stats[ST_OUTBYTES]!,
      rate: s.est.rates(0),
      servers: s.cfg.servers.map((x, i) => ({
        server: serverLabel(x),
        weight: s.dests.weight[i]!,
        conns: s.destStats[i * ST_N + ST_CONNS]!,
        in_pkts: s.destStats[i * ST_N + ST_INPKTS]!,
        out_pkts: s.destStats[i * ST_N + ST_OUTPKTS]!,
        in_bytes: s.destStats[i * ST_N + ST_INBYTES]!,
        out_bytes: s.destStats[i * ST_N + ST_OUTBYTES]!,
        active: s.dests.active[i]!,
        inactive: s.dests.inactive[i]!,
        rate: s.destEst.rates(i),
      })),
    })),
  };
}

/** A file that could not be replayed to its end; `summary` holds what was read before, when anything was. */
export class ReplayError extends Error {
  constructor(
    override readonly cause: Error,
    readonly summary: ReplaySummary | null,
  ) {
    super(cause.message);
    this.name = 'ReplayError';
  }
}
