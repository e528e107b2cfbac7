#!/usr/bin/env node
/**
 * `ctstat`: the connection table and counters of a replay snapshot (`tsvs replay --snapshot FILE`).
 *   ctstat -L [-o ipvs|conntrack|json] [--proto P] [--state S] [--src A] [--dst A] [--port N] --snapshot F
 *   ctstat -S [-o json] --snapshot F
 * Without --snapshot, the same views come from a running `tsvs run` through its control socket
 * (--socket PATH, default $TSVS_SOCKET or /run/tsvs/tsvs.sock).
 * States are coloured only when stdout is a terminal.
 */
import * as fs from 'node:fs';
import { Command } from 'commander';
import { EXIT_INTERNAL, exitStatusFor, UsageError } from './errors.js';
import type { Snapshot } from '../report/records.js';
import { connectCtl, list, services, stats } from './views.js';
import { DEFAULT_SOCKET } from '../ctl/protocol.js';

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

export async function main(argv: string[]): Promise<number> {
  const program = new Command('ctstat')
    .description('connection table and statistics of a tsvs replay snapshot')
    .option('-L, --list', 'list connections')
    .option('-l, --services', 'list virtual services and real servers (ipvsadm -Ln layout; with --stats their counters)')
    .option('-S, --stats', 'print the counters (with -l: per service and server)')
    .option('--rate', 'with -l: connections, packets and bytes per second (IPVS estimator, 2 s EWMA)')
    .option('-o, --output <fmt>', 'ipvs (ipvsadm -lnc columns), conntrack (conntrack -L lines) or json', 'ipvs')
    .option('--snapshot <file>', 'snapshot written by tsvs replay --snapshot')
    .option('--socket <path>', 'control socket of a running tsvs run (the default source without --snapshot)')
    .option('--proto <p>', 'only this protocol (tcp, udp, icmp, icmpv6)')
    .option('--state <s>', 'only connections in this state')
    .option('--src <addr>', 'only this original source address')
    .option('--dst <addr>', 'only this original destination address')
    .option('--port <n>', 'only connections with this source or destination port (or ICMP id)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    program.parse(argv);
    const o = program.opts<Opts>();
    if (!['ipvs', 'conntrack', 'json'].includes(o.output)) throw new UsageError(`-o: expected ipvs, conntrack or json, got "${o.output}"`);
    if (!o.list && !o.stats && !o.services) throw new UsageError('nothing to do: give -L (connections), -l (services) or -S (counters)');
    const snap = o.snapshot ? load(o.snapshot) : await fetchLive(o.socket ?? process.env.TSVS_SOCKET ?? DEFAULT_SOCKET, o.list === true, o);
    const color = process.stdout.isTTY === true;
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
