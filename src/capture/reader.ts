/**
 * Streaming capture reader. The format is detected from the magic (never the file name); gzip input
 * (magic 1f 8b) is decompressed on the fly. Data flows through one window buffer (4 MiB, grown only to fit a
 * single larger block), so memory stays bounded whatever the file size. Records are handed to the callback
 * as views into that window: copy anything you keep.
 */
import * as fs from 'node:fs';
import { createGunzip } from 'node:zlib';
import { waitMs } from '../io.js';
import { rd32 } from '../packet/bytes.js';
import type { FormatParser, RecordHandler } from './parser.js';
import { PcapParser } from './pcap.js';
import { PcapngParser } from './pcapng.js';
import { CaptureError, RecordHandlerError } from './record.js';

export interface ReadResult {
  file: string;
  format: 'pcap' | 'pcapng';
  linktypes: number[];
  packets: number;
  bytes: number;
  compressed: boolean;
  warnings: string[];
}

export interface ReadOptions {
  /** window size in bytes (default 4 MiB) */
  window?: number;
  /** called about every 4 MiB of input with compressed bytes consumed and total file size */
  onProgress?: (done: number, total: number) => void;
  /**
   * called before bytes of the window that records were handed out from are overwritten or let go (and once
   * at the end): whoever kept a reference into the window (the output pcap's pending run) must be done with it
   */
  beforeReuse?: () => void;
  /** read these bytes instead of the file (its name is still used in messages); not decompressed */
  data?: Uint8Array;
  /**
   * Windows come from here instead of one being reused: each time the reader needs room it takes a window of
   * at least `min` bytes (after beforeReuse) and carries the unparsed tail over; the records handed out of
   * the one before stay where they are (replay with workers hands whole windows to its lanes). The first
   * window comes from here too.
   */
  windows?: { take(min: number): Buffer };
}

const MAX_WINDOW = 64 * 1024 * 1024;

/** Pull-based byte source: returns bytes read (0 at end), synchronously for files, async for gzip. */
interface Source {
  read(buf: Buffer, off: number, len: number): number | Promise<number>;
  /** set when the input ended early but what came before is usable (a truncated gzip stream) */
  warning?: string;
  consumed(): number;
  close(): void;
}

/** read(2) at the current position (a pipe, a FIFO, standard input: no seeking), waiting out EAGAIN */
function readOn(fd: number, buf: Uint8Array, off: number, len: number): number {
  for (;;) {
    try {
      return fs.readSync(fd, buf, off, len, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      waitMs(1); // a non-blocking descriptor with nothing yet
    }
  }
}

/** the bytes of `fd` from its current position, after `head` (the bytes already read to sniff the format) */
function fileSource(fd: number, head: Buffer): Source {
  let pos = 0;
  let h = 0;
  return {
    read(buf, off, len) {
      if (h < head.length) {
        const n = Math.min(len, head.length - h);
        head.copy(buf, off, h, h + n);
        h += n;
        pos += n;
        return n;
      }
      const n = readOn(fd, buf, off, len);
      pos += n;
      return n;
    },
    consumed: () => pos,
    close: () => {
      if (fd > 2) fs.closeSync(fd);
    },
  };
}

function gzipSource(file: string, fd: number, head: Buffer): Source {
  const raw = fs.createReadStream('', { fd, highWaterMark: 1 << 20, autoClose: fd > 2, start: undefined });
  let rawPos = 0;
  raw.on('data', (c) => {
    rawPos += c.length;
  });
  const gz = createGunzip();
  raw.on('error', (e) => gz.destroy(e));
  gz.write(head); // (read to sniff the format)
  rawPos += head.length;
  raw.pipe(gz);
  const it = gz[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let pending: Buffer | null = null;
  let pendingOff = 0;
  const src: Source = {
    async read(buf, off, len) {
      if (!pending) {
        let r: IteratorResult<Buffer>;
        try {
          r = await it.next();
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          if (err.code === 'Z_BUF_ERROR') {
            src.warning = `gzip stream ends early after ${rawPos} compressed bytes`;
            return 0;
          }
          throw new CaptureError(file, 'gzip stream', `decompression failed: ${err.message}`, -1);
        }
        if (r.done) return 0;
        pending = r.value;
        pendingOff = 0;
      }
      const n = Math.min(len, pending.length - pendingOff);
      pending.copy(buf, off, pendingOff, pendingOff + n);
      pendingOff += n;
      if (pendingOff >= pending.length) pending = null;
      return n;
    },
    consumed: () => rawPos,
    close() {
      raw.destroy();
      gz.destroy();
    },
  };
  return src;
}

function memorySource(data: Uint8Array): Source {
  let pos = 0;
  return {
    read(buf, off, len) {
      const n = Math.min(len, data.length - pos);
      buf.set(data.subarray(pos, pos + n), off);
      pos += n;
      return n;
    },
    consumed: () => pos,
    close: () => undefined,
  };
}

/** `-` is standard input; a pipe or a FIFO is read as it comes (nothing here seeks) */
function openSource(file: string): { src: Source; size: number; compressed: boolean } {
  let fd: number;
  try {
    fd = file === '-' ? 0 : fs.openSync(file, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new CaptureError(file, 'open', err.code === 'ENOENT' ? 'no such file' : `cannot open (${err.code ?? err.message})`, 0);
  }
  const st = fs.fstatSync(fd);
  if (st.isDirectory()) {
    fs.closeSync(fd);
    throw new CaptureError(file, 'open', 'is a directory', 0);
  }
  const head = Buffer.alloc(2);
  let n = 0;
  while (n < 2) {
    const k = readOn(fd, head, n, 2 - n);
    if (k === 0) break;
    n += k;
  }
  const got = head.subarray(0, n);
  const compressed = n === 2 && head[0] === 0x1f && head[1] === 0x8b;
  return { src: compressed ? gzipSource(file, fd, got) : fileSource(fd, got), size: st.isFile() ? st.size : 0, compressed };
}

function detect(file: string, b: Uint8Array, n: number, onRecord: RecordHandler): FormatParser {
  if (n === 0) throw new CaptureError(file, 'byte offset 0', 'empty file', 0);
  if (n < 4) throw new CaptureError(file, 'byte offset 0', `file too short for a capture header (${n} bytes)`, 0);
  const m = rd32(b, 0);
  switch (m) {
    case 0xa1b2c3d4:
    case 0xd4c3b2a1:
    case 0xa1b23c4d:
    case 0x4d3cb2a1:
      return new PcapParser(file, onRecord);
    case 0x0a0d0d0a:
      return new PcapngParser(file, onRecord);
    default:
      throw new CaptureError(file, 'byte offset 0', `not a pcap or pcapng file (magic 0x${m.toString(16).padStart(8, '0')})`, 0);
  }
}

/**
 * parser.parse(), with anything but a CaptureError (the parser's own) blamed on the record handler: the
 * record it was given is the one that failed (already counted, so not in the partial counts).
 */
function parseOrBlame(file: string, parser: FormatParser, win: Uint8Array, start: number, end: number, base: number): number {
  try {
    return parser.parse(win, start, end, base);
  } catch (e) {
    if (e instanceof CaptureError) throw e;
    const r = parser.rec;
    const err = new RecordHandlerError(file, r.index, r.fileOffset, e instanceof Error ? e : new Error(String(e)));
    err.partial = { format: parser.format, linktypes: [...parser.linktypes], packets: parser.packets - 1, bytes: parser.bytes - r.caplen, warnings: parser.warnings };
    throw err;
  }
}

/** Read every record of `file`, calling `onRecord` for each. Throws CaptureError on unreadable/corrupt input. */
export async function readCapture(file: string, onRecord: RecordHandler, opts: ReadOptions = {}): Promise<ReadResult> {
  const { src, size, compressed } = opts.data ? { src: memorySource(opts.data), size: opts.data.length, compressed: false } : openSource(file);
  const windows = opts.windows;
  let win = windows ? windows.take(opts.window ?? 4 * 1024 * 1024) : Buffer.allocUnsafe(opts.window ?? 4 * 1024 * 1024);
  let parser: FormatParser | null = null;
  let start = 0; // first unparsed byte in win
  let end = 0; // end of valid data in win
  let base = 0; // file offset of win[0]
  let nextProgress = 4 << 20;
  const beforeReuse = opts.beforeReuse;
  try {
    for (;;) {
      if (windows && parser) {
        // a fresh window when this one is three-quarters full or cannot hold the next unit: the unparsed
        // tail (a record cut by the last read) moves there; what was handed out of this one stays put
        if (win.length - end < win.length >>> 2 || start + parser.need > win.length) {
          if (beforeReuse) beforeReuse();
          const next = windows.take(Math.min(Math.max(parser.need, win.length), MAX_WINDOW));
          if (parser.need > next.length) throw new CaptureError(file, `byte offset ${base + start}`, `unit of ${parser.need} bytes is too large`, parser.packets);
          win.copy(next, 0, start, end);
          base += start;
          end -= start;
          start = 0;
          win = next;
        }
      } else if (beforeReuse && parser) beforeReuse();
      if (!windows && start > 0) {
        win.copyWithin(0, start, end);
        base += start;
        end -= start;
        start = 0;
      }
      if (!windows && parser && parser.need > win.length) {
        if (parser.need > MAX_WINDOW) throw new CaptureError(file, `byte offset ${base}`, `unit of ${parser.need} bytes is too large`, parser.packets);
        const bigger = Buffer.allocUnsafe(Math.max(parser.need, win.length * 2));
        win.copy(bigger, 0, 0, end);
        win = bigger;
      }
      let n = src.read(win, end, win.length - end);
      if (typeof n !== 'number') {
        try {
          n = await n;
        } catch (e) {
          if (e instanceof CaptureError) throw new CaptureError(file, e.where, e.what, parser?.packets ?? 0);
          throw e;
        }
      }
      end += n;
      if (!parser) {
        if (n > 0 && end < 4) continue;
        parser = detect(file, win, end, onRecord);
      }
      if (n === 0) break;
      start = parseOrBlame(file, parser, win, start, end, base);
      if (opts.onProgress && src.consumed() >= nextProgress) {
        opts.onProgress(src.consumed(), size);
        nextProgress = src.consumed() + (4 << 20);
      }
    }
    start = parseOrBlame(file, parser, win, start, end, base);
    if (beforeReuse) beforeReuse();
    if (!parser.headerComplete()) {
      throw new CaptureError(file, 'byte offset 0', `file too short for a ${parser.format} header (${end - start} bytes)`, 0);
    }
    parser.finish(end - start, base + start);
    if (src.warning) parser.warnings.push(src.warning);
    return {
      file,
      format: parser.format,
      linktypes: [...parser.linktypes],
      packets: parser.packets,
      bytes: parser.bytes,
      compressed,
      warnings: parser.warnings,
    };
  } catch (e) {
    if (e instanceof CaptureError && parser && parser.headerComplete()) {
      e.partial = { format: parser.format, linktypes: [...parser.linktypes], packets: parser.packets, bytes: parser.bytes, warnings: parser.warnings };
    }
    throw e;
  } finally {
    src.close();
  }
}
