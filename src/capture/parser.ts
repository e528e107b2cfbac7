import type { PacketRecord } from './record.js';

export type RecordHandler = (r: PacketRecord) => void;

/**
 * A capture format parser fed from a sliding window: `parse` consumes as many whole units (file header,
 * records, blocks) as `b[start, end)` holds, calls the handler for each packet, and returns where it stopped;
 * `need` then says how many bytes the next unit takes, so the driver can grow its window.
 */
export interface FormatParser {
  readonly format: 'pcap' | 'pcapng';
  readonly linktypes: Set<number>;
  readonly warnings: string[];
  packets: number;
  bytes: number;
  /** the record handed to the handler last (reused for every record) */
  readonly rec: PacketRecord;
  need: number;
  parse(b: Uint8Array, start: number, end: number, base: number): number;
  headerComplete(): boolean;
  /** end of input with `leftover` unparsed bytes starting at file offset `offset` */
  finish(leftover: number, offset: number): void;
}
