/** Control socket client: one connection, requests answered in order. */
import * as net from 'node:net';
import { CTL_VERSION, type Reply } from './protocol.js';
import type { ConnFilter, SnapshotConn } from '../report/records.js';
import type { FlowRecord } from '../report/flows.js';
import type { FlowFilter, FlowSort } from '../report/flows.js';

export class CtlClient {
  private sock: net.Socket | null = null;
  private buf = '';
  private waiting: Array<(r: Reply) => void> = [];
  private nextId = 1;
  /** lines the daemon pushes after `events` */
  private onPush: ((m: { event?: unknown; lost?: number }) => void) | null = null;

  constructor(readonly path: string) {}

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(this.path);
      s.setEncoding('utf8');
      s.once('connect', () => {
        this.sock = s;
        resolve();
      });
      s.once('error', (e) => reject(new Error(`${this.path}: cannot connect (${(e as NodeJS.ErrnoException).code ?? e.message}); is tsvs run going, and is this its socket?`)));
      s.on('data', (d: string) => {
        this.buf += d;
        let i;
        while ((i = this.buf.indexOf('\n')) >= 0) {
          const line = this.buf.slice(0, i);
          this.buf = this.buf.slice(i + 1);
          const m = JSON.parse(line) as Reply & { event?: unknown; lost?: number };
          // pushed lines (a subscription's events) are not replies
          if (!('ok' in m) && ('event' in m || 'lost' in m)) this.onPush?.(m);
          else this.waiting.shift()?.(m);
        }
      });
    });
  }

  /** send a command; resolves with its result, rejects with the daemon's error (code: message) */
  async call(cmd: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const s = this.sock;
    if (!s) throw new Error('not connected');
    const reply = await new Promise<Reply>((resolve, reject) => {
      const closed = () => reject(new Error(`${this.path}: the daemon closed the connection`));
      // (one listener while the call waits, not one left behind per call)
      this.waiting.push((r) => {
        s.off('close', closed);
        resolve(r);
      });
      s.once('close', closed);
      s.write(`${JSON.stringify({ v: CTL_VERSION, id: this.nextId++, cmd, ...args })}\n`);
    });
    if (!reply.ok) throw new Error(`${reply.error.code}: ${reply.error.message}`);
    return reply.result;
  }

  /** subscribe to connection events (conntrack -E): `on` gets each pushed line until the daemon closes the connection (then this resolves) */
  async events(filter: ConnFilter, types: string[], on: (m: { event?: unknown; lost?: number }) => void): Promise<void> {
    const s = this.sock;
    if (!s) throw new Error('not connected');
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    this.onPush = on;
    await this.call('events', { filter, types });
    await closed;
  }

  /** every connection (matching `filter`), fetched page by page (each page continues where the last ended) */
  async allConns(filter: ConnFilter = {}): Promise<SnapshotConn[]> {
    const out: SnapshotConn[] = [];
    let cursor: string | null | undefined;
    do {
      const page = (await this.call('conns', { ...(cursor ? { cursor } : {}), limit: 5000, filter })) as { conns: SnapshotConn[]; next: string | null };
      out.push(...page.conns);
      cursor = page.next;
    } while (cursor);
    return out;
  }

  /**
   * Flows matching `filter`, page by page: all of them, or with `top` the `top` largest by `sort` (each page
   * brings the largest of what the daemon looked at; merged here). `recent`: a source's last destinations.
   */
  async flows(filter: FlowFilter, sort: FlowSort, top?: number, recent?: string): Promise<FlowRecord[]> {
    if (recent !== undefined) return ((await this.call('flows', { recent })) as { flows: FlowRecord[] }).flows;
    const out: FlowRecord[] = [];
    let cursor: string | null | undefined;
    do {
      const page = (await this.call('flows', { ...(cursor ? { cursor } : {}), limit: top ?? 5000, ...(top !== undefined ? { sort } : {}), filter })) as { flows: FlowRecord[]; next: string | null };
      out.push(...page.flows);
      cursor = page.next;
    } while (cursor);
    return out;
  }

  close(): void {
    this.sock?.end();
    this.sock?.destroy();
    this.sock = null;
  }
}
