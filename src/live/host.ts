/**
 * What live mode needs to know about the host: interface MACs and addresses, the kernel's neighbour table
 * (DR servers' MACs), forwarding and offload settings that would break the engine's ownership of VIP traffic.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { parseMac } from '../packet/addr.js';

/** an interface's attribute from /sys/class/net (address, type, mtu, ifindex...), or null when there is none */
export function ifaceAttr(iface: string, name: string): string | null {
  try {
    return fs.readFileSync(`/sys/class/net/${iface}/${name}`, 'utf8').trim();
  } catch {
    return null;
  }
}

export function ifaceMac(iface: string): Uint8Array | null {
  const a = ifaceAttr(iface, 'address');
  try {
    return a === null ? null : parseMac(a);
  } catch {
    return null;
  }
}

/** every address bound on this host (network namespace) */
export function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

/** IPv4 neighbour table: address -> { mac, dev } (complete entries only) */
export function neighbours4(): Map<string, { mac: string; dev: string }> {
  const m = new Map<string, { mac: string; dev: string }>();
  let text = '';
  try {
    text = fs.readFileSync('/proc/net/arp', 'utf8');
  } catch {
    return m;
  }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // IP address, HW type, Flags (0x2 = complete), HW address, Mask, Device
    if (f.length >= 6 && (parseInt(f[2]!, 16) & 2) !== 0 && f[3] !== '00:00:00:00:00:00') m.set(f[0]!, { mac: f[3]!.toLowerCase(), dev: f[5]! });
  }
  return m;
}

/** IPv6 neighbours from `ip -6 neigh` (when iproute2 is there) */
export function neighbours6(): Map<string, { mac: string; dev: string }> {
  const m = new Map<string, { mac: string; dev: string }>();
  try {
    const text = execFileSync('ip', ['-6', 'neigh', 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const line of text.split('\n')) {
      const r = /^(\S+) dev (\S+) lladdr (\S+) (?!FAILED|INCOMPLETE)/.exec(line);
      if (r) m.set(r[1]!, { mac: r[3]!.toLowerCase(), dev: r[2]! });
    }
  } catch {
    /* no iproute2: IPv6 DR servers need mac: in the configuration */
  }
  return m;
}

/** make the kernel resolve a neighbour: one UDP datagram to the discard port (the kernel ARPs / solicits first) */
export function pokeNeighbour(addr: string): void {
  const s = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
  s.on('error', () => s.close());
  s.send(Buffer.alloc(0), 9, addr, () => s.close());
}

export function readSysctl(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/** receive offloads that merge packets into super-packets (the engine would see 64 KB frames) */
export function receiveOffloads(iface: string): string[] {
  try {
    const text = execFileSync('ethtool', ['-k', iface], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const on: string[] = [];
    for (const [name, short] of [
      ['generic-receive-offload', 'gro'],
      ['large-receive-offload', 'lro'],
    ] as const) {
      if (new RegExp(`^${name}: on`, 'm').test(text)) on.push(short);
    }
    return on;
  } catch {
    return [];
  }
}
