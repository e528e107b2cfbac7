/**
 * A load balancer in virtual time for tests: services from a configuration object, the real tracker and
 * engine (jitter off, emitted packets dropped), and IPv4 TCP/UDP packets built here and sent one at a time.
 */
import { PacketRecord } from '../../src/capture/record.js';
import { parseConfig } from '../../src/config.js';
import { Tracker, type Profile } from '../../src/conntrack/tracker.js';
import { Engine } from '../../src/engine.js';
import { decode } from '../../src/packet/decode.js';
import { PacketView, TCP_ACK } from '../../src/packet/view.js';
import { Services } from '../../src/service/services.js';
import { eth, ipv4, tcp, udp } from './packets.js';

export class LbLab {
  readonly services: Services;
  readonly tracker: Tracker;
  readonly engine: Engine;
  private readonly view = new PacketView();
  private readonly rec = new PacketRecord();
  sec = 1_700_000_000;

  constructor(profile: Profile, services: unknown[]) {
    this.services = new Services(parseConfig({ services }, 'test').services);
    this.tracker = new Tracker({ profile, seed: 1, maxConns: 64, jitter: false });
    this.engine = new Engine(this.tracker, { services: this.services }, { send: () => null });
  }

  /** one TCP segment (flags given) or UDP datagram (flags < 0) at the current time; returns the entry the tracker gave it */
  send(src: string, sport: number, dst: string, dport: number, flags: number): number {
    const l4 = flags < 0 ? udp({ src, dst, sport, dport }, new Uint8Array(8)) : tcp({ src, dst, sport, dport, flags, seq: 1000, ack: flags & TCP_ACK ? 5001 : 0 });
    const f = eth(0x0800, ipv4({ proto: flags < 0 ? 17 : 6, src, dst }, l4));
    const r = this.rec;
    r.buf = f;
    r.off = 0;
    r.caplen = r.wirelen = f.length;
    r.linktype = 1;
    r.tsSec = this.sec;
    r.tsFrac = 0;
    r.digits = 6;
    decode(f, 0, f.length, f.length, 1, this.view);
    this.tracker.setTime(this.sec, 0, 6);
    return this.engine.packet(r, this.view, false);
  }

  wait(seconds: number): void {
    this.sec += seconds;
    this.tracker.setTime(this.sec, 0, 6);
  }
}
