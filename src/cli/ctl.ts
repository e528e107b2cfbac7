/**
 * `tsvs ctl`: ipvsadm's verbs against a running `tsvs run` (its control socket).
 *   -A|-E -t|-u VIP:PORT [-s SCHED] [-p [TIMEOUT]] [-M NETMASK] [-m|-g|-i|-b] [--laddr ADDR]...   add / edit a service
 *   -D -t|-u VIP:PORT                                               delete a service
 *   -a|-e -t|-u VIP:PORT -r ADDR:PORT [-m|-g|-i|-b] [-w WEIGHT] [-x UPPER] [-y LOWER]   add / edit a real server
 *   -d -t|-u VIP:PORT -r ADDR:PORT                                  delete a real server
 *   -L|-l [-n] [--stats|--rate|-c|--timeout] [--sort]                list (connections and templates with -c)
 *   -S [-n]   save the services as -A/-a lines     -R   restore them from standard input (one change)
 *   -C   clear the virtual service table      -Z   zero the counters      --set TCP TCPFIN UDP   timeouts
 * Forwarding: -m masquerading (nat), -g gatewaying (dr), -i ipip (tunnel), -b full NAT (fnat, as DPVS's ipvsadm).
 * Connections are flushed with `ctstat -F` (conntrack -F): ipvsadm's -C clears services, not connections.
 */
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import { DEFAULT_SOCKET } from '../ctl/protocol.js';
import type { IpvsTimeouts, TemplateEntry } from '../ctl/server.js';
import type { ServiceConfig } from '../config.js';
import { serverKey, serviceKey } from '../service/services.js';
import { UsageError } from './errors.js';
import { connectCtl, list, services, templateLines } from './views.js';
import type { Snapshot } from '../report/records.js';

const FWD: Record<string, string> = { '-m': 'nat', '-g': 'dr', '-i': 'tunnel', '-b': 'fnat' };
const FWD_FLAG: Record<string, string> = { nat: '-m', dr: '-g', tunnel: '-i', fnat: '-b' };
/** ipvsadm's default persistence timeout (-p without a value) */
const PERSIST_DEFAULT = 300;

function hostPort(s: string, flag: string): { addr: string; port: number } {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(s) ?? /^([0-9.]+):(\d+)$/.exec(s);
  if (!m) throw new UsageError(`${flag}: expected ADDR:PORT (IPv6 as [ADDR]:PORT), got "${s}"`);
  const port = Number(m[2]);
  if (port > 65535) throw new UsageError(`${flag}: port out of range in "${s}"`);
  return { addr: m[1]!, port };
}

const USAGE = `usage: tsvs ctl COMMAND [options]   (ipvsadm verbs, against a running tsvs run)
  -A|-E -t|-u VIP:PORT [-s SCHED] [-p [TIMEOUT]] [-M NETMASK] [-m|-g|-i|-b] [--laddr ADDR]...
                                                  add / edit a service (-p: persistence, default 300 s)
  -D -t|-u VIP:PORT                               delete a service
  -a|-e -t|-u VIP:PORT -r ADDR:PORT [-m|-g|-i|-b] [-w WEIGHT] [-x UPPER] [-y LOWER]
                                                  add / edit a real server (-x/-y: connection thresholds)
  -d -t|-u VIP:PORT -r ADDR:PORT                  delete a real server
  -L|-l [-n] [--stats|--rate|-c|--timeout] [--sort]   list services (connections and templates with -c)
  -S [-n]   print the services as -A/-a lines     -R   apply such lines from standard input, as one change
  -C   clear the virtual service table            -Z   zero the counters
  --set TCP TCPFIN UDP   timeouts in seconds (0: unchanged)
  --socket PATH   the daemon's control socket (default: $TSVS_SOCKET or ${DEFAULT_SOCKET})
Forwarding: -m masquerading (nat), -g gatewaying (dr), -i ipip (tunnel), -b full NAT (fnat)
Connections: ctstat -F flushes them (conntrack -F); ctstat -D deletes some.
`;

/** flags that take no value: ipvsadm lets them be combined (`-Ln`, `-lnc`) */
const BOOL_FLAGS = new Set(['A', 'E', 'D', 'a', 'e', 'd', 'L', 'l', 'Z', 'C', 'S', 'R', 'n', 'c', 'm', 'g', 'i', 'b', 'h']);
const COMMANDS = ['-A', '-E', '-D', '-a', '-e', '-d', '-L', '-l', '-Z', '-C', '-S', '-R', '--set'];

interface Cmd {
  cmd: string;
  proto?: 'tcp' | 'udp';
  vip?: { addr: string; port: number };
  server?: { addr: string; port: number };
  sched?: string;
  fwd?: string;
  weight?: number;
  upper?: number;
  lower?: number;
  persistence?: number;
  netmask?: number;
  laddrs: string[];
  socket?: string;
  view: 'stats' | 'rate' | 'conns' | 'timeout' | '';
  sort: boolean;
  set?: number[];
}

/** a netmask as ipvsadm -M takes it (255.255.255.0, or a prefix length) -> prefix length */
function netmask(s: string): number {
  if (/^\d+$/.test(s) && Number(s) <= 128) return Number(s);
  if (isIP(s) !== 4) throw new UsageError(`-M: expected a netmask like 255.255.255.0 or a prefix length, got "${s}"`);
  const n = s.split('.').reduce((a, x) => a * 256 + Number(x), 0);
  const bits = n.toString(2).padStart(32, '0');
  if (!/^1*0*$/.test(bits)) throw new UsageError(`-M: ${s} is not a contiguous netmask`);
  return bits.indexOf('0') < 0 ? 32 : bits.indexOf('0');
}

function uint(flag: string, v: string, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > max) throw new UsageError(`${flag}: expected 0-${max}, got "${v}"`);
  return n;
}

/** one ipvsadm command line (already split), as tsvs ctl and -R lines take it */
function parse(argv: string[]): Cmd {
  const args = argv.flatMap((a) => (/^-[A-Za-z]{2,}$/.test(a) && [...a.slice(1)].every((ch) => BOOL_FLAGS.has(ch)) ? [...a.slice(1)].map((ch) => `-${ch}`) : [a]));
  const o: Cmd = { cmd: '', laddrs: [], view: '', sort: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const val = () => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a}: needs a value`);
      return v;
    };
    if (COMMANDS.includes(a)) {
      if (o.cmd && !((o.cmd === '-L' || o.cmd === '-l') && a === '-c')) throw new UsageError(`${a}: one command at a time (already ${o.cmd})`);
      o.cmd = a;
      if (a === '--set') o.set = [val(), val(), val()].map((x) => uint('--set', x, 30 * 86400));
    } else if (a === '-t' || a === '-u') {
      o.proto = a === '-t' ? 'tcp' : 'udp';
      o.vip = hostPort(val(), a);
    } else if (a === '-r') o.server = hostPort(val(), a);
    else if (a === '-s') o.sched = val();
    else if (a === '-w') o.weight = uint('-w', val(), 65535);
    else if (a === '-x') o.upper = uint('-x', val(), 0x7fffffff);
    else if (a === '-y') o.lower = uint('-y', val(), 0x7fffffff);
    else if (a === '-p') {
      // an optional value, as ipvsadm's: a number right after -p is the timeout
      o.persistence = /^\d+$/.test(args[i + 1] ?? '') ? uint('-p', args[++i]!, 30 * 86400) : PERSIST_DEFAULT;
      if (o.persistence === 0) throw new UsageError('-p: a persistence timeout is at least 1 s');
    } else if (a === '-M') o.netmask = netmask(val());
    else if (a in FWD) o.fwd = FWD[a];
    else if (a === '--laddr') o.laddrs.push(val());
    else if (a === '--socket') o.socket = val();
    else if (a === '-n') continue;
    else if (a === '--stats') o.view = 'stats';
    else if (a === '--rate') o.view = 'rate';
    else if (a === '--timeout') o.view = 'timeout';
    else if (a === '-c') o.view = 'conns';
    else if (a === '--sort') o.sort = true;
    else throw new UsageError(`unknown argument "${a}" (see tsvs ctl --help)`);
  }
  if (!o.cmd) throw new UsageError('no command: -A/-E/-D (services), -a/-e/-d (servers), -L (list), -S/-R (save, restore), -Z (zero), -C (clear), --set');
  const needSvc = ['-A', '-E', '-D', '-a', '-e', '-d'].includes(o.cmd);
  if (needSvc && (!o.proto || !o.vip)) throw new UsageError(`${o.cmd}: needs -t|-u VIP:PORT`);
  if (['-a', '-e', '-d'].includes(o.cmd) && !o.server) throw new UsageError(`${o.cmd}: needs -r ADDR:PORT`);
  if (o.netmask !== undefined && o.persistence === undefined) throw new UsageError('-M: only with -p (a persistent service)');
  return o;
}

/** apply one -A/-E/-D/-a/-e/-d/-C command to a service list (as the daemon would, for -R's one change) */
function applyTo(list: ServiceConfig[], c: Cmd, where: string): void {
  if (c.cmd === '-C') {
    list.length = 0;
    return;
  }
  const key = `${c.proto} ${c.vip!.addr} ${c.vip!.port}`;
  const i = list.findIndex((s) => serviceKey(s) === key);
  const fail = (m: string) => {
    throw new UsageError(`${where}: ${m}`);
  };
  if (c.cmd === '-A') {
    if (i >= 0) fail(`service ${key} exists`);
    list.push({ proto: c.proto!, vip: c.vip!.addr, port: c.vip!.port, ...serviceSet(c, true), servers: [] } as unknown as ServiceConfig);
    return;
  }
  if (i < 0) fail(`no service ${key}`);
  const s = list[i]!;
  if (c.cmd === '-E') list[i] = withoutNulls({ ...s, ...serviceSet(c, false) }) as unknown as ServiceConfig;
  else if (c.cmd === '-D') list.splice(i, 1);
  else {
    const srv = serverSet(c);
    const j = s.servers.findIndex((x) => serverKey(x) === serverKey(srv as { addr: string; port: number }));
    if (c.cmd === '-a') {
      if (j >= 0) fail(`server ${serverKey(srv as { addr: string; port: number })} exists`);
      s.servers.push(srv as ServiceConfig['servers'][number]);
    } else if (j < 0) fail(`no server ${serverKey(srv as { addr: string; port: number })}`);
    else if (c.cmd === '-e') s.servers[j] = { ...s.servers[j]!, ...srv } as ServiceConfig['servers'][number];
    else s.servers.splice(j, 1);
  }
}

/** the service fields a -A/-E sets (-A: ipvsadm's default scheduler wlc) */
function serviceSet(c: Cmd, add: boolean): Record<string, unknown> {
  const set: Record<string, unknown> = {};
  if (c.sched) set.scheduler = c.sched;
  else if (add) set.scheduler = 'wlc';
  if (c.fwd) set.forward = c.fwd;
  if (c.laddrs.length) set.laddrs = c.laddrs;
  if (c.persistence !== undefined) set.persistence = { timeout: c.persistence, netmask: c.netmask ?? (c.vip!.addr.includes(':') ? 128 : 32) };
  // ipvsadm -E sets the service's flags anew: without -p it is not persistent any more (null: remove)
  else if (!add) set.persistence = null;
  return set;
}

function serverSet(c: Cmd): Record<string, unknown> {
  const srv: Record<string, unknown> = { ...c.server! };
  if (c.weight !== undefined) srv.weight = c.weight;
  if (c.fwd) srv.forward = c.fwd;
  if (c.upper !== undefined) srv.upper_threshold = c.upper;
  if (c.lower !== undefined) srv.lower_threshold = c.lower;
  return srv;
}

function withoutNulls(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));
}

function ipvsAddr(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** ipvsadm -S: the services as lines -R takes back; what ipvsadm cannot say is named on stderr */
export function saveLines(list: ServiceConfig[]): { lines: string[]; lost: string[] } {
  const lines: string[] = [];
  const lost: string[] = [];
  for (const s of list) {
    if (s.forward === 'snat' || s.vip === undefined || s.port === undefined) {
      lost.push(`${s.proto} snat service (match ${JSON.stringify(s.match)}): not expressible as ipvsadm rules`);
      continue;
    }
    const svc = `${s.proto === 'tcp' ? '-t' : '-u'} ${ipvsAddr(s.vip, s.port)}`;
    let a = `-A ${svc} -s ${s.scheduler}`;
    if (s.persistence) {
      a += ` -p ${s.persistence.timeout}`;
      const full = s.vip.includes(':') ? 128 : 32;
      if (s.persistence.netmask !== full) a += ` -M ${s.vip.includes(':') ? s.persistence.netmask : maskOf(s.persistence.netmask)}`;
    }
    if (s.forward === 'fnat') a += ` -b`;
    for (const l of s.laddrs) a += ` --laddr ${l}`;
    lines.push(a);
    const extra = (['toa', 'synproxy', 'expire_quiescent'] as const).filter((k) => s[k]);
    if (s.conn_timeout) extra.push('conn_timeout' as never);
    if (s.mh) extra.push('mh' as never);
    if (s.forward === 'tunnel' && (s.tunnel.type !== 'ipip' || s.tunnel.src)) extra.push('tunnel' as never);
    if (extra.length) lost.push(`${s.proto} ${s.vip}:${s.port}: ${extra.join(', ')} (tsvs settings ipvsadm has no flag for: keep them in the configuration file)`);
    for (const x of s.servers) {
      let r = `-a ${svc} -r ${ipvsAddr(x.addr, x.port ?? s.port)} ${FWD_FLAG[x.forward ?? s.forward] ?? '-m'} -w ${x.weight}`;
      if (x.upper_threshold) r += ` -x ${x.upper_threshold}`;
      if (x.lower_threshold) r += ` -y ${x.lower_threshold}`;
      lines.push(r);
      if (x.mac) lost.push(`${s.proto} ${s.vip}:${s.port} server ${x.addr}: mac`);
    }
  }
  return { lines, lost };
}

function maskOf(prefix: number): string {
  const n = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

export async function ctlMain(argv: string[], stdin: () => string = () => fs.readFileSync(0, 'utf8')): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const o = parse(argv);
  // -R: every line checked before anything changes, then one change
  let restore: Cmd[] = [];
  if (o.cmd === '-R') {
    restore = stdin()
      .split('\n')
      .map((l, i) => [l.trim(), i + 1] as const)
      .filter(([l]) => l && !l.startsWith('#'))
      .map(([l, n]) => {
        try {
          const c = parse(l.split(/\s+/));
          if (!['-A', '-E', '-D', '-a', '-e', '-d', '-C'].includes(c.cmd)) throw new UsageError(`${c.cmd}: not a rule`);
          return c;
        } catch (e) {
          throw new UsageError(`-R: line ${n}: ${(e as Error).message}`);
        }
      });
  }
  const socket = o.socket ?? process.env.TSVS_SOCKET ?? DEFAULT_SOCKET;
  const ref = o.proto && o.vip ? { proto: o.proto, vip: o.vip.addr, port: o.vip.port } : undefined;
  const c = await connectCtl(socket);
  try {
    switch (o.cmd) {
      case '-A':
        await c.call('service.add', { service: ref, set: serviceSet(o, true) });
        break;
      case '-E':
        await c.call('service.edit', { service: ref, set: serviceSet(o, false) });
        break;
      case '-D':
        await c.call('service.delete', { service: ref });
        break;
      case '-a':
      case '-e':
        await c.call(o.cmd === '-a' ? 'server.add' : 'server.edit', { service: ref, server: serverSet(o) });
        break;
      case '-d':
        await c.call('server.delete', { service: ref, server: o.server });
        break;
      case '-Z':
        await c.call('zero');
        break;
      case '-C':
        await c.call('services.set', { services: [] });
        break;
      case '--set':
        await c.call('timeouts.set', { tcp: o.set![0], tcpfin: o.set![1], udp: o.set![2] });
        break;
      case '-S': {
        const { lines, lost } = saveLines((await c.call('services.config')) as ServiceConfig[]);
        process.stdout.write(lines.map((l) => `${l}\n`).join(''));
        for (const l of lost) process.stderr.write(`tsvs ctl: -S: not saved: ${l}\n`);
        break;
      }
      case '-R': {
        const list = structuredClone((await c.call('services.config')) as ServiceConfig[]);
        restore.forEach((r, i) => applyTo(list, r, `-R: rule ${i + 1} (${r.cmd})`));
        await c.call('services.set', { services: list });
        break;
      }
      default: {
        if (o.view === 'timeout') {
          const t = (await c.call('timeouts')) as IpvsTimeouts;
          process.stdout.write(`Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpfin} ${t.udp}\n`);
          break;
        }
        const snap = (await c.call('snapshot')) as Snapshot;
        if (o.view === 'conns') {
          snap.conns = await c.allConns();
          const tmpl = templateLines((await c.call('templates')) as TemplateEntry[]);
          process.stdout.write(`${list(snap, { output: 'ipvs' }, false)}${tmpl.length ? `\n${tmpl.join('\n')}` : ''}\n`);
        } else process.stdout.write(`${services(snap, { output: 'ipvs', stats: o.view === 'stats', rate: o.view === 'rate', sorted: o.sort })}\n`);
      }
    }
    return 0;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    process.stderr.write(`tsvs ctl: ${(e as Error).message}\n`);
    return 1;
  } finally {
    c.close();
  }
}
