/**
 * A load balancer in virtual time for tests: services from a configuration object, the real tracker and
 * engine (jitter off), and frames built by the test sent one at a time. What the LB emits is kept (copies).
 */
import { PacketRecord } from '../../src/capture/record.js';
import { parseConfig } from '../../src/config.js';
import type { Conntrack, Profile } from '../../src/conntrack/conntrack.js';
import { Engine } from '../../src/engine.js';
import type { Balancer } from '../../src/lb/balancer.js';
import { TCP_ACK } from '../../src/packet/view.js';
import type { Xmit } from '../../src/xmit/xmit.js';
import { Services } from '../../src/service/services.js';
import { replaySecret } from '../../src/synproxy/synproxy.js';
import { eth, ipv4, tcp, udp } from './packets.js';

export interface LabOptions {
  /** the configuration's top-level keys besides services (synproxy: {...}, ...) */
  config?: Record<string, unknown>;
  /** the engine's transmit reserve, and the sink's room (default: unlimited) */
  reserve?: number;
  spare?: () => number;
  maxConns?: number;
  /** flow accounting on (defaults for the rest) */
  flows?: boolean;
}

export class LbLab {
  readonly services: Services;
  readonly engine: Engine;
  /** the engine's connection tracker, load balancer and transmit */
  readonly ct: Conntrack;
  readonly lb: Balancer;
  readonly x: Xmit;
  /** every frame the LB emitted, copied */
  readonly sent: Uint8Array[] = [];
  private readonly rec = new PacketRecord();
  sec = 1_700_000_000;

  constructor(profile: Profile, services: unknown[], o: LabOptions = {}) {
    const cfg = parseConfig({ services, ...o.config }, 'test');
    this.services = new Services(cfg.services);
    const sent = this.sent;
    const sink = { send: (_r: PacketRecord, b: Uint8Array, off: number, len: number) => (sent.push(Uint8Array.prototype.slice.call(b, off, off + len)), null), ...(o.spare ? { spare: o.spare } : {}) };
    this.engine = new Engine({
      conntrack: { profile, seed: 1, maxConns: o.maxConns ?? 64, jitter: false },
      lb: { services: this.services, synproxy: { cfg: cfg.synproxy, secret: replaySecret(undefined, 1) }, reserve: o.reserve },
      sink,
      ...(o.flows ? { flows: { idle: 3600, max: 1 << 16, perSource: 100 } } : {}),
    });
    this.ct = this.engine.ct;
    this.lb = this.engine.lb!;
    this.x = this.engine.x!;
  }

  /**
   * One Ethernet frame at the current time: the first `caplen` bytes captured of it (default all), placed at
   * the start of `buf` (default: a buffer of exactly what was captured). Returns the engine's result.
   */
  frame(f: Uint8Array, o: { caplen?: number; buf?: Uint8Array } = {}): number {
    const caplen = o.caplen ?? f.length;
    const buf = o.buf ?? f.slice(0, caplen);
    if (o.buf) buf.set(f.subarray(0, caplen), 0);
    const r = this.rec;
    r.buf = buf;
    r.off = 0;
    r.caplen = caplen;
    r.wirelen = f.length;
    r.linktype = 1;
    r.tsSec = this.sec;
    r.tsFrac = 0;
    r.digits = 6;
    return this.engine.frame(r);
  }

  /** one IPv4 TCP segment (flags given) or UDP datagram (flags < 0) at the current time; returns the entry the tracker gave it */
  send(src: string, sport: number, dst: string, dport: number, flags: number): number {
    const l4 = flags < 0 ? udp({ src, dst, sport, dport }, new Uint8Array(8)) : tcp({ src, dst, sport, dport, flags, seq: 1000, ack: flags & TCP_ACK ? 5001 : 0 });
    return this.frame(eth(0x0800, ipv4({ proto: flags < 0 ? 17 : 6, src, dst }, l4)));
  }

  wait(seconds: number): void {
    this.sec += seconds;
    this.engine.time.set(this.sec, 0, 6);
  }
}
