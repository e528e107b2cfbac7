/**
 * Control socket server (Unix socket, mode 0600, JSON lines, see protocol.ts). Every request is answered
 * synchronously from the engine's state, so a listing is consistent; long listings are paged from a
 * snapshot kept under a cursor for 30 s. A client can send anything: bad input gets an error reply, a
 * client that goes away mid-reply is forgotten; nothing a client does reaches the packet path.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { CtlError, CTL_VERSION, MAX_LINE, type Request, type ServiceRef } from './protocol.js';
import { connMatches, counterObject, gauges, snapshotConn, type ConnFilter, type SnapshotConn } from '../conntrack/records.js';
import { parseConfig, ConfigError, type ServiceConfig } from '../config.js';
import { serviceKey, serverKey } from '../service/services.js';
import type { Daemon } from '../live/daemon.js';

const CURSOR_TTL_MS = 30_000;
const MAX_PAGE = 10_000;

export class CtlServer {
  private server: net.Server | null = null;
  private readonly cursors = new Map<string, { conns: SnapshotConn[]; at: number }>();
  private nextCursor = 1;
  private readonly clients = new Set<net.Socket>();
  requests = 0;
  errors = 0;

  constructor(
    private readonly d: Daemon,
    readonly socketPath: string,
  ) {}

  listen(): Promise<void> {
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o755 });
    try {
      fs.unlinkSync(this.socketPath); // a stale socket of an earlier run
    } catch {
      /* none */
    }
    return new Promise((resolve, reject) => {
      const srv = net.createServer((c) => this.client(c));
      srv.once('error', reject);
      // the socket is created with mode 0600: only root (the daemon's user) may change the LB
      const old = process.umask(0o177);
      srv.listen(this.socketPath, () => {
        process.umask(old);
        this.server = srv;
        resolve();
      });
    });
  }

  private client(c: net.Socket): void {
    this.clients.add(c);
    let buf = '';
    c.setEncoding('utf8');
    c.on('error', () => c.destroy());
    c.on('close', () => this.clients.delete(c));
    c.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) this.reply(c, line);
      }
      if (buf.length > MAX_LINE) {
        this.send(c, null, new CtlError('TOO_LONG', `request longer than ${MAX_LINE} bytes`));
        c.end();
        buf = '';
      }
    });
  }

  private send(c: net.Socket, id: unknown, r: unknown): void {
    if (c.destroyed || !c.writable) return;
    const msg = r instanceof CtlError ? { v: CTL_VERSION, id, ok: false, error: { code: r.code, message: r.message } } : { v: CTL_VERSION, id, ok: true, result: r };
    c.write(`${JSON.stringify(msg)}\n`);
  }

  private reply(c: net.Socket, line: string): void {
    this.requests++;
    let id: unknown = null;
    try {
      let req: Request;
      try {
        req = JSON.parse(line) as Request;
      } catch (e) {
        throw new CtlError('BAD_JSON', (e as Error).message);
      }
      if (typeof req !== 'object' || req === null || Array.isArray(req)) throw new CtlError('BAD_REQUEST', 'a request is a JSON object');
      id = req.id ?? null;
      if (req.v !== CTL_VERSION) throw new CtlError('BAD_VERSION', `protocol version ${CTL_VERSION} expected, got ${JSON.stringify(req.v)}`);
      if (typeof req.cmd !== 'string') throw new CtlError('BAD_REQUEST', 'cmd: expected a string');
      this.send(c, id, this.handle(req));
    } catch (e) {
      this.errors++;
      this.send(c, id, e instanceof CtlError ? e : new CtlError('INVALID', (e as Error).message));
    }
  }

  handle(req: Request): unknown {
    const d = this.d;
    switch (req.cmd) {
      case 'hello':
        return { server: 'tsvs', version: CTL_VERSION, pid: process.pid };
      case 'status':
        return {
          started: d.startedAt.toISOString(),
          packets: d.packets,
          conns: d.tracker.table.count,
          emitted: d.engine.emitted,
          not_emitted: d.engine.notEmitted,
          tx: { sent: d.sink.sent, errors: d.sink.errors, in_flight: d.sink.inFlight },
          capture: d.captures.map((x) => ({ iface: x.iface, ...x.stats() })),
          ctl: { requests: this.requests, errors: this.errors },
        };
      case 'snapshot':
        // everything but the connections (fetch those with conns)
        return {
          version: 1,
          source: `tsvs run (pid ${process.pid})`,
          profile: d.tracker.profile,
          time: d.tracker.nowString(),
          counters: counterObject(d.tracker),
          gauges: gauges(d.tracker),
          services: d.serviceList(),
          ...(d.engine.sp ? { synproxy: d.engine.sp.counterObject() } : {}),
        };
      case 'services':
        return d.serviceList();
      case 'counters':
        return { counters: counterObject(d.tracker), gauges: gauges(d.tracker), decoded: d.stats.decoded(), drops: d.stats.drops(), ...(d.engine.sp ? { synproxy: d.engine.sp.counterObject() } : {}) };
      case 'conns':
        return this.conns(req);
      case 'zero':
        for (const s of d.services.list) {
          s.stats.fill(0);
          s.destStats.fill(0);
        }
        return { zeroed: d.services.list.length };
      case 'flush':
        return { flushed: d.tracker.flush() };
      case 'reload':
        d.reload();
        return { services: d.serviceCfgs.length };
      case 'service.add':
      case 'service.edit':
      case 'service.delete':
      case 'server.add':
      case 'server.edit':
      case 'server.delete':
        return this.change(req);
      default:
        throw new CtlError('UNKNOWN_CMD', `unknown command ${JSON.stringify(req.cmd)}`);
    }
  }

  /** a page of connections from a snapshot taken at the first page (cursor) */
  private conns(req: Request): unknown {
    const now = Date.now();
    for (const [k, v] of this.cursors) if (now - v.at > CURSOR_TTL_MS) this.cursors.delete(k);
    const limit = req.limit === undefined ? 1000 : Number(req.limit);
    const offset = req.offset === undefined ? 0 : Number(req.offset);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new CtlError('BAD_REQUEST', `limit: expected 1-${MAX_PAGE}`);
    if (!Number.isInteger(offset) || offset < 0) throw new CtlError('BAD_REQUEST', 'offset: expected an integer >= 0');
    let cursor = typeof req.cursor === 'string' ? req.cursor : null;
    let snap = cursor ? this.cursors.get(cursor) : undefined;
    if (cursor && !snap) throw new CtlError('NOT_FOUND', `cursor ${cursor} unknown or expired`);
    if (!snap) {
      const f = (req.filter ?? {}) as ConnFilter;
      if (typeof f !== 'object' || Array.isArray(f)) throw new CtlError('BAD_REQUEST', 'filter: expected an object');
      const all: SnapshotConn[] = [];
      for (const c of this.d.tracker.handles()) {
        const x = snapshotConn(this.d.tracker, c);
        if (connMatches(x, f)) all.push(x);
      }
      snap = { conns: all, at: now };
      cursor = String(this.nextCursor++);
      this.cursors.set(cursor, snap);
    }
    const page = snap.conns.slice(offset, offset + limit);
    const next = offset + limit < snap.conns.length ? offset + limit : null;
    if (next === null) this.cursors.delete(cursor!);
    return { cursor, total: snap.conns.length, offset, conns: page, next };
  }

  /** add/edit/delete services and servers: a new service list, validated like the configuration file */
  private change(req: Request): unknown {
    const d = this.d;
    const list: ServiceConfig[] = structuredClone(d.serviceCfgs);
    const ref = req.service as ServiceRef | undefined;
    const find = () => {
      if (!ref || typeof ref !== 'object') throw new CtlError('BAD_REQUEST', 'service: expected { proto, vip, port }');
      const k = `${ref.proto} ${ref.vip} ${ref.port}`;
      const i = list.findIndex((s) => serviceKey(s) === k);
      if (i < 0) throw new CtlError('NOT_FOUND', `no service ${k}`);
      return i;
    };
    const body = (req.set ?? {}) as Record<string, unknown>;
    if (req.cmd === 'service.add') {
      const s = { ...(ref ?? {}), ...body, servers: (body.servers as unknown[]) ?? [] };
      if (list.some((x) => serviceKey(x) === `${ref?.proto} ${ref?.vip} ${ref?.port}`)) throw new CtlError('EXISTS', `service ${ref?.proto} ${ref?.vip} ${ref?.port} exists`);
      list.push(s as unknown as ServiceConfig);
    } else if (req.cmd === 'service.edit') {
      const i = find();
      list[i] = { ...list[i]!, ...body } as ServiceConfig;
    } else if (req.cmd === 'service.delete') {
      list.splice(find(), 1);
    } else {
      const i = find();
      const given = req.server as { addr?: unknown; port?: number } | undefined;
      if (!given || typeof given !== 'object' || typeof given.addr !== 'string') throw new CtlError('BAD_REQUEST', 'server: expected { addr, port, ... }');
      const srv = given as { addr: string; port?: number };
      const servers = list[i]!.servers;
      const j = servers.findIndex((x) => serverKey(x) === serverKey(srv));
      if (req.cmd === 'server.add') {
        if (j >= 0) throw new CtlError('EXISTS', `server ${serverKey(srv)} exists`);
        servers.push(srv as ServiceConfig['servers'][number]);
      } else if (j < 0) throw new CtlError('NOT_FOUND', `no server ${serverKey(srv)}`);
      else if (req.cmd === 'server.edit') servers[j] = { ...servers[j]!, ...srv };
      else servers.splice(j, 1);
    }
    let cfgs: ServiceConfig[];
    try {
      // the same validation as the configuration file (an empty service is refused there: min 1 server)
      cfgs = parseConfig({ services: list, live: d.cfg.live }, 'request').services;
    } catch (e) {
      throw new CtlError('INVALID', e instanceof ConfigError ? e.message : (e as Error).message);
    }
    const r = d.applyServices(cfgs);
    d.log.info('services changed', { by: 'ctl', cmd: req.cmd, ...r });
    return r;
  }

  close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server = null;
      try {
        fs.unlinkSync(this.socketPath);
      } catch {
        /* gone */
      }
    });
  }
}

