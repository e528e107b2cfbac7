/**
 * Persistence templates (IPVS ip_vs_sched_persist / DPVS persistent services): a template keyed by
 * (protocol, client address masked by the service's netmask, VIP, port) remembers the real server a client
 * got. New connections of that client go to the same server while the template lives; every one of them
 * re-arms it for the persistence timeout; when it expires while connections it controls still exist, the
 * expiry handler re-arms it (with the [0, 1 s) jitter, as DPVS does), so a template outlives its connections
 * by the persistence timeout.
 * Templates live in their own table and timer wheel (typed arrays, integer handles).
 */
import { ConnTable, jitterUs, TupleKey } from '../conntrack/table.js';
import { TimerWheel } from '../timer/wheel.js';

const TICK_US = 1000;

export class Templates {
  readonly table: ConnTable;
  private readonly wheel: TimerWheel;
  private readonly dest: Int32Array;
  private readonly refs: Int32Array;
  private readonly timeoutS: Float64Array;
  private readonly key = new TupleKey();
  private readonly fire = (t: number) => this.expire(t);
  created = 0;
  expired = 0;

  constructor(
    capacity: number,
    seed: number,
  ) {
    this.table = new ConnTable(capacity, (seed ^ 0x7f4a7c15) >>> 0);
    this.wheel = new TimerWheel(capacity);
    this.dest = new Int32Array(capacity);
    this.refs = new Int32Array(capacity);
    this.timeoutS = new Float64Array(capacity);
  }

  advance(nowUs: number): void {
    this.wheel.advance(Math.floor(nowUs / TICK_US), this.fire);
  }

  private expire(t: number): void {
    if (this.refs[t]! > 0) {
      // still controls connections: re-arm (DPVS adds the random delay when the handler re-arms)
      this.wheel.arm(t, this.wheel.expiry(t) + Math.ceil((this.timeoutS[t]! * 1e6 + jitterUs(this.table.tup[8 * t + 1]!, this.wheel.expiry(t) * TICK_US)) / TICK_US));
      return;
    }
    this.expired++;
    this.table.remove(t);
  }

  /** fill the template key for a client of a service: client address masked to `prefix` bits, port 0 */
  private fill(proto: number, v6: boolean, client: Uint32Array, vip: Uint32Array, vport: number, prefix: number): TupleKey {
    const k = this.key;
    k.v6 = v6;
    k.proto = proto;
    let bits = prefix;
    for (let i = 0; i < 4; i++) {
      const take = Math.max(0, Math.min(32, bits));
      k.src[i] = take === 0 ? 0 : (client[i]! & (take === 32 ? 0xffffffff : ~(0xffffffff >>> take))) >>> 0;
      bits -= 32;
      k.dst[i] = vip[i]!;
    }
    if (!v6) {
      k.src[1] = k.src[2] = k.src[3] = 0;
      k.dst[1] = k.dst[2] = k.dst[3] = 0;
    }
    k.sport = 0;
    k.dport = vport;
    this.table.hashKey(k);
    return k;
  }

  /** the server a client's template holds (and the template), or -1: `out[0]` = template handle */
  find(proto: number, v6: boolean, client: Uint32Array, vip: Uint32Array, vport: number, prefix: number, out: Int32Array): number {
    const e = this.table.lookup(this.fill(proto, v6, client, vip, vport, prefix));
    if (e < 0 || (e & 1) !== 0) return -1;
    out[0] = e >>> 1;
    return this.dest[e >>> 1]!;
  }

  /** create a template for a client → server; returns its handle or -1 when the table is full */
  create(proto: number, v6: boolean, client: Uint32Array, vip: Uint32Array, vport: number, prefix: number, dest: number, timeoutS: number, nowUs: number): number {
    const k = this.fill(proto, v6, client, vip, vport, prefix);
    const t = this.table.alloc();
    if (t < 0) return -1;
    this.table.insert(t, k);
    this.dest[t] = dest;
    this.refs[t] = 0;
    this.timeoutS[t] = timeoutS;
    this.wheel.arm(t, Math.ceil((nowUs + timeoutS * 1e6 + jitterUs(k.hash, nowUs)) / TICK_US));
    this.created++;
    return t;
  }

  /** a new connection uses template t: count it and re-arm the template */
  use(t: number, nowUs: number): void {
    this.refs[t]!++;
    this.wheel.extend(t, Math.ceil((nowUs + this.timeoutS[t]! * 1e6) / TICK_US));
  }

  /** a connection of template t ended */
  release(t: number): void {
    if (this.refs[t]! > 0) this.refs[t]!--;
  }

  get count(): number {
    return this.table.count;
  }

  /** every template: the client (masked) and service key in `k`, its server index, seconds before it expires (ipvsadm -Lnc lists them) */
  each(nowUs: number, fn: (k: { proto: number; v6: boolean; client: Uint32Array; vip: Uint32Array; vport: number }, dest: number, expireS: number) => void): void {
    const tb = this.table;
    const client = new Uint32Array(4);
    const vip = new Uint32Array(4);
    for (let t = 0; t < tb.highWater; t++) {
      if (!tb.isUsed(t)) continue;
      tb.addrWords(t, 'src', client);
      tb.addrWords(t, 'dst', vip);
      fn({ proto: tb.protoOf(t), v6: tb.isV6(t), client, vip, vport: tb.dportOf(t) }, this.dest[t]!, Math.max(0, (this.wheel.expiry(t) * TICK_US - nowUs) / 1e6));
    }
  }
}
