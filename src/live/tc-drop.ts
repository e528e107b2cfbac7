/**
 * What tsvs captures, the kernel's own stack need not see (live.kernel_drop): a classic BPF program on the
 * interface's tc ingress hook (a clsact qdisc, cls_bpf in direct-action mode) drops it there. Packet sockets
 * (the ring, libpcap) take their copy before tc ingress runs, so tsvs still receives every packet; the kernel
 * no longer routes each one only to find it is not for this host (ip_rcv, a route lookup, ip_error and its
 * ICMP rate limiter: in bench/live.sh some 5% of a core under a 64-byte UDP flood).
 *
 * The program is the capture filter narrowed to unicast IP that is not neighbour discovery (ARP, NDP and
 * multicast stay the kernel's: a server's address in the filter also matches its ARP), compiled by
 * libpcap, with its verdicts turned into tc's: accept -> TC_ACT_SHOT, reject -> TC_ACT_UNSPEC (go on).
 * It is replaced when the filter changes and deleted at stop; a leftover one (a daemon killed) drops only
 * what a VIP owner would have dropped anyway (ip_forward is off on an LB), and the next start replaces it.
 */
import { execFileSync } from 'node:child_process';
import { Bpf } from '../capture/bpf.js';

/** the filter's preference on the ingress hook (one of tsvs's per interface) */
const PREF = '4953';
const TC_ACT_SHOT = 2;
const TC_ACT_UNSPEC = 0xffffffff;
/** BPF_RET | BPF_K, BPF_RET | BPF_A */
const RET_K = 0x06;
const RET_A = 0x16;

/** the capture filter, narrowed to what the kernel would only have dropped (unicast IP, not NDP) */
export function dropFilter(capture: string): string {
  return `(${capture}) and ((ip and ip[16] < 224) or (ip6 and ip6[24] != 0xff and not (ip6[6] == 58 and ip6[40] >= 133 and ip6[40] <= 137)))`;
}

/** a socket filter as tc's direct-action bytecode ("N,code jt jf k,..."), or null when it returns A (never, from libpcap) */
export function tcBytecode(prog: Int32Array): string | null {
  const out: string[] = [];
  for (let i = 0; i < prog.length; i += 4) {
    const code = prog[i]!;
    let k = prog[i + 3]! >>> 0;
    if (code === RET_A) return null;
    if (code === RET_K) k = k !== 0 ? TC_ACT_SHOT : TC_ACT_UNSPEC;
    out.push(`${code} ${prog[i + 1]} ${prog[i + 2]} ${k}`);
  }
  return `${out.length},${out.join(',')}`;
}

function tc(args: string[]): void {
  execFileSync('tc', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
}

function tcError(e: unknown): string {
  const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
  if (err.code === 'ENOENT') return 'needs tc (iproute2)';
  return (err.stderr?.toString() ?? err.message).trim().split('\n')[0]!;
}

/** put the drop filter for `capture` on `iface` (link type `linktype`); null, or why not */
export function setKernelDrop(iface: string, capture: string, linktype: number): string | null {
  let code: string | null;
  try {
    code = tcBytecode(Bpf.compile(dropFilter(capture), linktype).program);
  } catch (e) {
    return (e as Error).message;
  }
  if (code === null) return 'the compiled filter returns its accumulator';
  try {
    tc(['qdisc', 'add', 'dev', iface, 'clsact']);
  } catch {
    /* there already (ours from before, or another user's: the filter goes beside theirs) */
  }
  try {
    tc(['filter', 'replace', 'dev', iface, 'ingress', 'pref', PREF, 'handle', '1', 'bpf', 'da', 'bytecode', code]);
    return null;
  } catch (e) {
    return tcError(e);
  }
}

/** take the drop filter off `iface` (the clsact qdisc stays: others' filters may hang on it) */
export function clearKernelDrop(iface: string): void {
  try {
    tc(['filter', 'del', 'dev', iface, 'ingress', 'pref', PREF]);
  } catch {
    /* not there */
  }
}
