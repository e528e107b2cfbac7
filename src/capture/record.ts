/** One captured packet, reused for every record of a file: the frame is `buf[off, off + caplen)`. */
export class PacketRecord {
  buf: Uint8Array = new Uint8Array(0);
  off = 0;
  caplen = 0;
  wirelen = 0;
  /** seconds since the epoch */
  tsSec = 0;
  /** fraction of a second in units of 10^-digits */
  tsFrac = 0;
  /** 6 = microseconds, 9 = nanoseconds (pcapng interfaces with other resolutions are converted to 6 or 9) */
  digits = 6;
  linktype = 0;
  /** pcapng interface id (0 for classic pcap) */
  ifIndex = 0;
  /** 1-based packet number in the file */
  index = 0;
  /** byte offset of the record header in the (decompressed) file */
  fileOffset = 0;
  /**
   * Offset in `buf` of the record's 16-byte classic pcap header, which `buf[off]` follows (-1 when there is
   * none: pcapng, live capture, packets the LB makes). The output pcap writes such records from where they are.
   */
  hdr = -1;
  /** the header at `hdr` is little-endian (as the output pcap writes its headers) */
  hdrLe = false;
}

/** Packet time in microseconds since the epoch (exact as a double for any realistic date). */
export function recordTimeUs(r: PacketRecord): number {
  return r.tsSec * 1e6 + (r.digits === 6 ? r.tsFrac : Math.floor(r.tsFrac / 10 ** (r.digits - 6)));
}

/** "sec.fraction" with as many fraction digits as the record's precision. */
export function formatTs(sec: number, frac: number, digits: number): string {
  return `${sec}.${String(frac).padStart(digits, '0')}`;
}

/** A user-facing problem with a capture file: always names the file and where. */
export class CaptureError extends Error {
  /** what was read before the error, when the file header was valid */
  partial?: { format: 'pcap' | 'pcapng'; linktypes: number[]; packets: number; bytes: number; warnings: string[] };

  constructor(
    readonly file: string,
    readonly where: string,
    readonly what: string,
    readonly packetsRead: number,
  ) {
    super(`${file}: ${where}: ${what}${packetsRead > 0 ? ` (after ${packetsRead} packets)` : ''}`);
    this.name = 'CaptureError';
  }
}

/**
 * Something went wrong while a record was being processed, not in the file: a bug. Names the record and
 * carries what was read before it (that record not included).
 */
export class RecordHandlerError extends Error {
  partial?: CaptureError['partial'];

  constructor(
    readonly file: string,
    readonly index: number,
    readonly fileOffset: number,
    override readonly cause: Error,
  ) {
    super(`${file}: record ${index} at byte offset ${fileOffset}: ${cause.message}`);
    this.name = 'RecordHandlerError';
  }
}
