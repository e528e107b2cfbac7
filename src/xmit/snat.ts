/**
 * SNAT (DPVS's SNAT match service): connections that inside hosts open to the outside leave from the
 * scheduled SNAT address (the service's "server") and a port of that address's pool; the remote host answers
 * the SNAT address, and the answer goes back to the inside host. The rewrite is NAT's (nat.ts).
 */
import { FWD_SNAT, type ForwardMode } from './mode.js';

export const snatMode: ForwardMode = {
  code: FWD_SNAT,
  name: 'snat',
  translated: true,
  reply(k, s, d, r) {
    const l = s.pool!.takeFrom(d);
    if (l < 0) return -1;
    r.v6 = k.v6;
    r.proto = k.proto;
    r.src.set(k.dst);
    r.sport = k.dport;
    r.dst.set(s.pool!.addrs[l >>> 16]!);
    r.dport = l & 0xffff;
    return l;
  },
  // the answers come to the SNAT addresses; the outbound traffic from the inside sources
  capture: (cfg, x) => ({ dst: [x.addr], src: cfg.match ? [cfg.match.src.includes('/') ? `net ${cfg.match.src}` : cfg.match.src] : [] }),
};
