/**
 * What a forwarding mode is (IPVS binds one per connection, ip_vs_bind_xmit): its code, whether the server's
 * answers come back through the load balancer translated (then the connection is indexed by a reply tuple the
 * mode builds), and what live capture must take for it. The modes are registered in modes.ts; the per-packet
 * rewrite is dispatched on the code in engine.ts.
 */
import type { TupleKey } from '../conntrack/table.js';
import type { ServiceConfig } from '../config.js';
import type { Service } from '../service/services.js';

export const FWD_NAT = 0;
export const FWD_DR = 1;
export const FWD_TUNNEL = 2;
export const FWD_FNAT = 3;
export const FWD_SNAT = 4;

export type ServerConfig = ServiceConfig['servers'][number];

export interface ForwardMode {
  readonly code: number;
  /** as the configuration names it */
  readonly name: string;
  /** the server answers through the LB and its answers are translated (else they bypass it: INPUT-ONLY) */
  readonly translated: boolean;
  /**
   * A new connection `k` of service `s` scheduled to server `d`: its reply tuple into `r` (translated modes;
   * the caller hashes it). Returns the local address and port taken (laddr index << 16 | port) from the
   * service's pool, 0 when none is taken, -1 when none is free.
   */
  reply(k: TupleKey, s: Service, d: number, r: TupleKey): number;
  /** what live capture must take for server `x` of service `cfg` (pcap filter host or net expressions) */
  capture(cfg: ServiceConfig, x: ServerConfig): { dst: string[]; src: string[] };
}

/** the server's answer as seen by the LB: from the server's address and port, to `dst`:`dport` */
export function replyFromServer(k: TupleKey, s: Service, d: number, r: TupleKey, dst: Uint32Array, dport: number): void {
  r.v6 = k.v6;
  r.proto = k.proto;
  r.src.set(s.serverAddr[d]!);
  r.sport = s.serverPort[d]!;
  r.dst.set(dst);
  r.dport = dport;
}

/** a mode whose server answers the client directly, from the VIP (DR, tunnel): no reply tuple, only the VIP captured */
export function directMode(code: number, name: string): ForwardMode {
  return { code, name, translated: false, reply: () => 0, capture: (cfg) => ({ dst: cfg.vip ? [cfg.vip] : [], src: [] }) };
}
