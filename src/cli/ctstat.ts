#!/usr/bin/env node
/**
 * `ctstat`: the connection table and counters of a replay snapshot (`tsvs replay --snapshot FILE`).
 *   ctstat -L [-o ipvs|conntrack|json] [--proto P] [--state S] [--src A] [--dst A] [--port N] --snapshot F
 *   ctstat -S [-o json] --snapshot F
 *   ctstat --flows [--top N] [--sort bytes|pkts|drops] [--src CIDR] [--dst CIDR] [--recent ADDR] [-o json] --snapshot F
 *   ctstat -E [-e NEW,UPDATE,DESTROY] [filters] [-o conntrack|extended|json]   ctstat -C [filters]   ctstat -D [filters]   ctstat -F
 * Without --snapshot, the same views come from a running `tsvs run` through its control socket
 * (--socket PATH, default $TSVS_SOCKET or /run/tsvs/tsvs.sock).
 * States are coloured only when stdout is a terminal.
 */
import '../runtime.js'; // first: V8 settings, and a quiet end on a closed pipe
import * as fs from 'node:fs';
import { Command } from 'commander';
import { EXIT_INTERNAL, exitStatusFor, UsageError } from './errors.js';
import type { Snapshot } from '../report/records.js';
import { connectCtl, eventLine, filter, flowList, list, services, sortFlows, stats } from './views.js';
import type { ConnFilter } from '../report/records.js';
import { recordMatcher, type FlowSort } from '../report/flows.js';
import { addrToWords, userPrefix } from '../packet/addr.js';
import type { FlowRecord } from '../report/flows.js';
import { DEFAULT_SOCKET } from '../ctl/protocol.js';
import { VERSION } from '../version.js';

interface Opts {
  services?: boolean;
  rate?: boolean;
  list?: boolean;
  stats?: boolean;
  output: string;
  snapshot?: string;
  socket?: string;
  proto?: string;
  state?: string;
  src?: string;
  dst?: string;
  port?: string;
  flows?: boolean;
  color?: boolean;
  top?: string;
  sort: string;
  recent?: string;
  event?: boolean;
  eventMask?: string;
  count?: boolean;
  delete?: boolean;
  flush?: boolean;
  agents?: boolean;
}

function load(path: string | undefined): Snapshot {
  if (!path) throw new UsageError('no source: give --snapshot FILE (written by tsvs replay --snapshot)');
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let snap: Snapshot;
  try {
    snap = JSON.parse(text) as Snapshot;
  } catch (e) {
    throw new UsageError(`${path}: not a tsvs snapshot (${(e as Error).message})`);
  }
  if (snap.version !== 1 || !Array.isArray(snap.conns)) throw new UsageError(`${path}: not a tsvs snapshot (version ${String(snap.version)})`);
  return snap;
}

/** the same document from a running daemon: its state, then its connections page by page (one snapshot) */
async function fetchLive(path: string, wantConns: boolean, o: Opts): Promise<Snapshot> {
  const c = await connectCtl(path);
  try {
    const snap = (await c.call('snapshot')) as Snapshot;
    snap.conns = [];
    // (proto and state narrow the listing at the daemon; the other filters apply here, as for a file)
    if (wantConns) snap.conns = await c.allConns({ proto: o.proto, state: o.state });
    return snap;
  } catch (e) {
    throw new UsageError(`${path}: ${(e as Error).message}`);
  } finally {
    c.close();
  }
}

/** ctstat --flows: from a snapshot (written with flows on) or a running daemon, through its control socket */
async function flowsCmd(o: Opts): Promise<number> {
  if (!['bytes', 'pkts', 'drops'].includes(o.sort)) throw new UsageError(`--sort: expected bytes, pkts or drops, got "${o.sort}"`);
  const sort = o.sort as FlowSort;
  const top = o.top === undefined ? undefined : Number(o.top);
  if (top !== undefined && (!Number.isInteger(top) || top < 1 || top > 10000)) throw new UsageError(`--top: expected 1-10000, got "${o.top}"`);
  const filter = { ...(o.src !== undefined ? { src: o.src } : {}), ...(o.dst !== undefined ? { dst: o.dst } : {}) };
  let flows: FlowRecord[];
  if (o.snapshot) {
    const snap = load(o.snapshot);
    if (!snap.flows) throw new UsageError(`${o.snapshot}: no flows in this snapshot (replay with --flows FILE, or flows: { enabled: true } in the configuration)`);
    let match: (r: FlowRecord) => boolean;
    try {
      match = recordMatcher(filter);
      if (o.recent !== undefined) userPrefix('recent', o.recent);
    } catch (e) {
      throw new UsageError(`--${(e as Error).message}`);
    }
    if (o.recent !== undefined) {
      // a snapshot has no per-source list: the source's flows by last activity (as the list orders them, roughly)
      const want = addrToWords(o.recent);
      flows = snap.flows.filter((f) => { const w = addrToWords(f.src); return w.v6 === want.v6 && w.words.every((x, i) => x === want.words[i]); }).sort((a, b) => Number(b.last) - Number(a.last));
    } else flows = snap.flows.filter(match);
  } else {
    const path = o.socket ?? process.env.TSVS_SOCKET ?? DEFAULT_SOCKET;
    const c = await connectCtl(path);
    try {
      flows = await c.flows(filter, sort, top, o.recent);
    } catch (e) {
      throw new UsageError(`${path}: ${(e as Error).message}`);
    } finally {
      c.close();
    }
  }
  process.stdout.write(`${flowList(o.recent !== undefined ? flows.slice(0, top) : sortFlows(flows, sort, top), { output: o.output, sort, top })}\n`);
  return 0;
}

/** the filters of -L as the control socket takes them */
function connFilter(o: Opts): ConnFilter {
  const port = o.port === undefined ? undefined : Number(o.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new UsageError(`--port: expected 0-65535, got "${o.port}"`);
  return { ...(o.proto !== undefined ? { proto: o.proto } : {}), ...(o.state !== undefined ? { state: o.state } : {}), ...(o.src !== undefined ? { src: o.src } : {}), ...(o.dst !== undefined ? { dst: o.dst } : {}), ...(port !== undefined ? { port } : {}) };
}

/** ctstat -E: a running daemon's connection events, one line each, until interrupted or the daemon goes */
async function eventsCmd(o: Opts): Promise<number> {
  if (o.snapshot) throw new UsageError('-E: events come from a running tsvs run (--socket), not a snapshot');
  const mask = (o.eventMask ?? 'ALL').split(',').map((x) => x.trim().toUpperCase());
  const known = ['NEW', 'UPDATE', 'DESTROY', 'ALL'];
  const bad = mask.find((m) => !known.includes(m));
  if (bad !== undefined) throw new UsageError(`--event-mask: expected NEW, UPDATE, DESTROY or ALL, got "${bad}"`);
  const types = mask.includes('ALL') ? ['new', 'update', 'destroy'] : mask.map((m) => m.toLowerCase());
  const path = o.socket ?? process.env.TSVS_SOCKET ?? DEFAULT_SOCKET;
  const c = await connectCtl(path);
  let n = 0;
  const end = () => {
    process.stderr.write(`conntrack v1.4 (tsvs): ${n} flow events have been shown.\n`);
    c.close();
    process.exit(0);
  };
  process.once('SIGINT', end);
  process.once('SIGTERM', end);
  try {
    await c.events(connFilter(o), types, (m) => {
      if (m.lost !== undefined) {
        process.stderr.write(`ctstat: WARNING: ${m.lost} events lost (this reader was too slow)\n`);
        return;
      }
      n++;
      process.stdout.write(o.output === 'json' ? `${JSON.stringify(m.event)}\n` : `${eventLine(m.event as Parameters<typeof eventLine>[0], o.output === 'extended')}\n`);
    });
  } catch (e) {
    throw new UsageError(`${path}: ${(e as Error).message}`);
  }
  process.stderr.write(`ctstat: ${path}: the daemon closed the connection\n`);
  return 1;
}

/** ctstat -D: delete the matching connections from a running daemon */
async function deleteCmd(o: Opts): Promise<number> {
  if (o.snapshot) throw new UsageError('-D: deletes from a running tsvs run (--socket), not from a snapshot');
  const path = o.socket ?? process.env.TSVS_SOCKET ?? DEFAULT_SOCKET;
  const c = await connectCtl(path);
  try {
    const r = (await c.call('delete', { filter: connFilter(o) })) as { deleted: number };
    process.stderr.write(`conntrack v1.4 (tsvs): ${r.deleted} flow entries have been deleted.\n`);
    return r.deleted > 0 ? 0 : 1;
  } catch (e) {
    throw new UsageError(`${path}: ${(e as Error).message}`);
  } finally {
    c.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('ctstat')
    .description('connection table and statistics of a tsvs replay snapshot')
    .option('-L, --list', 'list connections')
    .option('-l, --services', 'list virtual services and real servers (ipvsadm -Ln layout; with --stats their counters)')
    .option('-S, --stats', 'print the counters (with -l: per service and server)')
    .option('--rate', 'with -l: connections, packets and bytes per second (IPVS estimator, 2 s EWMA)')
    .option('-o, --output <fmt>', 'ipvs (ipvsadm -lnc columns), conntrack (conntrack -L lines), extended (conntrack -o extended) or json', 'ipvs')
    .option('--snapshot <file>', 'snapshot written by tsvs replay --snapshot')
    .option('--socket <path>', 'control socket of a running tsvs run (the default source without --snapshot)')
    .option('--proto <p>', 'only this protocol (tcp, udp, icmp, icmpv6)')
    .option('--state <s>', 'only connections in this state')
    .option('--src <addr>', 'only this original source address')
    .option('--dst <addr>', 'only this original destination address')
    .option('--port <n>', 'only connections with this source or destination port (or ICMP id)')
    .option('--flows', 'list flows per (source, destination): packets, bytes, sent on, drops by reason')
    .option('--top <n>', 'with --flows: only the n largest')
    .option('--sort <key>', 'with --flows: bytes, pkts or drops', 'bytes')
    .option('--recent <addr>', 'with --flows: the last destinations of this source, most recent first')
    .option('-E, --event', 'stream connection events from a running tsvs run, as conntrack -E (until interrupted); filters as -L')
    .option('-e, --event-mask <list>', 'with -E: NEW, UPDATE, DESTROY or ALL, comma-separated (conntrack -e)')
    .option('-C, --count', 'print the number of connections (matching the filters), as conntrack -C')
    .option('-D, --delete', 'delete the connections matching the filters from a running tsvs run, as conntrack -D')
    .option('-F, --flush', 'remove every connection of a running tsvs run, as conntrack -F')
    .option('--agents', "the agents a running tsvs run's hub knows: up, endpoint, last heartbeat, moves")
    .option('-n, --numeric', 'numeric addresses and ports (always: accepted for ipvsadm and conntrack habits, -Ln)')
    .option('--no-color', 'no colours (also: NO_COLOR in the environment)')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    program.parse(argv);
    const o = program.opts<Opts>();
    // options a view would ignore are mistakes, said so
    const given = (k: string) => program.getOptionValueSource(k) === 'cli';
    if (o.rate && !o.services) throw new UsageError('--rate: only with -l (the services view)');
    for (const k of ['top', 'sort', 'recent']) if (given(k) && !o.flows) throw new UsageError(`--${k}: only with --flows`);
    if (o.flows) for (const k of ['proto', 'state', 'port']) if (given(k)) throw new UsageError(`--${k}: not a flow filter (--flows takes --src, --dst, --recent)`);
    if (o.flows && (o.list || o.services || o.stats)) throw new UsageError('--flows: a view of its own (not with -L, -l or -S)');
    if (!['ipvs', 'conntrack', 'extended', 'json'].includes(o.output)) throw new UsageError(`-o: expected ipvs, conntrack, extended or json, got "${o.output}"`);
    if (given('eventMask') && !o.event) throw new UsageError('--event-mask: only with -E');
    const views = ['list', 'services', 'stats', 'flows', 'event', 'count', 'delete', 'flush', 'agents'].filter((k) => o[k as keyof Opts] === true);
    if (views.length > 1 && !(views.length === 2 && views.includes('services') && views.includes('stats'))) throw new UsageError(`one view at a time (given: ${views.map((v) => `--${v}`).join(', ')})`);
    if (o.flows) return await flowsCmd(o);
    if (o.event) return await eventsCmd(o);
    if (o.delete) return await deleteCmd(o);
    if (o.agents) {
      if (o.snapshot) throw new UsageError('--agents: from a running tsvs run (--socket), not a snapshot');
      const path = o.socket ?? process.env.TSVS_SOCKET ?? DEFAULT_SOCKET;
      const c = await connectCtl(path);
      let r: { agents: Array<{ id: string; up: boolean; endpoint: { addr: string; port: number } | null; last_heartbeat_ms_ago: number | null; heartbeats: number; moves: number; control: { conv: number; rtt_ms: number } | null; reported: { rtt_ms?: number; delivered?: number; returned?: number } | null }>; drops: Record<string, number> };
      try {
        r = (await c.call('agents')) as typeof r;
      } catch (e) {
        throw new UsageError(`${path}: ${(e as Error).message}`);
      } finally {
        c.close();
      }
      if (o.output === 'json') process.stdout.write(`${JSON.stringify(r)}\n`);
      else {
        // RTT: the agent's heartbeat round trip as it reports it on the control channel; IN/OUT: client packets it
        // handed to its host and replies it sent back
        const num = (x: number | undefined | null) => (typeof x === 'number' && x >= 0 ? String(Math.round(x * 10) / 10) : '-');
        const rows = r.agents.map((a) => `${a.id.padEnd(16)} ${(a.up ? 'up' : 'down').padEnd(5)} ${(a.endpoint ? `${a.endpoint.addr}:${a.endpoint.port}` : '-').padEnd(24)} ${String(a.last_heartbeat_ms_ago ?? '-').padStart(9)} ${String(a.heartbeats).padStart(10)} ${String(a.moves).padStart(6)} ${num(a.reported?.rtt_ms).padStart(7)} ${(a.control ? 'up' : '-').padEnd(7)} ${num(a.reported?.delivered).padStart(9)} ${num(a.reported?.returned).padStart(9)}`);
        process.stdout.write(`${['AGENT            STATE ENDPOINT                   LAST_MS HEARTBEATS  MOVES  RTT_MS CONTROL   IN_PKTS  OUT_PKTS', ...rows, `refused: ${Object.entries(r.drops).map(([k, v]) => `${k} ${v}`).join(', ')}`].join('\n')}\n`);
      }
      return 0;
    }
    if (o.flush) {
      if (o.snapshot) throw new UsageError('-F: flushes a running tsvs run (--socket), not a snapshot');
      for (const k of ['proto', 'state', 'src', 'dst', 'port']) if (given(k)) throw new UsageError(`--${k}: -F removes every connection (ctstat -D deletes those matching filters)`);
      const path = o.socket ?? process.env.TSVS_SOCKET ?? DEFAULT_SOCKET;
      const c = await connectCtl(path);
      try {
        await c.call('flush');
      } catch (e) {
        throw new UsageError(`${path}: ${(e as Error).message}`);
      } finally {
        c.close();
      }
      process.stderr.write('conntrack v1.4 (tsvs): connection tracking table has been emptied.\n');
      return 0;
    }
    if (o.count) {
      const snap = o.snapshot ? load(o.snapshot) : await fetchLive(o.socket ?? process.env.TSVS_SOCKET ?? DEFAULT_SOCKET, true, o);
      process.stdout.write(`${filter(snap.conns, o, snap.profile).length}\n`);
      return 0;
    }
    if (!o.list && !o.stats && !o.services) throw new UsageError('nothing to do: give -L (connections), -l (services), -S (counters), -E (events), -C (count), -D (delete) or --flows');
    const snap = o.snapshot ? load(o.snapshot) : await fetchLive(o.socket ?? process.env.TSVS_SOCKET ?? DEFAULT_SOCKET, o.list === true, o);
    const color = process.stdout.isTTY === true && o.color !== false && !process.env.NO_COLOR;
    if (o.list) process.stdout.write(`${list(snap, o, color)}\n`);
    if (o.services) process.stdout.write(`${services(snap, o)}\n`);
    else if (o.stats) process.stdout.write(`${stats(snap, o)}\n`);
    return 0;
  } catch (e) {
    return exitStatusFor('ctstat', e);
  }
}

main(process.argv).then(
  (rc) => {
    process.exitCode = rc;
  },
  (e: unknown) => {
    process.stderr.write(`ctstat: internal error: ${(e as Error).message}\n`);
    if (process.env.TSVS_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = EXIT_INTERNAL;
  },
);
