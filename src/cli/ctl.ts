/**
 * `tsvs ctl`: ipvsadm-like verbs against a running `tsvs run` (its control socket).
 *   -A|-E -t|-u VIP:PORT [-s SCHED] [-m|-g|-i|-b] [--laddr ADDR]...   add / edit a service
 *   -D -t|-u VIP:PORT                                               delete a service
 *   -a|-e -t|-u VIP:PORT -r ADDR:PORT [-m|-g|-i|-b] [-w WEIGHT]       add / edit a real server
 *   -d -t|-u VIP:PORT -r ADDR:PORT                                  delete a real server
 *   -L|-l [-n] [--stats|--rate|-c]                                   list services (or connections with -c)
 *   -Z   zero the counters        -C   remove every connection
 * Forwarding: -m masquerading (nat), -g gatewaying (dr), -i ipip (tunnel), -b full NAT (fnat, as DPVS's ipvsadm).
 */
import { DEFAULT_SOCKET } from '../ctl/protocol.js';
import { UsageError } from './errors.js';
import { connectCtl, list, services } from './views.js';
import type { Snapshot } from '../report/records.js';

const FWD: Record<string, string> = { '-m': 'nat', '-g': 'dr', '-i': 'tunnel', '-b': 'fnat' };

function hostPort(s: string, flag: string): { addr: string; port: number } {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(s) ?? /^([0-9.]+):(\d+)$/.exec(s);
  if (!m) throw new UsageError(`${flag}: expected ADDR:PORT (IPv6 as [ADDR]:PORT), got "${s}"`);
  const port = Number(m[2]);
  if (port > 65535) throw new UsageError(`${flag}: port out of range in "${s}"`);
  return { addr: m[1]!, port };
}

const USAGE = `usage: tsvs ctl COMMAND [options]   (ipvsadm verbs, against a running tsvs run)
  -A|-E -t|-u VIP:PORT [-s SCHED] [-m|-g|-i|-b] [--laddr ADDR]...   add / edit a service
  -D -t|-u VIP:PORT                                               delete a service
  -a|-e -t|-u VIP:PORT -r ADDR:PORT [-m|-g|-i|-b] [-w WEIGHT]       add / edit a real server
  -d -t|-u VIP:PORT -r ADDR:PORT                                  delete a real server
  -L|-l [-n] [--stats|--rate|-c]                                   list services (connections with -c)
  -Z   zero the counters        -C   remove every connection
  --socket PATH   the daemon's control socket (default: $TSVS_SOCKET or ${DEFAULT_SOCKET})
Forwarding: -m masquerading (nat), -g gatewaying (dr), -i ipip (tunnel), -b full NAT (fnat)
`;

/** flags that take no value: ipvsadm lets them be combined (`-Ln`, `-lnc`) */
const BOOL_FLAGS = new Set(['A', 'E', 'D', 'a', 'e', 'd', 'L', 'l', 'Z', 'C', 'n', 'c', 'm', 'g', 'i', 'b', 'h']);

export async function ctlMain(argv: string[]): Promise<number> {
  const args = argv.flatMap((a) => (/^-[A-Za-z]{2,}$/.test(a) && [...a.slice(1)].every((ch) => BOOL_FLAGS.has(ch)) ? [...a.slice(1)].map((ch) => `-${ch}`) : [a]));
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  let cmd = '';
  let proto: 'tcp' | 'udp' | undefined;
  let vip: { addr: string; port: number } | undefined;
  let server: { addr: string; port: number } | undefined;
  let sched: string | undefined;
  let fwd: string | undefined;
  let weight: number | undefined;
  const laddrs: string[] = [];
  let socket = process.env.TSVS_SOCKET ?? DEFAULT_SOCKET;
  let view: 'stats' | 'rate' | 'conns' | '' = '';
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const val = () => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a}: needs a value`);
      return v;
    };
    if (['-A', '-E', '-D', '-a', '-e', '-d', '-L', '-l', '-Z', '-C'].includes(a)) {
      if (cmd && !((cmd === '-L' || cmd === '-l') && a === '-c')) throw new UsageError(`${a}: one command at a time (already ${cmd})`);
      cmd = a;
    } else if (a === '-t' || a === '-u') {
      proto = a === '-t' ? 'tcp' : 'udp';
      vip = hostPort(val(), a);
    } else if (a === '-r') server = hostPort(val(), a);
    else if (a === '-s') sched = val();
    else if (a === '-w') {
      weight = Number(val());
      if (!Number.isInteger(weight) || weight < 0 || weight > 65535) throw new UsageError(`-w: expected 0-65535, got "${args[i]}"`);
    } else if (a in FWD) fwd = FWD[a];
    else if (a === '--laddr') laddrs.push(val());
    else if (a === '--socket') socket = val();
    else if (a === '-n') continue;
    else if (a === '--stats') view = 'stats';
    else if (a === '--rate') view = 'rate';
    else if (a === '-c') view = 'conns';
    else throw new UsageError(`unknown argument "${a}" (see tsvs ctl --help)`);
  }
  if (!cmd) throw new UsageError('no command: -A/-E/-D (services), -a/-e/-d (servers), -L (list), -Z (zero), -C (clear)');
  const needSvc = !['-L', '-l', '-Z', '-C'].includes(cmd);
  if (needSvc && (!proto || !vip)) throw new UsageError(`${cmd}: needs -t|-u VIP:PORT`);
  if (['-a', '-e', '-d'].includes(cmd) && !server) throw new UsageError(`${cmd}: needs -r ADDR:PORT`);
  const ref = proto && vip ? { proto, vip: vip.addr, port: vip.port } : undefined;
  const c = await connectCtl(socket);
  try {
    switch (cmd) {
      case '-A':
      case '-E': {
        const set: Record<string, unknown> = {};
        if (sched) set.scheduler = sched;
        else if (cmd === '-A') set.scheduler = 'wlc'; // ipvsadm's default
        if (fwd) set.forward = fwd;
        if (laddrs.length) set.laddrs = laddrs;
        if (cmd === '-A') throw new UsageError('-A: a tsvs service needs at least one server: add it to the configuration file and reload (SIGHUP)');
        await c.call('service.edit', { service: ref, set });
        break;
      }
      case '-D':
        await c.call('service.delete', { service: ref });
        break;
      case '-a':
      case '-e': {
        const srv: Record<string, unknown> = { ...server! };
        if (weight !== undefined) srv.weight = weight;
        if (fwd) srv.forward = fwd;
        await c.call(cmd === '-a' ? 'server.add' : 'server.edit', { service: ref, server: srv });
        break;
      }
      case '-d':
        await c.call('server.delete', { service: ref, server });
        break;
      case '-Z':
        await c.call('zero');
        break;
      case '-C':
        await c.call('flush');
        break;
      default: {
        const snap = (await c.call('snapshot')) as Snapshot;
        if (view === 'conns') {
          snap.conns = await c.allConns();
          process.stdout.write(`${list(snap, { output: 'ipvs' }, false)}\n`);
        } else process.stdout.write(`${services(snap, { output: 'ipvs', stats: view === 'stats', rate: view === 'rate' })}\n`);
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
