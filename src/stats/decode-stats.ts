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

export class DecodeStats {
  readonly byStatus = new Float64Array(NUM_STATUS);
  ipv4 = 0;
  ipv6 = 0;
  tcp = 0;
  udp = 0;
  icmp = 0;
  icmpv6 = 0;
  fragments = 0;
  /** not IP, or IP carrying a protocol other than TCP/UDP/ICMP (or a non-first fragment) */
  other = 0;

  add(v: PacketView): void {
    const st = v.status;
    this.byStatus[st]!++;
    if (st !== OK) {
      if (st === NOT_IP) this.other++;
      else if (v.ipVersion === 4) this.ipv4++;
      else if (v.ipVersion === 6) this.ipv6++;
      return;
    }
    if (v.ipVersion === 4) this.ipv4++;
    else this.ipv6++;
    if (v.isFragment) this.fragments++;
    if (!v.hasL4) {
      this.other++;
      return;
    }
    switch (v.proto) {
      case IPPROTO_TCP:
        this.tcp++;
        break;
      case IPPROTO_UDP:
        this.udp++;
        break;
      case IPPROTO_ICMP:
        this.icmp++;
        break;
      case IPPROTO_ICMPV6:
        this.icmpv6++;
        break;
      default:
        this.other++;
    }
  }

  decoded(): DecodedCounts {
    const { ipv4, ipv6, tcp, udp, icmp, icmpv6, fragments, other } = this;
    return { ipv4, ipv6, tcp, udp, icmp, icmpv6, fragments, other };
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
