/**
 * Classic pcap writer (little-endian, version 2.4), µs or ns magic to keep the input's precision.
 * Records are staged in a 1 MiB buffer and written with one syscall per buffer.
 */
import * as fs from 'node:fs';
import { wr16le, wr32le } from '../packet/bytes.js';

export class PcapWriter {
  private readonly fd: number;
  private readonly buf = Buffer.allocUnsafe(1 << 20);
  private readonly dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  private pos = 0;
  packets = 0;

  constructor(
    readonly path: string,
    readonly linktype: number,
    readonly digits: 6 | 9 = 6,
    readonly snaplen = 262144,
  ) {
    this.fd = fs.openSync(path, 'w');
    const h = this.buf;
    wr32le(h, 0, digits === 9 ? 0xa1b23c4d : 0xa1b2c3d4);
    wr16le(h, 4, 2);
    wr16le(h, 6, 4);
    wr32le(h, 8, 0);
    wr32le(h, 12, 0);
    wr32le(h, 16, snaplen);
    wr32le(h, 20, linktype);
    this.pos = 24;
  }

  /** Append one record; `frac` is in units of 10^-digits of this writer. */
  write(sec: number, frac: number, data: Uint8Array, off: number, len: number, wirelen = len): void {
    if (this.pos + 16 + len > this.buf.length) this.flush();
    const b = this.buf;
    const dv = this.dv;
    let p = this.pos;
    dv.setUint32(p, sec, true);
    dv.setUint32(p + 4, frac, true);
    dv.setUint32(p + 8, len, true);
    dv.setUint32(p + 12, wirelen < len ? len : wirelen, true);
    p += 16;
    if (16 + len > b.length) {
      this.flush();
      fs.writeSync(this.fd, b, 0, 16);
      fs.writeSync(this.fd, data, off, len);
      this.pos = 0;
    } else {
      // a plain Uint8Array view and a native copy: ~55 ns for 118 bytes, against ~100 ns with Buffer's
      // subarray() (a FastBuffer through the species constructor) and ~420 ns for a byte loop (node 20)
      b.set(new Uint8Array(data.buffer, data.byteOffset + off, len), p);
      this.pos = p + len;
    }
    this.packets++;
  }

  flush(): void {
    if (this.pos > 0) fs.writeSync(this.fd, this.buf, 0, this.pos);
    this.pos = 0;
  }

  close(): void {
    this.flush();
    fs.closeSync(this.fd);
  }
}
