/**
 * Control socket server (Unix socket, mode 0600, JSON lines, see protocol.ts). Every request is validated
 * before it is used: its envelope (`v`, an `id` that is a string, a number or null, a known `cmd`) and each
 * command's arguments, typed, unknown ones refused; anything else gets an error reply and touches nothing.
 * Listings of connections are paged with stateless cursors (a position in the table), scanning a bounded
 * number of entries per request: no copy of the table, no memory per cursor, and the packet path runs
 * between pages; flows likewise (cursors are handles). A client that goes away mid-reply is forgotten.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { z } from 'zod';
import { CtlError, CTL_VERSION, MAX_LINE, type ServiceRef } from './protocol.js';
import type { ConnFilter, SnapshotConn, SnapshotService } from '../report/records.js';
import type { FlowFilter, FlowSort } from '../report/flows.js';
import type { FlowRecord } from '../report/flows.js';
import { ConfigError, MAX_TIMEOUT_S, type ServiceConfig } from '../config.js';
import { serviceKey, serverKey } from '../service/services.js';

/** at most this many connections per page */
export const MAX_PAGE = 10_000;
/** bytes of events a subscriber may leave unread before its events are dropped (and counted) */
export const EVENTS_BACKLOG = 4 << 20;
/** table entries looked at per `conns` request at most (a page may come back short, with a cursor to go on) */
export const SCAN_BUDGET = 65_536;

/** a value, or (live workers: asked of every worker thread) its promise */
export type Awaitable<T> = T | Promise<T>;

/**
 * What the control socket reads and changes: the daemon's side, narrowed to what requests need. What reads
 * or changes the engines' tables may answer later (with live workers, each worker thread's engine is asked).
 */
export interface CtlTarget {
  status(): Awaitable<unknown>;
  /** the table's snapshot without its connections (those come through `conns`) */
  snapshot(): Awaitable<unknown>;
  /** services and servers as listed (deleted ones hidden, each server's health) */
  serviceList(): Awaitable<SnapshotService[]>;
  counters(): Awaitable<unknown>;
  /**
   * Up to `limit` connections matching `filter` from table position `from` on, looking at no more than
   * `budget` entries: the page and the position to go on from (null at the end). Throws for a bad filter.
   */
  connPage(from: number, limit: number, budget: number, filter: ConnFilter): Awaitable<{ conns: SnapshotConn[]; next: number | null; total: number }>;
  /**
   * Flows (null: flow accounting is off): a page from handle `from` as connPage, the `limit` largest by
   * `sort` among those looked at when given; or the last destinations of source `recent`. Throws for a bad filter.
   */
  flowPage(from: number, limit: number, budget: number, filter: FlowFilter, sort?: FlowSort, recent?: string): Awaitable<{ flows: FlowRecord[]; next: number | null; total: number } | null>;
  zero(): Awaitable<number>;
  flush(): Awaitable<number>;
  /** conntrack -D: destroy the connections matching `filter` (throws for a bad filter); how many */
  deleteConns(filter: ConnFilter): Awaitable<number>;
  /**
   * conntrack -E: call `send` with each event (a JSON object's text) of the types asked for, of connections
   * matching `filter` (throws for a bad filter), until the returned function is called
   */
  subscribe(filter: ConnFilter, types: ReadonlySet<string>, send: (event: string) => void): () => void;
  reload(): number;
  /** the services as configured now */
  serviceConfigs(): ServiceConfig[];
  /** ipvsadm's three timeouts (seconds): TCP ESTABLISHED, TCP FIN_WAIT, UDP */
  timeouts(): IpvsTimeouts;
  /** set them (0 or absent: unchanged, as ipvsadm --set); connections take a new value when their timer is next armed */
  setTimeouts(t: Partial<IpvsTimeouts>): IpvsTimeouts;
  /** persistence templates, for ipvsadm -Lnc */
  templates(): Awaitable<TemplateEntry[]>;
  /** the agents the hub knows (null: no agents: section) */
  agents(): unknown;
  /** validate a whole new service list as the configuration file is (throws ConfigError) and apply it */
  replaceServices(list: unknown[], why: string): { added: number; changed: number; deleted: number };
}

export interface IpvsTimeouts {
  tcp: number;
  tcpfin: number;
  udp: number;
}

/** a persistence template as listed: client (masked, port 0) of a service, to a server */
export interface TemplateEntry {
  proto: string;
  client: string;
  vip: string;
  vport: number;
  server: string;
  expire: number;
}

const id = z.union([z.string().max(256), z.number().finite(), z.null()]);
const envelope = z.object({ v: z.literal(CTL_VERSION), id: id.optional(), cmd: z.string().max(64) }).passthrough();
const serviceRef = z.object({ proto: z.enum(['tcp', 'udp']), vip: z.string().max(64), port: z.number().int().min(0).max(65535) }).strict();
const serverRef = z.object({ addr: z.string().max(64), port: z.number().int().min(0).max(65535).optional() }).passthrough();
const filter = z
  .object({
    proto: z.string().max(16).optional(),
    state: z.string().max(32).optional(),
    src: z.string().max(64).optional(),
    dst: z.string().max(64).optional(),
    port: z.number().int().min(0).max(65535).optional(),
  })
  .strict();
const base = { v: z.literal(CTL_VERSION), id: id.optional(), cmd: z.string() };
const noArgs = z.object(base).strict();
const ARGS: Record<string, z.ZodTypeAny> = {
  hello: noArgs,
  status: noArgs,
  snapshot: noArgs,
  services: noArgs,
  counters: noArgs,
  zero: noArgs,
  flush: noArgs,
  reload: noArgs,
  delete: z.object({ ...base, filter: filter.optional() }).strict(),
  'services.config': noArgs,
  'services.set': z.object({ ...base, services: z.array(z.unknown()).max(65536) }).strict(),
  timeouts: noArgs,
  'timeouts.set': z.object({ ...base, tcp: z.number().int().min(0).max(MAX_TIMEOUT_S).optional(), tcpfin: z.number().int().min(0).max(MAX_TIMEOUT_S).optional(), udp: z.number().int().min(0).max(MAX_TIMEOUT_S).optional() }).strict(),
  templates: noArgs,
  agents: noArgs,
  events: z.object({ ...base, filter: filter.optional(), types: z.array(z.enum(['new', 'update', 'destroy'])).min(1).max(3).optional() }).strict(),
  conns: z.object({ ...base, limit: z.number().int().min(1).max(MAX_PAGE).optional(), cursor: z.string().regex(/^c[0-9]{1,10}$/, 'expected a cursor from a previous page').optional(), filter: filter.optional() }).strict(),
  flows: z
    .object({
      ...base,
      limit: z.number().int().min(1).max(MAX_PAGE).optional(),
      cursor: z.string().regex(/^f[0-9]{1,10}$/, 'expected a cursor from a previous page').optional(),
      sort: z.enum(['bytes', 'pkts', 'drops']).optional(),
      filter: z.object({ src: z.string().max(64).optional(), dst: z.string().max(64).optional() }).strict().optional(),
      recent: z.string().max(64).optional(),
    })
    .strict(),
  'service.add': z.object({ ...base, service: serviceRef, set: z.record(z.string(), z.unknown()).optional() }).strict(),
  'service.edit': z.object({ ...base, service: serviceRef, set: z.record(z.string(), z.unknown()) }).strict(),
  'service.delete': z.object({ ...base, service: serviceRef }).strict(),
  'server.add': z.object({ ...base, service: serviceRef, server: serverRef }).strict(),
  'server.edit': z.object({ ...base, service: serviceRef, server: serverRef }).strict(),
  'server.delete': z.object({ ...base, service: serviceRef, server: serverRef }).strict(),
};

/** "limit: Expected number, received string" from a zod error */
function zodMessage(e: z.ZodError): string {
  const i = e.issues[0]!;
  const where = i.path.join('.');
  const msg = i.code === 'unrecognized_keys' ? `unknown field ${i.keys.map((k) => JSON.stringify(k)).join(', ')}` : i.message;
  return where ? `${where}: ${msg}` : msg;
}

export class CtlServer {
  private server: net.Server | null = null;
  private readonly clients = new Set<net.Socket>();
  requests = 0;
  errors = 0;

  /** the inode of the socket this server made (close removes that one only) */
  private ino = -1;

  constructor(
    private readonly d: CtlTarget,
    readonly socketPath: string,
  ) {}

  /**
   * Make sure `p` may become this daemon's socket, before anything starts: refused when it is not a socket (a
   * file, a directory: never deleted) or when a daemon answers on it (its PID named); a stale socket (nobody
   * listening) is removed.
   */
  static async claim(p: string): Promise<void> {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return; // free
    }
    if (!st.isSocket()) throw new Error(`${p} exists and is not a socket (${st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : 'a file'}): refusing to replace it`);
    const pid = await new Promise<number | null>((resolve) => {
      const s = net.createConnection(p);
      let buf = '';
      const done = (v: number | null) => {
        clearTimeout(t);
        s.destroy();
        resolve(v);
      };
      const t = setTimeout(() => done(-1), 2000); // connected but silent: someone is there
      s.setEncoding('utf8');
      s.once('connect', () => s.write(`{"v":${CTL_VERSION},"cmd":"hello"}\n`));
      s.on('data', (d: string) => {
        buf += d;
        const m = /"pid":(\d+)/.exec(buf);
        if (m || buf.includes('\n')) done(m ? Number(m[1]) : -1);
      });
      s.once('error', () => done(null)); // ECONNREFUSED: stale
    });
    if (pid !== null) throw new Error(`${p}: another tsvs run is using it${pid > 0 ? ` (pid ${pid})` : ''}; stop it first, or give this one another live.socket`);
    fs.unlinkSync(p); // a stale socket of an earlier run
  }

  listen(): Promise<void> {
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o755 });
    return new Promise((resolve, reject) => {
      const srv = net.createServer((c) => this.client(c));
      srv.once('error', reject);
      // the socket is created with mode 0600: only root (the daemon's user) may change the LB
      const old = process.umask(0o177);
      srv.listen(this.socketPath, () => {
        process.umask(old);
        this.server = srv;
        try {
          this.ino = fs.statSync(this.socketPath).ino;
        } catch {
          /* gone already */
        }
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
    // replies in the order of the requests: one that waits for the workers holds back those after it
    let tail: Promise<void> | null = null;
    c.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        const out = this.answer(line, c);
        if (typeof out === 'string' && tail === null) {
          this.send(c, out);
          continue;
        }
        const p: Promise<void> = (tail ?? Promise.resolve()).then(() => out).then((l) => this.send(c, l));
        tail = p;
        void p.then(() => {
          if (tail === p) tail = null;
        });
      }
      if (buf.length > MAX_LINE) {
        this.send(c, this.reply(null, new CtlError('TOO_LONG', `request longer than ${MAX_LINE} bytes`)));
        c.end();
        buf = '';
      }
    });
  }

  private send(c: net.Socket, line: string): void {
    if (!c.destroyed && c.writable) c.write(line);
  }

  /** one reply line; a result that cannot be serialised is an error reply (the id is always a plain value) */
  private reply(id: unknown, r: unknown): string {
    const err = (e: CtlError) => `${JSON.stringify({ v: CTL_VERSION, id, ok: false, error: { code: e.code, message: e.message } })}\n`;
    if (r instanceof CtlError) return err(r);
    try {
      return `${JSON.stringify({ v: CTL_VERSION, id, ok: true, result: r })}\n`;
    } catch (e) {
      this.errors++;
      return err(new CtlError('INTERNAL', `the reply could not be written: ${(e as Error).message}`));
    }
  }

  /** an error reply for what a request threw */
  private failed(reqId: unknown, e: unknown): string {
    this.errors++;
    return this.reply(reqId, e instanceof CtlError ? e : new CtlError(e instanceof ConfigError ? 'INVALID' : 'INTERNAL', (e as Error).message));
  }

  /**
   * The reply line to one request line (`c`: the client's socket, for a subscription to events); its promise
   * when the answer waits for live workers.
   */
  answer(line: string, c?: net.Socket): string | Promise<string> {
    this.requests++;
    let reqId: unknown = null;
    try {
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch (e) {
        throw new CtlError('BAD_JSON', (e as Error).message);
      }
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CtlError('BAD_REQUEST', 'a request is a JSON object');
      const env = envelope.safeParse(raw);
      if (!env.success) {
        const v = (raw as { v?: unknown }).v;
        if (v !== CTL_VERSION) throw new CtlError('BAD_VERSION', `protocol version ${CTL_VERSION} expected, got ${typeof v === 'number' ? v : typeof v}`);
        throw new CtlError('BAD_REQUEST', zodMessage(env.error));
      }
      reqId = env.data.id ?? null;
      const schema = ARGS[env.data.cmd];
      if (!schema) throw new CtlError('UNKNOWN_CMD', `unknown command ${JSON.stringify(env.data.cmd)}`);
      const req = schema.safeParse(raw);
      if (!req.success) throw new CtlError('BAD_REQUEST', zodMessage(req.error));
      if (env.data.cmd === 'events') return this.reply(reqId, this.events(req.data as { filter?: ConnFilter; types?: string[] }, c));
      const r = this.handle(req.data as Record<string, unknown> & { cmd: string });
      const id = reqId;
      if (r instanceof Promise) return r.then((v) => this.reply(id, v), (e: unknown) => this.failed(id, e));
      return this.reply(reqId, r);
    } catch (e) {
      return this.failed(reqId, e);
    }
  }

  private handle(req: Record<string, unknown> & { cmd: string }): unknown {
    const d = this.d;
    switch (req.cmd) {
      case 'hello':
        return { server: 'tsvs', version: CTL_VERSION, pid: process.pid };
      case 'status':
        return then(d.status(), (x) => ({ ...(x as object), ctl: { requests: this.requests, errors: this.errors } }));
      case 'snapshot':
        return d.snapshot();
      case 'services':
        return d.serviceList();
      case 'counters':
        return d.counters();
      case 'conns':
        return this.conns(req as { limit?: number; cursor?: string; filter?: ConnFilter });
      case 'flows':
        return this.flows(req as { limit?: number; cursor?: string; filter?: FlowFilter; sort?: FlowSort; recent?: string });
      case 'zero':
        return then(d.zero(), (n) => ({ zeroed: n }));
      case 'flush':
        return then(d.flush(), (n) => ({ flushed: n }));
      case 'delete':
        return guard(
          () => d.deleteConns((req.filter as ConnFilter | undefined) ?? {}),
          (n) => ({ deleted: n }),
          (e) => new CtlError('BAD_REQUEST', `filter: ${e.message}`),
        );
      case 'reload':
        return { services: d.reload() };
      case 'services.config':
        return d.serviceConfigs();
      case 'services.set':
        try {
          return d.replaceServices(req.services as unknown[], 'services.set');
        } catch (e) {
          throw new CtlError('INVALID', (e as Error).message);
        }
      case 'timeouts':
        return d.timeouts();
      case 'timeouts.set':
        return d.setTimeouts(req as Partial<IpvsTimeouts>);
      case 'templates':
        return d.templates();
      case 'agents': {
        const a = d.agents();
        if (a === null) throw new CtlError('NOT_FOUND', 'no agents: section in the configuration');
        return a;
      }
      default:
        return this.change(req);
    }
  }

  /**
   * A subscription to connection events on this client's socket: after the reply, one line per event,
   * {"v":1,"event":{...}}, until the client goes. A client that does not read is not waited for: past
   * EVENTS_BACKLOG bytes unread its events are dropped and counted, and told as {"v":1,"lost":N} before the
   * next one that fits (conntrack -E's ENOBUFS, without ending the stream).
   */
  private events(req: { filter?: ConnFilter; types?: string[] }, c: net.Socket | undefined): unknown {
    if (!c) throw new CtlError('BAD_REQUEST', 'events: only on a socket');
    let lost = 0;
    let unsub: () => void;
    try {
      unsub = this.d.subscribe(req.filter ?? {}, new Set(req.types ?? ['new', 'update', 'destroy']), (ev) => {
        if (c.destroyed || c.writableLength > EVENTS_BACKLOG) {
          lost++;
          return;
        }
        if (lost > 0) {
          c.write(`{"v":${CTL_VERSION},"lost":${lost}}\n`);
          lost = 0;
        }
        c.write(`{"v":${CTL_VERSION},"event":${ev}}\n`);
      });
    } catch (e) {
      throw new CtlError('BAD_REQUEST', `filter: ${(e as Error).message}`);
    }
    c.once('close', unsub);
    return { subscribed: true };
  }

  /** a page of connections from the cursor's position (the first page: from the start) */
  private conns(req: { limit?: number; cursor?: string; filter?: ConnFilter }): unknown {
    const from = req.cursor ? Number(req.cursor.slice(1)) : 0;
    return guard(
      () => this.d.connPage(from, req.limit ?? 1000, SCAN_BUDGET, req.filter ?? {}),
      (page) => ({ conns: page.conns, next: page.next === null ? null : `c${page.next}`, total: page.total }),
      (e) => new CtlError('BAD_REQUEST', `filter: ${e.message}`),
    );
  }

  /** a page of flows (see CtlTarget.flowPage); cursors are "f" + a handle */
  private flows(req: { limit?: number; cursor?: string; filter?: FlowFilter; sort?: FlowSort; recent?: string }): unknown {
    const from = req.cursor ? Number(req.cursor.slice(1)) : 0;
    return guard(
      () => this.d.flowPage(from, req.limit ?? 1000, SCAN_BUDGET, req.filter ?? {}, req.sort, req.recent),
      (page) => {
        if (page === null) throw new CtlError('NOT_FOUND', 'flow accounting is off (flows: { enabled: false } in the configuration)');
        return { flows: page.flows, next: page.next === null ? null : `f${page.next}`, total: page.total };
      },
      (e) => (e instanceof CtlError ? e : new CtlError('BAD_REQUEST', e.message)),
    );
  }

  /** add/edit/delete services and servers: a new service list, validated like the configuration file */
  private change(req: Record<string, unknown> & { cmd: string }): unknown {
    const list: ServiceConfig[] = structuredClone(this.d.serviceConfigs());
    const ref = req.service as ServiceRef;
    const key = `${ref.proto} ${ref.vip} ${ref.port}`;
    const find = () => {
      const i = list.findIndex((s) => serviceKey(s) === key);
      if (i < 0) throw new CtlError('NOT_FOUND', `no service ${key}`);
      return i;
    };
    const body = (req.set ?? {}) as Record<string, unknown>;
    if (req.cmd === 'service.add') {
      if (list.some((x) => serviceKey(x) === key)) throw new CtlError('EXISTS', `service ${key} exists`);
      list.push({ ...ref, ...body, servers: (body.servers as unknown[]) ?? [] } as unknown as ServiceConfig);
    } else if (req.cmd === 'service.edit') {
      const i = find();
      // (a field set to null is removed: ipvsadm -E without -p ends persistence)
      list[i] = Object.fromEntries(Object.entries({ ...list[i]!, ...body }).filter(([, v]) => v !== null)) as unknown as ServiceConfig;
    } else if (req.cmd === 'service.delete') {
      list.splice(find(), 1);
    } else {
      const servers = list[find()]!.servers;
      const srv = req.server as { addr: string; port?: number };
      const j = servers.findIndex((x) => serverKey(x) === serverKey(srv));
      if (req.cmd === 'server.add') {
        if (j >= 0) throw new CtlError('EXISTS', `server ${serverKey(srv)} exists`);
        servers.push(srv as ServiceConfig['servers'][number]);
      } else if (j < 0) throw new CtlError('NOT_FOUND', `no server ${serverKey(srv)}`);
      else if (req.cmd === 'server.edit') servers[j] = { ...servers[j]!, ...srv };
      else servers.splice(j, 1);
    }
    try {
      return this.d.replaceServices(list, req.cmd);
    } catch (e) {
      throw new CtlError('INVALID', (e as Error).message);
    }
  }

  close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server = null;
      try {
        // only our own socket (another daemon's, made after ours was removed, stays)
        if (fs.statSync(this.socketPath).ino === this.ino) fs.unlinkSync(this.socketPath);
      } catch {
        /* gone */
      }
    });
  }
}

/** f of a value, or of its promise's value */
function then<T, U>(v: Awaitable<T>, f: (x: T) => U): Awaitable<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}

/** then(get(), f), what get throws (at once or later) made an error by `err` (what f throws stays as it is) */
function guard<T, U>(get: () => Awaitable<T>, f: (x: T) => U, err: (e: Error) => Error): Awaitable<U> {
  let v: Awaitable<T>;
  try {
    v = get();
  } catch (e) {
    throw err(e as Error);
  }
  if (v instanceof Promise)
    return v.then(f, (e: Error) => {
      throw err(e);
    });
  return f(v);
}
