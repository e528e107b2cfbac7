/**
 * pcapng parser (draft-ietf-opsawg-pcapng). Sections in either byte order (each SHB sets it), any number of
 * sections and interfaces; IDB `if_tsresol` (decimal or binary) and `if_tsoffset`; packets from EPB, SPB and
 * the obsolete OPB; every other block (NRB, ISB, DSB, CB/DCB, custom, unknown) is skipped by its length.
 * Acceptance follows libpcap's sf-pcapng.c: SHB version 1.0 (or 1.2), block lengths multiple of 4, at least 12,
 * at most 16 MiB, trailer length equal to header length; packet capture length at most 262144.
 */
import { rdU16, rdU32 } from '../packet/bytes.js';
import { MAX_CAPLEN } from './pcap.js';
import { CaptureError, PacketRecord } from './record.js';
import type { FormatParser, RecordHandler } from './parser.js';

const SHB = 0x0a0d0d0a;
const IDB = 1;
const OPB = 2;
const SPB = 3;
const EPB = 6;
export const MAX_BLOCK = 16 * 1024 * 1024;

interface Iface {
  linktype: number;
  snaplen: number;
  /** resolution: units per second is base^exp */
  pow2: boolean;
  exp: number;
  tsOffset: number;
}

export class PcapngParser implements FormatParser {
  readonly format = 'pcapng';
  readonly linktypes = new Set<number>();
  readonly warnings: string[] = [];
  packets = 0;
  bytes = 0;
  need = 12;
  sections = 0;
  private blocks = 0;
  private le = true;
  private ifaces: Iface[] = [];
  /** the record handed to the handler (reused): while the handler runs, the current one */
  readonly rec = new PacketRecord();

  constructor(
    private readonly file: string,
    private readonly onRecord: RecordHandler,
  ) {}

  headerComplete(): boolean {
    return this.sections > 0;
  }

  private fail(where: number, what: string): never {
    throw new CaptureError(this.file, `block ${this.blocks + 1} at byte offset ${where}`, what, this.packets);
  }

  parse(b: Uint8Array, start: number, end: number, base: number): number {
    let p = start;
    const rec = this.rec;
    rec.buf = b;
    for (;;) {
      if (end - p < 12) {
        this.need = 12;
        return p;
      }
      const typeBE = rdU32(b, p, false);
      let le = this.le;
      if (typeBE === SHB) {
        const bom = rdU32(b, p + 8, false);
        if (bom === 0x1a2b3c4d) le = false;
        else if (bom === 0x4d3c2b1a) le = true;
        else this.fail(base + p, `bad section header byte-order magic 0x${bom.toString(16)}`);
      } else if (this.sections === 0) {
        this.fail(base + p, 'file does not start with a section header block');
      }
      const type = rdU32(b, p, le);
      const len = rdU32(b, p + 4, le);
      if (len < 12 || len % 4 !== 0) this.fail(base + p, `invalid block total length ${len}`);
      if (len > MAX_BLOCK) this.fail(base + p, `block total length ${len} is bigger than the maximum of ${MAX_BLOCK}`);
      if (end - p < len) {
        this.need = len;
        return p;
      }
      const trailer = rdU32(b, p + len - 4, le);
      if (trailer !== len) this.fail(base + p, `block total length in header ${len} and trailer ${trailer} don't match`);
      const body = p + 8;
      const bodyEnd = p + len - 4;
      switch (type) {
        case SHB: {
          if (len < 28) this.fail(base + p, `section header block too short (${len} bytes)`);
          const maj = rdU16(b, body + 4, le);
          const min = rdU16(b, body + 6, le);
          if (!(maj === 1 && (min === 0 || min === 2))) this.fail(base + p, `unsupported pcapng savefile version ${maj}.${min}`);
          this.le = le;
          this.ifaces = [];
          this.sections++;
          break;
        }
        case IDB:
          this.idb(b, body, bodyEnd, base + p);
          break;
        case EPB:
        case OPB: {
          if (bodyEnd - body < 20) this.fail(base + p, 'packet block too short');
          const ifId = type === EPB ? rdU32(b, body, le) : rdU16(b, body, le);
          const caplen = rdU32(b, body + 12, le);
          this.packet(b, base + p, ifId, rdU32(b, body + 4, le), rdU32(b, body + 8, le), caplen, rdU32(b, body + 16, le), body + 20, bodyEnd, base);
          break;
        }
        case SPB: {
          if (bodyEnd - body < 4) this.fail(base + p, 'simple packet block too short');
          const wire = rdU32(b, body, le);
          const iface = this.ifaces[0];
          if (!iface) this.fail(base + p, 'simple packet block before any interface description block');
          let caplen = Math.min(wire, bodyEnd - body - 4);
          if (iface.snaplen > 0 && caplen > iface.snaplen) caplen = iface.snaplen;
          this.packet(b, base + p, 0, 0, 0, caplen, wire, body + 4, bodyEnd, base);
          break;
        }
        default:
          break; // NRB, ISB, DSB, CB, DCB, custom and unknown blocks
      }
      this.blocks++;
      p += len;
    }
  }

  private idb(b: Uint8Array, body: number, bodyEnd: number, at: number): void {
    const le = this.le;
    if (bodyEnd - body < 8) this.fail(at, 'interface description block too short');
    const iface: Iface = { linktype: rdU16(b, body, le), snaplen: rdU32(b, body + 4, le), pow2: false, exp: 6, tsOffset: 0 };
    for (let o = body + 8; o + 4 <= bodyEnd; ) {
      const code = rdU16(b, o, le);
      const olen = rdU16(b, o + 2, le);
      if (code === 0) break;
      if (o + 4 + olen > bodyEnd) this.fail(at, `option ${code} overruns the block`);
      if (code === 9 && olen >= 1) {
        const r = b[o + 4]!;
        iface.pow2 = (r & 0x80) !== 0;
        iface.exp = r & 0x7f;
      } else if (code === 14 && olen >= 8) {
        const hi = rdU32(b, o + 4 + (le ? 4 : 0), le) | 0;
        const lo = rdU32(b, o + 4 + (le ? 0 : 4), le);
        iface.tsOffset = hi * 4294967296 + lo;
      }
      o += 4 + ((olen + 3) & ~3);
    }
    this.ifaces.push(iface);
    this.linktypes.add(iface.linktype);
  }

  private packet(b: Uint8Array, at: number, ifId: number, hi: number, lo: number, caplen: number, wire: number, data: number, bodyEnd: number, base: number): void {
    const iface = this.ifaces[ifId];
    if (!iface) this.fail(at, `packet on interface ${ifId}, which has no interface description block`);
    if (caplen > MAX_CAPLEN) this.fail(at, `corrupt packet block: capture length ${caplen} is bigger than the maximum of ${MAX_CAPLEN}`);
    if (data + caplen > bodyEnd) this.fail(at, `corrupt packet block: capture length ${caplen} overruns the block`);
    const rec = this.rec;
    setTimestamp(rec, hi, lo, iface);
    rec.caplen = caplen;
    rec.wirelen = wire;
    rec.off = data;
    rec.linktype = iface.linktype;
    rec.ifIndex = ifId;
    rec.index = ++this.packets;
    rec.fileOffset = at;
    this.bytes += caplen;
    void base;
    this.onRecord(rec);
  }

  finish(leftover: number, offset: number): void {
    if (leftover > 0) {
      this.warnings.push(
        `file cut inside block ${this.blocks + 1} at byte offset ${offset}: ${leftover} of ${this.need} bytes present; ${this.packets} whole packets read`,
      );
    }
  }
}

// divmod of the 64-bit value hi:lo by d < 2^30, in 16-bit limbs so every step is exact in a double
let dmQ = 0;
let dmR = 0;
function divmod64(hi: number, lo: number, d: number): void {
  let r = 0;
  let q = 0;
  let cur = r * 65536 + (hi >>> 16);
  let qd = Math.floor(cur / d);
  r = cur - qd * d;
  q = qd;
  cur = r * 65536 + (hi & 0xffff);
  qd = Math.floor(cur / d);
  r = cur - qd * d;
  q = q * 65536 + qd;
  cur = r * 65536 + (lo >>> 16);
  qd = Math.floor(cur / d);
  r = cur - qd * d;
  q = q * 65536 + qd;
  cur = r * 65536 + (lo & 0xffff);
  qd = Math.floor(cur / d);
  r = cur - qd * d;
  q = q * 65536 + qd;
  dmQ = q;
  dmR = r;
}

function setTimestamp(rec: PacketRecord, hi: number, lo: number, iface: Iface): void {
  if (!iface.pow2 && iface.exp <= 9) {
    divmod64(hi, lo, 10 ** iface.exp);
    if (iface.exp <= 6) {
      rec.digits = 6;
      rec.tsFrac = dmR * 10 ** (6 - iface.exp);
    } else {
      rec.digits = 9;
      rec.tsFrac = dmR * 10 ** (9 - iface.exp);
    }
    rec.tsSec = dmQ + iface.tsOffset;
    return;
  }
  // rare resolutions (binary, or finer than 1 ns): BigInt, converted to nanoseconds
  const v = (BigInt(hi) << 32n) | BigInt(lo);
  const unit = iface.pow2 ? 1n << BigInt(iface.exp) : 10n ** BigInt(iface.exp);
  rec.tsSec = Number(v / unit) + iface.tsOffset;
  rec.tsFrac = Number(((v % unit) * 1000000000n) / unit);
  rec.digits = 9;
}
