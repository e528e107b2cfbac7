/**
 * Configuration: YAML or JSON (YAML is a superset), validated with a zod schema. The only home of tunables.
 * Every error is one line naming the file and the key path ("lb.yaml: services[1].servers[0].weight: ...").
 */
import { CONHASH_REPLICAS } from './sched/conhash.js';
import { REGION_DEFAULTS } from './lb/regions.js';
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import YAML from 'yaml';
import { z } from 'zod';
import { SCHEDULER_NAMES } from './sched/index.js';
import { gcd } from './sched/types.js';
import { MODES } from './xmit/modes.js';
import { DPVS_TCP_STATE_NAMES, NF_TCP_STATE_NAMES } from './proto/tcp.js';

/** the longest timeout of any kind (connections, persistence, conn_timeout): 30 days, within the timer wheel's reach */
export const MAX_TIMEOUT_S = 30 * 86400;
/** mh: the largest lookup table (IPVS's largest, 2^17 - 1), and the slots all services' tables may add up to (128 MiB) */
export const MH_MAX_TABLE = 131071;
export const MH_TOTAL_SLOTS = 1 << 25;
/** conhash: virtual nodes per unit of weight (sched/conhash.ts), and at most this many per service */
export { CONHASH_REPLICAS };
export const CONHASH_MAX_NODES = 1 << 20;

const timeout = z.number().min(0).max(MAX_TIMEOUT_S);

function isPrime(n: number): boolean {
  if (n < 2 || !Number.isInteger(n)) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

const address = z.string().refine((s) => isIP(s) !== 0, { message: 'expected an IPv4 or IPv6 address' });
const port = z.number().int().min(1).max(65535);
/** the forwarding modes' names, from their registry (xmit/modes.ts) */
const FORWARD = MODES.map((m) => m.name) as [string, ...string[]];
/** an address prefix "10.0.0.0/8", "2001:db8::/32" (a bare address is a host route) */
const prefix = z.string().refine(
  (s) => {
    const [a, l, extra] = s.split('/');
    if (extra !== undefined || !a || isIP(a) === 0) return false;
    if (l === undefined) return true;
    const n = Number(l);
    return /^[0-9]+$/.test(l) && n <= (isIP(a) === 6 ? 128 : 32);
  },
  { message: 'expected an address prefix like 10.0.0.0/8' },
);

const server = z
  .object({
    /** an agent's server (issue 18): its address is where its heartbeats come from (addr: 0.0.0.0 stands in) */
    agent: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'expected an agent id').optional(),
    addr: address,
    /** required except for snat, whose servers are SNAT addresses */
    port: port.optional(),
    weight: z.number().int().min(0).max(65535).default(1),
    mac: z
      .string()
      .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i, 'expected a MAC address like 02:00:00:00:03:02')
      .optional(),
    forward: z.enum(FORWARD).optional(),
    upper_threshold: z.number().int().min(0).max(0x7fffffff).default(0),
    lower_threshold: z.number().int().min(0).max(0x7fffffff).default(0),
    /** the region (site, cloud, continent) it sits in: with region_select, new connections go to the nearest */
    region: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/, 'expected a region name (letters, digits, . _ -; at most 32)').optional(),
  })
  .strict();

/** `{ agent: ID, port }` needs no addr: 0.0.0.0 stands in for it until the agent's endpoint is known */
const serverIn = z.preprocess((x) => (x && typeof x === 'object' && 'agent' in x && !('addr' in x) ? { ...x, addr: '0.0.0.0' } : x), server);

const service = z
  .object({
    proto: z.enum(['tcp', 'udp']),
    /** required except for snat */
    vip: address.optional(),
    port: port.optional(),
    /** snat: the outbound connections it translates (inside sources, optionally a destination prefix and port) */
    match: z.object({ src: prefix, dst: prefix.optional(), dport: port.optional() }).strict().optional(),
    scheduler: z.string().refine((s) => SCHEDULER_NAMES.includes(s), { message: `expected one of ${SCHEDULER_NAMES.join(', ')}` }),
    forward: z.enum(FORWARD).default('nat'),
    laddrs: z.array(address).max(256).default([]),
    persistence: z.object({ timeout: z.number().int().min(1).max(MAX_TIMEOUT_S), netmask: z.number().int().min(0).max(128).default(32) }).strict().optional(),
    /** fnat: carry the client's address and port to the server in a TCP option (TOA, kind 254) */
    toa: z.boolean().default(false),
    /** nearest: new connections go to the servers of the home region, chosen by probed latency (regions:) */
    region_select: z.enum(['nearest']).optional(),
    /** fnat: the PROXY protocol header (HAProxy's v1 text or v2 binary) before the client's bytes to the server */
    proxy_protocol: z.enum(['v1', 'v2']).optional(),
    synproxy: z.boolean().default(false),
    conn_timeout: timeout.default(0),
    expire_quiescent: z.boolean().default(false),
    mh: z
      .object({
        /** a prime (Maglev's permutations cover the table only then) */
        table_size: z.number().int().min(7).max(MH_MAX_TABLE).refine(isPrime, { message: 'expected a prime (e.g. 251, 4093, 65537)' }).optional(),
        port: z.boolean().optional(),
        fallback: z.boolean().optional(),
      })
      .strict()
      .optional(),
    /** tunnel forwarding: IP-in-IP (protocol 4 / 41) or GUE (UDP, variant 1) */
    /** src: the outer header's source (default: the VIP; live mode needs an address of the LB's own, as a server drops packets from its own VIP) */
    tunnel: z.object({ type: z.enum(['ipip', 'gue']).default('ipip'), port: port.default(6080), src: address.optional() }).strict().default({}),
    servers: z.array(serverIn).max(65535),
  })
  .strict()
  .superRefine((s, ctx) => {
    const issue = (path: Array<string | number>, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path, message });
    if (s.scheduler === 'conhash') {
      const g = s.servers.reduce((a, x) => gcd(a, x.weight), 0) || 1;
      const nodes = s.servers.reduce((a, x) => a + x.weight / g, 0) * CONHASH_REPLICAS;
      if (nodes > CONHASH_MAX_NODES) issue(['servers'], `conhash: the weights (divided by their gcd, ${g}) add up to ${nodes / CONHASH_REPLICAS}, ${CONHASH_REPLICAS} ring nodes each: at most ${CONHASH_MAX_NODES / CONHASH_REPLICAS}`);
    }
    if (s.forward === 'snat') {
      // SNAT (DPVS match service): inside hosts' outbound connections leave from a SNAT address (a "server")
      if (!s.match) issue(['match'], 'required for snat forwarding (the inside sources it translates, e.g. { src: 10.0.0.0/8 })');
      if (s.vip !== undefined || s.port !== undefined) issue([s.vip !== undefined ? 'vip' : 'port'], 'not used by snat forwarding (a snat service matches by match:)');
      const v6 = s.match?.src.includes(':') ?? false;
      if (s.match?.dst && s.match.dst.includes(':') !== v6) issue(['match', 'dst'], 'must be of the same address family as match.src');
      s.servers.forEach((x, i) => {
        if (x.forward !== undefined && x.forward !== 'snat') issue(['servers', i, 'forward'], 'a snat service has only snat servers');
        if (x.addr.includes(':') !== v6) issue(['servers', i, 'addr'], 'must be of the address family of match.src');
      });
      return;
    }
    if (s.toa && s.forward !== 'fnat') issue(['toa'], 'only used by fnat forwarding');
    s.servers.forEach((x, i) => {
      if (x.agent !== undefined && (s.forward !== 'tunnel' || s.tunnel.type !== 'gue')) issue(['servers', i, 'agent'], 'an agent is reached by forward: tunnel with tunnel: { type: gue }');
    });
    if (s.region_select !== undefined) {
      s.servers.forEach((x, i) => {
        if (x.region === undefined) issue(['servers', i, 'region'], 'required with region_select (the region the server sits in)');
      });
    }
    if (s.proxy_protocol !== undefined) {
      if (s.forward !== 'fnat') issue(['proxy_protocol'], 'only used by fnat forwarding (the other modes keep the client address)');
      else if (s.proto !== 'tcp') issue(['proxy_protocol'], 'only for tcp services');
      else if (s.toa) issue(['proxy_protocol'], 'one way to tell the client address: toa or proxy_protocol, not both');
      else if (s.synproxy) issue(['proxy_protocol'], 'not with synproxy (both move sequence numbers; not supported together)');
    }
    if (s.synproxy) {
      // the synproxy translates sequence numbers both ways: the server's replies must pass through the LB
      if (s.proto !== 'tcp') issue(['synproxy'], 'only for tcp services');
      s.servers.forEach((x, i) => {
        const fwd = x.forward ?? s.forward;
        if (fwd !== 'nat' && fwd !== 'fnat') issue(['servers', i, 'forward'], `synproxy works with nat and fnat forwarding, not ${fwd}`);
      });
    }
    if (s.vip === undefined) issue(['vip'], 'required');
    if (s.port === undefined) issue(['port'], 'required');
    if (s.match) issue(['match'], 'only used by snat forwarding');
    const v6 = s.vip?.includes(':') ?? false;
    if ((s.forward === 'fnat' || s.servers.some((x) => x.forward === 'fnat')) && s.laddrs.length === 0) {
      issue(['laddrs'], 'required for fnat forwarding (local addresses the LB connects to servers from)');
    }
    if (s.tunnel.src !== undefined && s.tunnel.src.includes(':') !== v6) issue(['tunnel', 'src'], "must be of the VIP's address family");
    // (no NAT64/46: every address a service's packets carry is of the VIP's family)
    s.laddrs.forEach((a, i) => {
      if (a.includes(':') !== v6) issue(['laddrs', i], `must be of the VIP's address family (IPv${v6 ? 6 : 4})`);
    });
    const seen = new Map<string, number>();
    s.servers.forEach((x, i) => {
      const fwd = x.forward ?? s.forward;
      if (x.port === undefined) issue(['servers', i, 'port'], 'required');
      if (fwd === 'snat') issue(['servers', i, 'forward'], 'snat is a service-wide mode (forward: snat with match:)');
      if (x.agent === undefined && x.addr.includes(':') !== v6) issue(['servers', i, 'addr'], `must be of the VIP's address family (IPv${v6 ? 6 : 4})`);
      // direct routing rewrites no port: the server answers on the VIP's
      if (fwd === 'dr' && x.port !== undefined && s.port !== undefined && x.port !== s.port && s.port !== 0) issue(['servers', i, 'port'], `must be the VIP's port (${s.port}) for dr forwarding (the packet reaches the server unchanged)`);
      // (an agent's server is its agent and port: they all stand at the placeholder address)
      const k = x.agent !== undefined ? `agent ${x.agent} ${x.port}` : `${x.addr} ${x.port}`;
      const first = seen.get(k);
      if (first !== undefined) issue(['servers', i], `duplicate server ${x.agent !== undefined ? `agent ${x.agent} port ` : `${x.addr}:`}${x.port} (also servers[${first}])`);
      else seen.set(k, i);
    });
  });

/** DPVS's synproxy block: the SYN-ACK's options, ACK saving, retries and defences */
const synproxyConfig = z
  .object({
    /** the SYN-ACK: MSS ceiling, TTL / hop limit, window, and which options it offers */
    mss: z.number().int().min(536).max(65535).default(1452),
    ttl: z.number().int().min(1).max(255).default(63),
    window: z.number().int().min(0).max(65535).default(65535),
    /** window scale the LB announces (false: none); SACK and timestamps when the client offers them */
    wscale: z.union([z.number().int().min(0).max(14), z.literal(false)]).default(7),
    sack: z.boolean().default(true),
    timestamps: z.boolean().default(true),
    /** client packets held while the server's handshake is pending, besides the first ACK */
    max_ack_saved: z.number().int().min(0).max(64).default(3),
    /** SYNs resent to an unanswering server, on its SYN_SENT timer, before giving up */
    rs_syn_max_retry: z.number().int().min(0).max(16).default(3),
    /** the same seq/ack from the server this many times in a row is an ACK storm: dropped (0 = off) */
    ack_storm_thresh: z.number().int().min(0).max(255).default(10),
    /** answer an ACK whose cookie does not validate with a RST */
    rst_on_bad_ack: z.boolean().default(true),
    /** open the server connection only on the client's first data (a pure ACK is dropped: NULL_ACK) */
    defer_rs_syn: z.boolean().default(false),
    /** states in which a synproxy connection may be reused by a new valid handshake (DPVS conn_reuse_state) */
    conn_reuse_state: z.array(z.enum(['close', 'time_wait', 'fin_wait', 'close_wait', 'last_ack'])).default(['close', 'time_wait']),
    /** seconds a client that completed a cookie handshake keeps priority: under overload its SYNs are still answered (0: off) */
    trust_verified: z.number().min(0).max(86400).default(300),
    /** SYN cookie secret (the SipHash key), 32 hex digits (default: random at start; in replay derived from the seed) */
    secret: z.string().regex(/^[0-9a-f]{32}$/i, 'expected 32 hex digits').optional(),
  })
  .strict();

/** health checks: a TCP connect (or an HTTP GET when `http` names a path) per server every `interval` seconds */
const healthConfig = z
  .object({
    enabled: z.boolean().default(true),
    interval: z.number().min(0.1).max(3600).default(2),
    timeout: z.number().min(0.05).max(60).default(1),
    /** consecutive successes that bring a failed server back, failures that take a healthy one out */
    rise: z.number().int().min(1).max(100).default(2),
    fall: z.number().int().min(1).max(100).default(2),
    /** HTTP GET of this path, healthy on a 2xx/3xx status (default: TCP connect only) */
    http: z.string().startsWith('/').optional(),
    /** passive signals: a connection that reaches ESTABLISHED counts as a success, one that ends waiting for its server (RST, or no answer before the SYN_RECV timeout) as a failure */
    passive: z.boolean().default(true),
  })
  .strict();

/** flow accounting per (source, destination) host pair (src/flows; DERP's flow tracking) */
const flowsConfig = z
  .object({
    /** on in tsvs run unless false; in replay with --flows FILE or true here */
    enabled: z.boolean().optional(),
    /** seconds without a packet after which a flow may be evicted (checked two flows per new flow, round robin) */
    idle: z.number().min(1).max(MAX_TIMEOUT_S).default(3600),
    /** most flows at once: when full, the least recently active one is evicted */
    max: z.number().int().min(16).max(1 << 24).default(1 << 20),
    /** destinations each source remembers, most recent first */
    per_source: z.number().int().min(0).max(10000).default(100),
  })
  .strict();

/** live mode (tsvs run): where it captures, its control socket, metrics, logs, health-check defaults */
const liveConfig = z
  .object({
    interfaces: z.array(z.string().min(1)).min(1),
    socket: z.string().min(1).default('/run/tsvs/tsvs.sock'),
    /** Prometheus listener host:port, or false for none */
    metrics: z.union([z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):\d{1,5}$/, 'expected HOST:PORT'), z.literal(false)]).default('127.0.0.1:9640'),
    log: z.object({ level: z.enum(['debug', 'info', 'warn', 'error']).default('info'), json: z.boolean().default(false) }).strict().default({}),
    /**
     * how packets come in and go out: batched (a TPACKET_V3 ring and sendmmsg through tsvs's native module),
     * pcap (libpcap and raw-socket, a call per packet), auto (batched where the module is built); the
     * environment's TSVS_LIVE_IO overrides it
     */
    io: z.enum(['auto', 'batched', 'pcap']).default('auto'),
    /** the batched path's receive ring per interface, KiB (a power of two; frames of 2 KiB): what a burst may fill before packets are dropped */
    ring_kb: z
      .number()
      .int()
      .min(64)
      .max(1 << 20)
      .refine((n) => (n & (n - 1)) === 0, 'a power of two')
      .default(8192),
    /**
     * batched: while the ring is busy, how long (µs) an empty ring is given to fill before the capture thread
     * waits on its socket again (a thread woken by the kernel per packet costs more than the packet); the
     * delay a packet may wait under load (0: none)
     */
    rx_coalesce_us: z.number().int().min(0).max(100000).default(1000),
    /**
     * drop what tsvs captures at the interfaces' tc ingress (after the capture's copy), so the kernel's own
     * stack does not also route it only to drop it (src/live/tc-drop.ts; needs tc)
     */
    kernel_drop: z.boolean().default(true),
    /** libpcap read timeout (ms): how long the kernel may hold packets to deliver them in batches */
    buffer_timeout_ms: z.number().int().min(0).max(1000).default(1),
    /**
     * the batched path's transmit threads: the capture thread hands each batch's packets to them (by
     * destination) and the kernel's work for a send — on veth and bridges, the receivers' too — runs on the
     * other cores; 0: sendmmsg on the capture thread
     */
    tx_threads: z.number().int().min(0).max(16).default(2),
    /**
     * engines (worker threads, the main thread's included), each with its own connection table, timers and
     * counters; the kernel hands each its packets (a PACKET_FANOUT group whose program is the replay's
     * dispatch rule); auto: one per core; the environment's TSVS_LIVE_WORKERS overrides it; batched I/O only
     */
    workers: z.union([z.number().int().min(1).max(64), z.literal('auto')]).default(1),
    /** packets queued on the raw socket beyond which new ones are dropped (tx_queue_full) */
    tx_queue: z.number().int().min(1).max(1 << 20).default(4096),
    /**
     * room in the transmit queue kept for the packets of existing connections: synproxy SYN-ACKs (and RSTs to
     * bad ACKs) are dropped early once no more than this is left (default: half of tx_queue; 0: never)
     */
    tx_reserve: z.number().int().min(0).max(1 << 20).optional(),
    health: healthConfig.default({}),
  })
  .strict()
  .refine((l) => l.tx_reserve === undefined || l.tx_reserve < l.tx_queue, { message: 'tx_reserve must be less than tx_queue', path: ['tx_reserve'] });

/** nearest-region selection's tunables (src/lb/regions.ts); the defaults are Tailscale's values */
const secs = z.number().min(0.001).max(MAX_TIMEOUT_S);
const regionsConfig = z
  .object({
    full_interval: secs.default(REGION_DEFAULTS.full_interval),
    incremental_interval: secs.default(REGION_DEFAULTS.incremental_interval),
    full_delays_ms: z.array(z.number().min(0).max(60000)).min(1).max(16).default(REGION_DEFAULTS.full_delays_ms),
    tries_fastest: z.number().int().min(1).max(16).default(REGION_DEFAULTS.tries_fastest),
    tries_home: z.number().int().min(1).max(16).default(REGION_DEFAULTS.tries_home),
    tries_other: z.number().int().min(1).max(16).default(REGION_DEFAULTS.tries_other),
    history: secs.default(REGION_DEFAULTS.history),
    min_gain_ms: z.number().min(0).max(60000).default(REGION_DEFAULTS.min_gain_ms),
    min_ratio: z.number().gt(0).max(1).default(REGION_DEFAULTS.min_ratio),
    keep_home: secs.default(REGION_DEFAULTS.keep_home),
    score: z.record(z.string(), z.number().gt(0).max(1000)).default({}),
    probe: z.enum(['tcp', 'http', 'icmp']).default(REGION_DEFAULTS.probe),
    probe_path: z.string().regex(/^\/[\x21-\x7e]{0,255}$/, 'expected a path like /health').default(REGION_DEFAULTS.probe_path),
    rule: z.enum(['default', 'tailscale']).default(REGION_DEFAULTS.rule),
  })
  .strict();

/** remote servers as agents (issue 18): the hub's UDP socket, each agent's key, the silence that takes one down */
const agentsConfig = z
  .object({
    listen: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/, 'expected ADDR:PORT'),
    keys: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'expected an agent id (letters, digits, . _ -)'), z.string().regex(/^([0-9a-fA-F]{2}){16,64}$/, 'expected 16-64 bytes of hex')).default({}),
    key_files: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/), z.string().min(1)).default({}),
    timeout: z.number().min(0.5).max(3600).default(5),
  })
  .strict();

export const configSchema = z
  .object({
    live: liveConfig.optional(),
    services: z.array(service).max(65536).default([]),
    max_conns: z.number().int().min(16).max(64 * 1024 * 1024).default(1048576),
    profile: z.enum(['netfilter', 'dpvs']).optional(),
    seed: z.number().int().min(0).max(0xffffffff).default(1),
    timeouts: z.record(z.string(), timeout).default({}),
    /** drop traffic that matches no service instead of passing it through (DPVS defence_tcp_drop) */
    drop_unmatched: z.boolean().default(false),
    /** forwarded packets lose one TTL / hop limit; those arriving with 1 or 0 are dropped (IPVS decrement_ttl) */
    decrement_ttl: z.boolean().default(false),
    /**
     * MTU of the path to the real servers: a packet that would leave bigger (tunnel: with its outer header)
     * is answered with ICMP fragmentation needed / packet too big instead of being forwarded (IPv4 with DF)
     */
    mtu: z.number().int().min(576).max(65535).default(1500),
    /** synproxy settings for services with synproxy: true (DPVS synproxy { ... }) */
    synproxy: synproxyConfig.default({}),
    flows: flowsConfig.default({}),
    regions: regionsConfig.default({}),
    agents: agentsConfig.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    // Maglev tables are allocated per service: their sum is bounded (5000 services of 65537 slots were 1.4 GB)
    let slots = 0;
    for (const [i, s] of c.services.entries()) {
      if (s.scheduler !== 'mh') continue;
      slots += s.mh?.table_size ?? 65537;
      if (slots > MH_TOTAL_SLOTS) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['services', i, 'mh', 'table_size'], message: `the mh tables of services[0..${i}] add up to ${slots} slots, more than ${MH_TOTAL_SLOTS}: give them a smaller mh.table_size (a prime, e.g. 251 or 4093)` });
        break;
      }
    }
    const ids = new Set([...Object.keys(c.agents?.keys ?? {}), ...Object.keys(c.agents?.key_files ?? {})]);
    c.services.forEach((s, i) =>
      s.servers.forEach((x, j) => {
        if (x.agent !== undefined && !ids.has(x.agent)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['services', i, 'servers', j, 'agent'], message: `no key for agent ${x.agent} in agents: (keys or key_files)` });
      }),
    );
    const seen = new Map<string, number>();
    c.services.forEach((s, i) => {
      // replay needs a DR server's MAC; live mode resolves it from the kernel's neighbour table
      if (!c.live) {
        s.servers.forEach((x, j) => {
          if ((x.forward ?? s.forward) === 'dr' && !x.mac) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['services', i, 'servers', j, 'mac'], message: 'required for dr forwarding in replay (the MAC address the LB sends to)' });
        });
      }
      if (s.forward === 'snat') return;
      const k = `${s.proto} ${s.vip} ${s.port}`;
      const first = seen.get(k);
      if (first !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['services', i], message: `duplicate service ${k} (also services[${first}])` });
      else seen.set(k, i);
    });
  });

export type Config = z.infer<typeof configSchema>;
export type ServiceConfig = z.infer<typeof service>;
export type SynproxyConfig = z.infer<typeof synproxyConfig>;
export type LiveConfig = z.infer<typeof liveConfig>;
export type HealthConfig = z.infer<typeof healthConfig>;
export type FlowsSettings = z.infer<typeof flowsConfig>;

export class ConfigError extends Error {}

export interface Timeouts {
  tcp: Record<string, number>;
  udp: Record<string, number>;
  icmp?: number;
}

/**
 * Timeouts by name, as in the configuration's `timeouts:` and `--timeout`: a TCP state of the profile, or
 * udp_unreplied/udp_replied/udp_oneway/udp_normal/icmp. Throws ConfigError for an unknown UDP name (TCP
 * state names are checked by the tracker, which knows the profile).
 */
export function splitTimeouts(byName: Record<string, number>): Timeouts {
  const out: Timeouts = { tcp: {}, udp: {} };
  for (const [raw, secs] of Object.entries(byName)) {
    const name = raw.toLowerCase();
    if (name === 'icmp') out.icmp = secs;
    else if (name.startsWith('udp_')) {
      const k = name.slice(4);
      if (!['unreplied', 'replied', 'oneway', 'normal'].includes(k)) throw new ConfigError(`unknown UDP timeout "${name}" (udp_unreplied, udp_replied, udp_oneway, udp_normal)`);
      out.udp[k] = secs;
    } else out.tcp[name] = secs;
  }
  return out;
}

/** the TCP state names a timeout may name in a profile (netfilter adds the RETRANS and UNACK caps) */
export function tcpTimeoutNames(profile: 'netfilter' | 'dpvs'): string[] {
  return profile === 'dpvs' ? [...DPVS_TCP_STATE_NAMES] : [...NF_TCP_STATE_NAMES, 'RETRANS', 'UNACK'];
}

/**
 * Check timeouts by name for a profile: returns the first problem as "NAME: message", or null. The names are
 * a TCP state of the profile (any case), or udp_unreplied/udp_replied/udp_oneway/udp_normal/icmp; values are
 * seconds in [0, MAX_TIMEOUT_S].
 */
export function checkTimeouts(byName: Record<string, number>, profile: 'netfilter' | 'dpvs'): string | null {
  const tcp = tcpTimeoutNames(profile);
  for (const [name, secs] of Object.entries(byName)) {
    const n = name.toLowerCase();
    if (!(typeof secs === 'number' && secs >= 0 && secs <= MAX_TIMEOUT_S)) return `${name}: expected seconds in [0, ${MAX_TIMEOUT_S}] (30 days), got ${JSON.stringify(secs)}`;
    if (n === 'icmp' || ['udp_unreplied', 'udp_replied', 'udp_oneway', 'udp_normal'].includes(n)) continue;
    if (n.startsWith('udp_')) return `${name}: unknown UDP timeout (udp_unreplied, udp_replied, udp_oneway, udp_normal)`;
    if (!tcp.some((x) => x.toLowerCase() === n)) return `${name}: unknown TCP state for profile ${profile} (known: ${tcp.join(', ')})`;
  }
  return null;
}

function pathString(path: Array<string | number>): string {
  let s = '';
  // (a key that is not a plain name is quoted: the error stays one line whatever the file holds)
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(p) ? (s ? `.${p}` : p) : `[${JSON.stringify(p)}]`;
  return s || '(top level)';
}

/** Validate an already-parsed document; `where` names it in errors. */
export function parseConfig(doc: unknown, where: string): Config {
  const r = configSchema.safeParse(doc ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    let msg = issue.message;
    if (issue.code === 'invalid_type') msg = `expected ${issue.expected}, got ${issue.received}`;
    else if (issue.code === 'invalid_enum_value') msg = `expected one of ${issue.options.join(', ')}, got ${JSON.stringify(issue.received)}`;
    else if (issue.code === 'unrecognized_keys') msg = `unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    else if (issue.code === 'custom' || issue.code === 'too_small' || issue.code === 'too_big') {
      const value = issue.path.reduce<unknown>((o, k) => (o as Record<string | number, unknown> | undefined)?.[k], doc);
      if (value !== undefined && typeof value !== 'object') msg += `, got ${JSON.stringify(value)}`;
    }
    throw new ConfigError(`${where}: ${pathString(issue.path)}: ${msg}`);
  }
  return r.data;
}

/** Read and validate a YAML or JSON configuration file. */
export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseConfigText(text, file);
}

/** Parse and validate configuration text (YAML or JSON); `where` names it in errors. */
export function parseConfigText(text: string, where: string): Config {
  let doc: unknown;
  try {
    doc = YAML.parse(text, { logLevel: 'error' }); // (warnings would go to the process's stderr)
  } catch (e) {
    const err = e as { message: string; linePos?: Array<{ line: number; col: number }> };
    const pos = err.linePos?.[0];
    const first = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(`${where}: ${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}${first}`);
  }
  if (doc === null || doc === undefined) throw new ConfigError(`${where}: empty (a configuration has at least services: or live:)`);
  return parseConfig(doc, where);
}
