/**
 * FNAT (DPVS full NAT): the server sees, and answers, a local address and port of the LB (from the service's
 * pool, given back when the connection ends); replies go out from the VIP to the client. The rewrite is NAT's
 * (nat.ts), both endpoints at once; TOA (toa.ts) may tell the server the client's address.
 */
import { FWD_FNAT, replyFromServer, type ForwardMode } from './mode.js';

export const fnatMode: ForwardMode = {
  code: FWD_FNAT,
  name: 'fnat',
  translated: true,
  reply(k, s, d, r) {
    const l = s.pool!.take();
    if (l < 0) return -1;
    replyFromServer(k, s, d, r, s.pool!.addrs[l >>> 16]!, l & 0xffff);
    return l;
  },
  // the servers answer the local addresses
  capture: (cfg) => ({ dst: [...(cfg.vip ? [cfg.vip] : []), ...cfg.laddrs], src: [] }),
};
