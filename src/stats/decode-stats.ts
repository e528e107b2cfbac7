/** Per-file decode counters: typed arrays indexed by status code, folded into names only for reports. */
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, type PacketView } from '../packet/view.js';
import { DROP_REASONS, NOT_IP, NUM_STATUS, OK } from '../packet/status.js';

export interface DecodedCounts {
  ipv4: number;
  ipv6: number;
  tcp: number;
  udp: number;
  icmp: number;
  icmpv6: number;
  fragments: number;
  other: number;
}

/** index in DecodeStats.ok: IPv4 0-256, IPv6 257-513; 256 (+257) = no L4 header (a later fragment, another protocol) */
const OK_V6 = 257;
const NO_L4 = 256;

export class DecodeStats {
  readonly byStatus = new Float64Array(NUM_STATUS);
  /** decoded packets by IP version and L4 protocol: one increment per packet, named only for reports */
  private readonly ok = new Float64Array(2 * OK_V6);
  private fragments = 0;
  /** packets not decoded, by IP version (the rest of them are not IP) */
  private badV4 = 0;
  private badV6 = 0;

  add(v: PacketView): void {
    const st = v.status;
    if (st !== OK) {
      this.addDrop(v, st);
      return;
    }
    this.ok[(v.ipVersion === 6 ? OK_V6 : 0) + (v.hasL4 ? v.proto : NO_L4)]!++;
    if (v.isFragment) this.fragments++;
  }

  private addDrop(v: PacketView, st: number): void {
    this.byStatus[st]!++;
    if (st === NOT_IP) return;
    if (v.ipVersion === 4) this.badV4++;
    else if (v.ipVersion === 6) this.badV6++;
  }

  decoded(): DecodedCounts {
    const ok = this.ok;
    const both = (p: number): number => ok[p]! + ok[OK_V6 + p]!;
    let ipv4 = this.badV4;
    let ipv6 = this.badV6;
    for (let p = 0; p < OK_V6; p++) {
      ipv4 += ok[p]!;
      ipv6 += ok[OK_V6 + p]!;
    }
    const tcp = both(IPPROTO_TCP);
    const udp = both(IPPROTO_UDP);
    const icmp = both(IPPROTO_ICMP);
    const icmpv6 = both(IPPROTO_ICMPV6);
    // not IP, or IP without a TCP/UDP/ICMP header (another protocol, a later fragment)
    const other = this.byStatus[NOT_IP]! + ipv4 - this.badV4 + ipv6 - this.badV6 - tcp - udp - icmp - icmpv6;
    return { ipv4, ipv6, tcp, udp, icmp, icmpv6, fragments: this.fragments, other };
  }

  drops(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < NUM_STATUS; i++) {
      if (i === OK || i === NOT_IP) continue;
      const n = this.byStatus[i]!;
      if (n > 0) out[DROP_REASONS[i]!] = n;
    }
    return out;
  }
}
