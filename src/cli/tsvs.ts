#!/usr/bin/env node
/** `tsvs` entry point. User mistakes print one line and exit 2; never a stack trace (TSVS_DEBUG=1 shows one). */
import '../runtime.js'; // first: V8 settings for the packet path
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { EXIT_INTERNAL, exitStatusFor, UsageError } from './errors.js';
import { VERSION } from '../version.js';
import { Bpf } from '../capture/bpf.js';
import { replayFile, ReplayError, type ReplayOptions, type ReplaySummary } from '../replay.js';
import { replayWorkers } from '../workers/replay.js';
import type { DispatchMode } from '../workers/dispatch.js';
import { LineWriter } from '../report/records.js';
import { renderReport } from '../report/html.js';
import { zeekFooter, zeekHeader, zeekLine } from '../report/zeek.js';
import { LatencyModel } from '../lb/region-driver.js';
import { agentCmd, type AgentOptions } from './agent.js';
import type { ReportData } from '../report/report.js';
import type { Profile } from '../conntrack/conntrack.js';
import { checkTimeouts, ConfigError, loadConfig, splitTimeouts, type Config, type Timeouts } from '../config.js';
import { replaySecret } from '../synproxy/synproxy.js';
import { Services } from '../service/services.js';
import { formatSummary, progressBar } from './format.js';
import { Logger, type Level } from '../log.js';

const LARGE_FILE = 64 * 1024 * 1024;

interface ReplayCliOptions {
  json?: boolean;
  color?: boolean;
  verifyChecksums?: boolean;
  profile: string;
  seed: string;
  maxConns: string;
  drain?: boolean;
  events?: string;
  conns?: string;
  snapshot?: string;
  flows?: string;
  filter?: string;
  timeout: string[];
  workers: string;
  dispatch: string;
  config?: string;
  out?: string;
  report?: string;
  connsFormat: string;
  latency?: string;
}

/** --timeout NAME=SECONDS (repeatable; later ones win) over the configuration's timeouts: see checkTimeouts for the names */
function parseTimeouts(list: string[], fromConfig: Record<string, number>, profile: Profile): Timeouts {
  const byName: Record<string, number> = {};
  for (const item of list) {
    const m = /^([a-z_0-9]+)=(\d+(?:\.\d+)?)$/i.exec(item);
    if (!m) throw new UsageError(`--timeout: expected NAME=SECONDS, got "${item}"`);
    byName[m[1]!.toLowerCase()] = Number(m[2]);
  }
  const bad = checkTimeouts(byName, profile);
  if (bad) throw new UsageError(`--timeout: ${bad}`);
  const merged: Record<string, number> = {};
  for (const [k, v] of Object.entries(fromConfig)) merged[k.toLowerCase()] = v;
  return splitTimeouts({ ...merged, ...byName });
}

function intOption(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name}: expected an integer in [${min}, ${max}], got "${v}"`);
  return n;
}

function openOutput(flag: string, path: string | undefined): LineWriter | undefined {
  if (!path) return undefined;
  try {
    return new LineWriter(path);
  } catch (e) {
    throw new UsageError(`--${flag} ${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** --conns as a Zeek conn.log: the header before the first line, #close at the end (times: the first and last connection's, so a replay repeated writes the same file) */
class ZeekLog {
  private first = true;
  private lastTs = 0;
  constructor(private readonly w: LineWriter) {}
  line(s: string): void {
    const ts = Number(s.slice(0, s.indexOf('\t')));
    if (this.first) {
      this.w.line(zeekHeader(new Date(ts * 1000)));
      this.first = false;
    }
    this.lastTs = Math.max(this.lastTs, ts);
    this.w.line(s);
  }
  close(): void {
    if (this.first) this.w.line(zeekHeader(new Date(0)));
    this.w.line(zeekFooter(new Date(this.lastTs * 1000)));
    this.w.close();
  }
}

/** this process's command line, as a shell would take it back */
function commandLine(): string {
  const q = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
  return ['tsvs', ...process.argv.slice(2)].map(q).join(' ');
}

/** "{}" in an output path: each input's base name without its capture extensions (x.pcap.gz -> x) */
function perInput(pattern: string, input: string): string {
  return pattern.split('{}').join(path.basename(input).replace(/(\.(pcapng|pcap|cap|gz))+$/i, ''));
}

/**
 * Outputs are checked before anything is opened for writing: none may be an input (the same file, by device
 * and inode: a link or another path to it too) or another output; with several inputs, --out and --snapshot
 * (one file per input) need "{}" in their path and distinct names.
 */
function checkOutputs(files: string[], others: Array<string | undefined>, outs: Array<[string, string | undefined]>): void {
  const id = (p: string): string | null => {
    try {
      const st = fs.statSync(p);
      // the terminal, /dev/null, a pipe: writing there loses nothing
      return st.isFile() || st.isDirectory() ? `${st.dev}:${st.ino}` : null;
    } catch {
      return null;
    }
  };
  const inputs = new Map<string, string>();
  for (const f of [...files, ...others.filter((x): x is string => x !== undefined)]) {
    const k = id(f);
    if (k) inputs.set(k, f);
  }
  const seen = new Map<string, string>();
  for (const [flag, pattern] of outs) {
    if (!pattern) continue;
    const perFile = flag === 'out' || flag === 'snapshot' || flag === 'report';
    if (perFile && files.length > 1 && !pattern.includes('{}')) throw new UsageError(`--${flag} ${pattern}: ${files.length} inputs would write one after another into it: put {} in the name (each input's base name), e.g. --${flag} ${pattern.replace(/(\.[^./]*)?$/, '-{}$1')}`);
    for (const p of perFile ? files.map((f) => perInput(pattern, f)) : [pattern]) {
      const k = id(p) ?? `path:${path.resolve(p)}`;
      const input = inputs.get(k);
      if (input !== undefined) throw new UsageError(`--${flag} ${p}: is the input ${input}: refusing to overwrite it`);
      const other = seen.get(k);
      if (other !== undefined && !k.startsWith('path:/dev/')) throw new UsageError(`--${flag} ${p}: also the output of ${other}`);
      seen.set(k, `--${flag}`);
    }
  }
}

async function replayCmd(files: string[], opts: ReplayCliOptions, given: (name: string) => boolean): Promise<number> {
  let rc = 0;
  if (opts.filter !== undefined) {
    try {
      Bpf.compile(opts.filter, 1); // checked once, on Ethernet, before anything is read or written
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  checkOutputs(files, [opts.config, opts.latency], [
    ['out', opts.out],
    ['snapshot', opts.snapshot],
    ['events', opts.events],
    ['conns', opts.conns],
    ['flows', opts.flows],
    ['report', opts.report],
  ]);
  let cfg: Config | null = null;
  if (opts.config) {
    try {
      cfg = loadConfig(opts.config);
    } catch (e) {
      if (e instanceof ConfigError) throw new UsageError(e.message);
      throw e;
    }
  }
  if (opts.out && !cfg) throw new UsageError('--out: needs --config (the services whose traffic the LB emits)');
  let model: LatencyModel | null = null;
  if (opts.latency !== undefined) {
    if (!cfg?.services.some((x) => x.region_select)) throw new UsageError('--latency: no service of the configuration has region_select');
    let text: string;
    try {
      text = fs.readFileSync(opts.latency, 'utf8');
    } catch (e) {
      throw new UsageError(`--latency ${opts.latency}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      model = LatencyModel.parse(text, opts.latency);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const known = new Set(cfg.services.flatMap((x) => x.servers.map((y) => y.region)));
    for (const r of model.regions) if (!known.has(r)) process.stderr.write(`tsvs: warning: --latency ${opts.latency}: region "${r}" has no server in the configuration\n`);
  }
  // command-line values win over the configuration's; the profile defaults to dpvs with services
  const profileName = given('profile') ? opts.profile : (cfg?.profile ?? (cfg && cfg.services.length ? 'dpvs' : opts.profile));
  if (profileName !== 'netfilter' && profileName !== 'dpvs') throw new UsageError(`--profile: expected netfilter or dpvs, got "${profileName}"`);
  const profile = profileName as Profile;
  const seed = given('seed') || !cfg ? intOption('seed', opts.seed, 0, 0xffffffff) : cfg.seed;
  const maxConns = given('maxConns') || !cfg ? intOption('max-conns', opts.maxConns, 16, 64 * 1024 * 1024) : cfg.max_conns;
  if (cfg) {
    const bad = checkTimeouts(cfg.timeouts, profile);
    if (bad) throw new UsageError(`${opts.config}: timeouts.${bad}`);
  }
  const t = parseTimeouts(opts.timeout, cfg?.timeouts ?? {}, profile);
  const events = openOutput('events', opts.events);
  if (opts.connsFormat !== 'json' && opts.connsFormat !== 'zeek') throw new UsageError(`--conns-format: expected json or zeek, got "${opts.connsFormat}"`);
  const zeek = opts.connsFormat === 'zeek';
  const connsFile = openOutput('conns', opts.conns);
  const conns = connsFile && zeek ? new ZeekLog(connsFile) : connsFile;
  const flowsOut = openOutput('flows', opts.flows);
  const fc = cfg?.flows;
  const flows = flowsOut || fc?.enabled ? { idle: fc?.idle ?? 3600, max: fc?.max ?? 1 << 20, perSource: fc?.per_source ?? 100, out: flowsOut } : undefined;
  const workers = opts.workers === 'auto' ? os.availableParallelism() : intOption('workers', opts.workers, 1, 64);
  if (opts.dispatch !== 'service' && opts.dispatch !== 'tuple') throw new UsageError(`--dispatch: expected service or tuple, got "${opts.dispatch}"`);
  if (workers > 1) {
    const refused = opts.report ? '--report' : flows ? '--flows (flow accounting)' : cfg?.services.some((x) => x.region_select) ? 'region_select services' : null;
    if (refused) throw new UsageError(`--workers ${opts.workers}: ${refused} does not work with several workers yet (use --workers 1)`);
  }
  // fail early if they cannot be written (one per input: "{}" in the name)
  for (const f of opts.out ? files : []) openOutput('out', perInput(opts.out!, f))?.close();
  for (const f of opts.snapshot ? files : []) openOutput('snapshot', perInput(opts.snapshot!, f))?.close();
  for (const f of opts.report ? files : []) openOutput('report', perInput(opts.report!, f))?.close();
  // (a configuration from a pipe was read once, by loadConfig: the report says so)
  const configText = opts.config && opts.report ? (fs.statSync(opts.config).isFile() ? fs.readFileSync(opts.config, 'utf8') : `(${opts.config}: not a regular file, read once)`) : null;
  // an output on standard output (`-`) has it to itself: the summaries go to standard error then
  const toStdout = [opts.out, opts.snapshot, opts.events, opts.conns, opts.flows, opts.report].includes('-');
  const report = toStdout ? process.stderr : process.stdout;
  const color = report.isTTY === true && opts.color !== false && !process.env.NO_COLOR;
  for (const file of files) {
    let packets = 0;
    let size = 0;
    try {
      size = fs.statSync(file).size;
    } catch {
      /* reported by the reader */
    }
    const showProgress = process.stderr.isTTY === true && size >= LARGE_FILE;
    let reportData: ReportData | null = null;
    /** the report of this input (also of what was read before an error), with the summary it ends with */
    const writeReport = (s: ReplaySummary): void => {
      if (!opts.report || !reportData) return;
      reportData.summary = formatSummary(s, false);
      reportData.command = commandLine();
      reportData.config = configText;
      const w = new LineWriter(perInput(opts.report, file)); // `-`: standard output
      w.line(renderReport(reportData).trimEnd());
      w.close();
    };
    try {
      const ropts: ReplayOptions = {
        verifyChecksums: opts.verifyChecksums,
        track: { profile, seed, maxConns, drain: opts.drain, events, conns, connLine: zeek ? (r) => zeekLine(r, seed) : undefined, snapshotFile: opts.snapshot && perInput(opts.snapshot, file), tcpTimeouts: t.tcp, udpTimeouts: t.udp, icmpTimeout: t.icmp },
        // a fresh service table per file: schedulers and counters start anew
        lb:
          cfg && cfg.services.length
            ? {
                services: new Services(cfg.services, cfg.regions),
                // (without a model the plans run and nothing answers: the fallback region is home)
                regionAnswer: model ? (r, t) => model.at(r, t) : () => null,
                out: opts.out && perInput(opts.out, file),
                decrementTtl: cfg.decrement_ttl,
                mtu: cfg.mtu,
                synproxy: { cfg: cfg.synproxy, secret: replaySecret(cfg.synproxy.secret, seed) },
              }
            : undefined,
        flows,
        filter: opts.filter,
        report: opts.report ? { done: (d) => (reportData = d) } : undefined,
        onPacket: showProgress ? () => void packets++ : undefined,
        onProgress: showProgress ? (done, total) => process.stderr.write(progressBar(done, total, packets)) : undefined,
      };
      const s = workers > 1 ? await replayWorkers(file, ropts, { workers, dispatch: opts.dispatch as DispatchMode, zeek }) : await replayFile(file, ropts);
      if (showProgress) process.stderr.write('\r\x1b[K');
      for (const w of s.warnings) process.stderr.write(`tsvs: warning: ${file}: ${w}\n`);
      writeReport(s);
      report.write(opts.json ? `${JSON.stringify(s)}\n` : `${formatSummary(s, color)}\n\n`);
    } catch (e) {
      if (showProgress) process.stderr.write('\r\x1b[K');
      if (!(e instanceof ReplayError)) throw e;
      process.stderr.write(`tsvs: ${e.message}\n`);
      if (e.internal) {
        process.stderr.write(`tsvs: this is a bug in tsvs, not in the file: please report it with the file (TSVS_DEBUG=1 prints the stack)\n`);
        if (process.env.TSVS_DEBUG) process.stderr.write(`${(e.cause as Error & { cause?: Error }).cause?.stack ?? e.cause.stack}\n`);
      }
      if (e.summary) writeReport(e.summary);
      if (e.summary) report.write(opts.json ? `${JSON.stringify(e.summary)}\n` : `${formatSummary(e.summary, color)}\n\n`);
      rc = Math.max(rc, e.internal ? EXIT_INTERNAL : 2);
    }
  }
  events?.close();
  conns?.close();
  flowsOut?.close();
  return rc;
}

interface RunCliOptions {
  config: string;
  logLevel?: string;
  logJson?: boolean;
}

/** `tsvs run`: live mode until SIGTERM/SIGINT; SIGHUP reloads the configuration's services */
async function runCmd(opts: RunCliOptions): Promise<number> {
  let cfg: Config;
  try {
    cfg = loadConfig(opts.config);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
  if (!cfg.live) throw new UsageError(`${opts.config}: live: required for tsvs run (at least live.interfaces)`);
  const bad = checkTimeouts(cfg.timeouts, cfg.profile ?? 'dpvs');
  if (bad) throw new UsageError(`${opts.config}: timeouts.${bad}`);
  const level = (opts.logLevel ?? cfg.live.log.level) as Level;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UsageError(`--log-level: expected debug, info, warn or error, got "${level}"`);
  const log = new Logger(level, opts.logJson ?? cfg.live.log.json);
  const { runDaemon } = await import('../live/run.js');
  const rc = await runDaemon(cfg, log, opts.config);
  // native handles (capture polls, raw sockets) may linger after close: leave now (stderr is written synchronously)
  process.exit(rc);
}

export async function main(argv: string[]): Promise<number> {
  let rc = 0;
  const program = new Command('tsvs')
    .description('connection tracking and L4 load balancing over captures and live traffic')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program
    .command('replay')
    .description('read pcap/pcapng captures (optionally gzip-compressed) and report what they hold')
    .argument('<file...>', 'capture files')
    .option('--json', 'one JSON object per file on stdout')
    .option('--no-color', 'no colours in the table (also: NO_COLOR in the environment)')
    .option('--filter <expr>', "only packets matching this libpcap filter (tcpdump syntax, e.g. 'tcp port 80'); packets counts those, read every record")
    .option('--verify-checksums', 'verify IPv4 header and TCP/UDP/ICMP checksums; failures are counted and not tracked')
    .option('--profile <name>', 'state machines: netfilter (Linux nf_conntrack) or dpvs', 'netfilter')
    .option('--seed <n>', 'seed of the timeout jitter PRNG', '1')
    .option('--max-conns <n>', 'connection table capacity', '1048576')
    .option('--drain', 'after the last packet, advance time until every connection has expired')
    .option('--events <file>', 'write connection events (new/update/destroy) as JSON lines')
    .option('--conns <file>', 'write one JSON line per connection (at its end, or at the end of the replay)')
    .option('--conns-format <format>', 'json, or zeek: --conns as a Zeek conn.log (TSV with its header; conn_state, history, community_id)', 'json')
    .option('--snapshot <file>', 'write the connection table at the end of the replay (for ctstat)')
    .option('--flows <file>', 'account flows per (source, destination) and write one JSON line per flow (when evicted, or at the end)')
    .option('--config <file>', 'load-balancer configuration (YAML or JSON): services, real servers, schedulers, tunables')
    .option('--out <file>', 'write every packet the load balancer emits, rewritten, to this pcap (needs --config)')
    .option('--latency <file>', 'region_select: what each region\'s probes answer over time, JSON lines {"t": s, "region": "eu", "rtt_ms": 42.5}')
    .option('--report <file>', 'write a self-contained HTML report: charts over the capture\'s time, services, top flows and connections ({} per input)')
    .option('--workers <n>', 'worker threads, each with its own connection table (auto: one per core); their results are merged', '1')
    .option('--dispatch <mode>', 'with --workers: service (a client and its servers\' replies meet on one worker) or tuple (a symmetric hash of the tuple, as a NIC or PACKET_FANOUT spreads packets: NAT replies are redirected)', 'service')
    .option(
      '--timeout <name=secs>',
      'override a timeout (repeatable): a TCP state of the profile (e.g. established=3600), udp_unreplied, udp_replied, udp_oneway, udp_normal, icmp',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .action(async (files: string[], opts: ReplayCliOptions, cmd: Command) => {
      rc = await replayCmd(files, opts, (name) => cmd.getOptionValueSource(name) === 'cli');
    });
  program
    .command('run')
    .description('live mode: capture on the configured interfaces, balance, transmit (needs root, libpcap, the live: section)')
    .requiredOption('--config <file>', 'configuration with services and a live: section')
    .option('--log-level <level>', 'debug, info, warn or error (default: live.log.level)')
    .option('--log-json', 'one JSON object per log line')
    .action(async (opts: RunCliOptions) => {
      rc = await runCmd(opts);
    });
  program
    .command('agent')
    .description('a remote server: register with a hub (tsvs run with agents:) by authenticated heartbeats; --check FILE: attached?')
    .option('--hub <addr:port>', "the hub's agents.listen")
    .option('--id <id>', "this agent's id (a key of the hub's agents.keys)")
    .option('--key <hex>', 'the shared key (16-64 bytes of hex)')
    .option('--key-file <file>', 'the shared key from a file')
    .option('--status <file>', 'keep the state here (JSON: attached, the address the hub sees, round trip)')
    .option('--check <file>', 'print a status file; exit 0 when attached, 1 when not')
    .option('--vip <addr>', 'a VIP this server serves through the hub, besides those the hub names (repeatable; needs root: put on lo, replies routed back through the hub)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--data <kind>', 'the data path: tun (a TUN device, needs the native module), veth (raw socket and libpcap), auto', 'auto')
    .action(async (opts: AgentOptions) => {
      if (!['auto', 'tun', 'veth'].includes(opts.data ?? 'auto')) throw new UsageError(`--data: tun, veth or auto, not "${opts.data}"`);
      rc = await agentCmd(opts);
    });
  program
    .command('ctl')
    .description('change and list a running tsvs run through its control socket, with ipvsadm verbs (-A -E -D -a -e -d -L -S -R -Z -C --set; --socket PATH)')
    .allowUnknownOption()
    .helpOption(false)
    .argument('[args...]')
    .action(async (args: string[]) => {
      const { ctlMain } = await import('./ctl.js');
      rc = await ctlMain(args);
    });
  try {
    await program.parseAsync(argv);
  } catch (e) {
    return exitStatusFor('tsvs', e);
  }
  return rc;
}

main(process.argv).then(
  (rc) => {
    process.exitCode = rc;
  },
  (e: unknown) => {
    const err = e as Error;
    process.stderr.write(`tsvs: internal error: ${err.message}\n`);
    if (process.env.TSVS_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = EXIT_INTERNAL;
  },
);
