/**
 * Classic libpcap savefile parser (https://www.tcpdump.org/manpages/pcap-savefile.5.html).
 * Magic a1b2c3d4 (µs) / a1b23c4d (ns), in either byte order. Acceptance follows libpcap's sf-pcap.c:
 * version 2.0-2.4 (or DG/UX 543.0), link-type reserved bits zero, caplen at most 262144 (a larger one is a
 * corrupt record header and stops the file). A caplen above the header's snaplen is accepted as libpcap does
 * (counted in a warning), since real captures (and capinfos/tshark) have them.
 */
import { dataViewOf, rdU16, rdU32 } from '../packet/bytes.js';
import { CaptureError, PacketRecord } from './record.js';
import type { FormatParser, RecordHandler } from './parser.js';

export const MAX_CAPLEN = 262144;

export class PcapParser implements FormatParser {
  readonly format = 'pcap';
  readonly linktypes = new Set<number>();
  readonly warnings: string[] = [];
  packets = 0;
  bytes = 0;
  need = 24;
  snaplen = 0;
  linktype = 0;
  digits = 6;
  versionMajor = 0;
  versionMinor = 0;
  private le = false;
  private headerDone = false;
  private overSnap = 0;
  private badFrac = 0;
  /** the record handed to the handler (reused): while the handler runs, the current one */
  readonly rec = new PacketRecord();
  private dvBuf: Uint8Array | null = null;
  private dv: DataView = new DataView(new ArrayBuffer(0));

  constructor(
    private readonly file: string,
    private readonly onRecord: RecordHandler,
  ) {}

  parse(b: Uint8Array, start: number, end: number, base: number): number {
    let p = start;
    if (!this.headerDone) {
      if (end - p < 24) {
        this.need = 24;
        return p;
      }
      this.header(b, p);
      p += 24;
    }
    const le = this.le;
    const rec = this.rec;
    rec.buf = b;
    // record header fields through a DataView over the window (one load each), made when the window changes
    if (this.dvBuf !== b) {
      this.dvBuf = b;
      this.dv = dataViewOf(b);
    }
    const d = this.dv;
    const fracLimit = this.digits === 6 ? 1e6 : 1e9;
    for (;;) {
      if (end - p < 16) {
        this.need = 16;
        return p;
      }
      const incl = d.getUint32(p + 8, le);
      if (incl > MAX_CAPLEN) {
        throw new CaptureError(
          this.file,
          `record ${this.packets + 1} at byte offset ${base + p}`,
          `corrupt record header: capture length ${incl} is bigger than the maximum of ${MAX_CAPLEN}`,
          this.packets,
        );
      }
      if (end - p - 16 < incl) {
        this.need = 16 + incl;
        return p;
      }
      if (incl > this.snaplen) this.overSnap++;
      rec.tsSec = d.getUint32(p, le);
      rec.tsFrac = d.getUint32(p + 4, le);
      if (rec.tsFrac >= fracLimit) this.badFrac++;
      rec.caplen = incl;
      rec.wirelen = d.getUint32(p + 12, le);
      rec.off = p + 16;
      rec.hdr = p;
      rec.index = ++this.packets;
      rec.fileOffset = base + p;
      this.bytes += incl;
      this.onRecord(rec);
      p += 16 + incl;
    }
  }

  private header(b: Uint8Array, p: number): void {
    const m = rdU32(b, p, false);
    if (m === 0xa1b2c3d4 || m === 0xa1b23c4d) this.le = false;
    else this.le = true;
    const ml = rdU32(b, p, this.le);
    this.digits = ml === 0xa1b23c4d ? 9 : 6;
    const le = this.le;
    this.versionMajor = rdU16(b, p + 4, le);
    this.versionMinor = rdU16(b, p + 6, le);
    const okVersion = (this.versionMajor === 2 && this.versionMinor <= 4) || (this.versionMajor === 543 && this.versionMinor === 0);
    if (!okVersion) {
      throw new CaptureError(this.file, 'file header', `unsupported pcap savefile version ${this.versionMajor}.${this.versionMinor}`, 0);
    }
    this.snaplen = rdU32(b, p + 16, le);
    const lt = rdU32(b, p + 20, le);
    if (lt & 0x03ff0000) {
      throw new CaptureError(this.file, 'file header', `savefile linktype reserved field not zero (0x${(lt & 0x03ff0000).toString(16).padStart(8, '0')})`, 0);
    }
    this.linktype = lt & 0xffff;
    this.linktypes.add(this.linktype);
    this.rec.linktype = this.linktype;
    this.rec.digits = this.digits;
    this.rec.hdrLe = le;
    this.rec.ifIndex = 0;
    this.headerDone = true;
  }

  headerComplete(): boolean {
    return this.headerDone;
  }

  finish(leftover: number, offset: number): void {
    if (this.overSnap) this.warnings.push(`${this.overSnap} records longer than the snap length ${this.snaplen} (accepted, as libpcap does)`);
    if (this.badFrac) this.warnings.push(`${this.badFrac} records with an invalid sub-second timestamp (>= 1e${this.digits})`);
    if (leftover > 0) {
      this.warnings.push(
        `file cut inside record ${this.packets + 1} at byte offset ${offset}: ${leftover} of ${this.need} bytes present; ${this.packets} whole records read`,
      );
    }
  }
}
