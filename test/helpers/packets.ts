/**
 * Packet builders for tests. Deliberately independent of src/: addresses parsed here, checksums computed by
 * a plain reference loop (RFC 1071), byte layout written field by field.
 */

export function concat(...parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function bytes(...xs: number[]): Uint8Array {
  return Uint8Array.from(xs);
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >> 8) & 255;
  b[o + 1] = v & 255;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 255;
  b[o + 1] = (v >>> 16) & 255;
  b[o + 2] = (v >>> 8) & 255;
  b[o + 3] = v & 255;
}

export function ip4bytes(s: string): Uint8Array {
  return Uint8Array.from(s.split('.').map(Number));
}

export function ip6bytes(s: string): Uint8Array {
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':').filter(Boolean) : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
  const out = new Uint8Array(16);
  groups.forEach((g, i) => put16(out, i * 2, g));
  return out;
}

/** Reference RFC 1071 checksum: plain loop, 32-bit accumulator folded at the end. */
export function refChecksum(data: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < data.length; i += 2) sum += (data[i]! << 8) + (i + 1 < data.length ? data[i + 1]! : 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

export interface Ip4Opts {
  src?: string;
  dst?: string;
  proto: number;
  ttl?: number;
  id?: number;
  df?: boolean;
  mf?: boolean;
  fragOffset?: number; // bytes, multiple of 8
  options?: Uint8Array;
  totalLen?: number; // override
  ihl?: number; // override (words)
  version?: number; // override
  tos?: number;
}

export function ipv4(o: Ip4Opts, payload: Uint8Array): Uint8Array {
  const opts = o.options ?? new Uint8Array(0);
  const hl = 20 + opts.length;
  const h = new Uint8Array(hl);
  h[0] = ((o.version ?? 4) << 4) | (o.ihl ?? hl / 4);
  h[1] = o.tos ?? 0;
  put16(h, 2, o.totalLen ?? hl + payload.length);
  put16(h, 4, o.id ?? 0x1234);
  put16(h, 6, (o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | ((o.fragOffset ?? 0) >> 3));
  h[8] = o.ttl ?? 64;
  h[9] = o.proto;
  h.set(ip4bytes(o.src ?? '10.0.0.1'), 12);
  h.set(ip4bytes(o.dst ?? '10.0.0.2'), 16);
  h.set(opts, 20);
  put16(h, 10, refChecksum(h));
  return concat(h, payload);
}

export interface Ip6Ext {
  type: number; // header type of THIS extension (0, 43, 44, 60, 51)
  body: Uint8Array; // bytes after next-header/len (for AH/frag the whole remainder)
}

export interface Ip6Opts {
  src?: string;
  dst?: string;
  nh: number; // upper-layer protocol
  hops?: number;
  ext?: Ip6Ext[];
  payloadLen?: number; // override
  version?: number;
}

export function ipv6(o: Ip6Opts, payload: Uint8Array): Uint8Array {
  const exts = o.ext ?? [];
  const extBytes: Uint8Array[] = [];
  exts.forEach((e, i) => {
    const next = i + 1 < exts.length ? exts[i + 1]!.type : o.nh;
    const len = 2 + e.body.length;
    const b = new Uint8Array(len);
    b[0] = next;
    if (e.type === 51) b[1] = len / 4 - 2;
    else if (e.type === 44) b[1] = 0;
    else b[1] = len / 8 - 1;
    b.set(e.body, 2);
    extBytes.push(b);
  });
  const ext = concat(...extBytes);
  const h = new Uint8Array(40);
  put32(h, 0, ((o.version ?? 6) << 28) >>> 0);
  put16(h, 4, o.payloadLen ?? ext.length + payload.length);
  h[6] = exts.length ? exts[0]!.type : o.nh;
  h[7] = o.hops ?? 64;
  h.set(ip6bytes(o.src ?? '2001:db8::1'), 8);
  h.set(ip6bytes(o.dst ?? '2001:db8::2'), 24);
  return concat(h, ext, payload);
}

function pseudo(src: Uint8Array, dst: Uint8Array, proto: number, len: number): Uint8Array {
  if (src.length === 4) {
    const p = new Uint8Array(12);
    p.set(src, 0);
    p.set(dst, 4);
    p[9] = proto;
    put16(p, 10, len);
    return p;
  }
  const p = new Uint8Array(40);
  p.set(src, 0);
  p.set(dst, 16);
  put32(p, 32, len);
  p[39] = proto;
  return p;
}

export interface L4Addr {
  src?: string;
  dst?: string;
  v6?: boolean;
}

function addrs(a: L4Addr): [Uint8Array, Uint8Array] {
  return a.v6 ? [ip6bytes(a.src ?? '2001:db8::1'), ip6bytes(a.dst ?? '2001:db8::2')] : [ip4bytes(a.src ?? '10.0.0.1'), ip4bytes(a.dst ?? '10.0.0.2')];
}

export interface TcpOpts extends L4Addr {
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  flags?: number;
  win?: number;
  options?: Uint8Array;
  doff?: number; // override (words)
}

export function tcp(o: TcpOpts, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const opts = o.options ?? new Uint8Array(0);
  const hl = 20 + opts.length;
  const h = new Uint8Array(hl);
  put16(h, 0, o.sport ?? 40000);
  put16(h, 2, o.dport ?? 80);
  put32(h, 4, o.seq ?? 1000);
  put32(h, 8, o.ack ?? 0);
  h[12] = (o.doff ?? hl / 4) << 4;
  h[13] = o.flags ?? 0x02;
  put16(h, 14, o.win ?? 65535);
  h.set(opts, 20);
  const seg = concat(h, payload);
  const [s, d] = addrs(o);
  put16(seg, 16, refChecksum(concat(pseudo(s, d, 6, seg.length), seg)));
  return seg;
}

export interface UdpOpts extends L4Addr {
  sport?: number;
  dport?: number;
  len?: number; // override
}

export function udp(o: UdpOpts, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const seg = new Uint8Array(8 + payload.length);
  put16(seg, 0, o.sport ?? 5353);
  put16(seg, 2, o.dport ?? 53);
  put16(seg, 4, o.len ?? seg.length);
  seg.set(payload, 8);
  const [s, d] = addrs(o);
  let c = refChecksum(concat(pseudo(s, d, 17, seg.length), seg));
  if (c === 0) c = 0xffff;
  put16(seg, 6, c);
  return seg;
}

export interface IcmpOpts extends L4Addr {
  type: number;
  code?: number;
  rest?: number; // 32-bit rest of header (id<<16|seq for echo)
}

/** ICMPv4 (no pseudo-header) or ICMPv6 (with one) when `v6`. */
export function icmp(o: IcmpOpts, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const m = new Uint8Array(8 + payload.length);
  m[0] = o.type;
  m[1] = o.code ?? 0;
  put32(m, 4, o.rest ?? 0);
  m.set(payload, 8);
  const [s, d] = addrs(o);
  put16(m, 2, refChecksum(o.v6 ? concat(pseudo(s, d, 58, m.length), m) : m));
  return m;
}

export function eth(type: number, payload: Uint8Array, vlans: Array<{ tpid?: number; vid: number }> = []): Uint8Array {
  const h = new Uint8Array(12 + 4 * vlans.length + 2);
  h.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1], 0);
  let o = 12;
  for (const v of vlans) {
    put16(h, o, v.tpid ?? 0x8100);
    put16(h, o + 2, v.vid);
    o += 4;
  }
  put16(h, o, type);
  return concat(h, payload);
}

export function sll(protocol: number, payload: Uint8Array): Uint8Array {
  const h = new Uint8Array(16);
  put16(h, 0, 0); // to us
  put16(h, 2, 1); // ARPHRD_ETHER
  put16(h, 4, 6);
  h.set([2, 0, 0, 0, 0, 1], 6);
  put16(h, 14, protocol);
  return concat(h, payload);
}

export function sll2(protocol: number, payload: Uint8Array): Uint8Array {
  const h = new Uint8Array(20);
  put16(h, 0, protocol);
  put32(h, 4, 3); // ifindex
  put16(h, 8, 1);
  h[10] = 0;
  h[11] = 6;
  h.set([2, 0, 0, 0, 0, 1], 12);
  return concat(h, payload);
}

/** BSD loopback header: family in host order (LINKTYPE_NULL, little-endian host) or network order (LOOP). */
export function loopback(family: number, payload: Uint8Array, networkOrder = false): Uint8Array {
  const h = new Uint8Array(4);
  if (networkOrder) put32(h, 0, family);
  else h[0] = family;
  return concat(h, payload);
}

export interface Rec {
  sec: number;
  frac: number;
  data: Uint8Array;
  wirelen?: number;
}

/** A classic pcap file image. */
export function pcapFile(recs: Rec[], opts: { linktype?: number; nano?: boolean; bigEndian?: boolean; snaplen?: number; version?: [number, number] } = {}): Uint8Array {
  const le = !opts.bigEndian;
  const w32 = (b: Uint8Array, o: number, v: number) => b.set(le32(v, le), o);
  const w16 = (b: Uint8Array, o: number, v: number) => b.set(le16(v, le), o);
  const h = new Uint8Array(24);
  w32(h, 0, opts.nano ? 0xa1b23c4d : 0xa1b2c3d4);
  w16(h, 4, opts.version?.[0] ?? 2);
  w16(h, 6, opts.version?.[1] ?? 4);
  w32(h, 16, opts.snaplen ?? 65535);
  w32(h, 20, opts.linktype ?? 1);
  const parts: Uint8Array[] = [h];
  for (const r of recs) {
    const rh = new Uint8Array(16);
    w32(rh, 0, r.sec);
    w32(rh, 4, r.frac);
    w32(rh, 8, r.data.length);
    w32(rh, 12, r.wirelen ?? r.data.length);
    parts.push(rh, r.data);
  }
  return concat(...parts);
}

/** A pcapng block with the given type and body (padded), in the given byte order. */
export function ngBlock(type: number, body: Uint8Array, le = true): Uint8Array {
  const pad = (4 - (body.length % 4)) % 4;
  const len = 12 + body.length + pad;
  const b = new Uint8Array(len);
  const w32 = (o: number, v: number) => b.set(le32(v, le), o);
  w32(0, type);
  w32(4, len);
  b.set(body, 8);
  w32(len - 4, len);
  return b;
}

function le32(v: number, le: boolean): Uint8Array {
  const b = new Uint8Array(4);
  if (le) {
    b[0] = v & 255;
    b[1] = (v >>> 8) & 255;
    b[2] = (v >>> 16) & 255;
    b[3] = (v >>> 24) & 255;
  } else put32(b, 0, v);
  return b;
}

function le16(v: number, le: boolean): Uint8Array {
  const b = new Uint8Array(2);
  if (le) {
    b[0] = v & 255;
    b[1] = (v >>> 8) & 255;
  } else put16(b, 0, v);
  return b;
}

export function ngShb(le = true, version: [number, number] = [1, 0]): Uint8Array {
  return ngBlock(0x0a0d0d0a, concat(le32(0x1a2b3c4d, le), le16(version[0], le), le16(version[1], le), le32(0xffffffff, le), le32(0xffffffff, le)), le);
}

export function ngIdb(linktype: number, le = true, tsresol?: number, snaplen = 0): Uint8Array {
  const opts = tsresol === undefined ? new Uint8Array(0) : concat(le16(9, le), le16(1, le), bytes(tsresol, 0, 0, 0), le16(0, le), le16(0, le));
  return ngBlock(1, concat(le16(linktype, le), le16(0, le), le32(snaplen, le), opts), le);
}

export function ngEpb(ifId: number, ts: bigint, data: Uint8Array, le = true, wirelen?: number): Uint8Array {
  return ngBlock(
    6,
    concat(le32(ifId, le), le32(Number(ts >> 32n), le), le32(Number(ts & 0xffffffffn), le), le32(data.length, le), le32(wirelen ?? data.length, le), data),
    le,
  );
}

export function ngSpb(data: Uint8Array, le = true): Uint8Array {
  return ngBlock(3, concat(le32(data.length, le), data), le);
}

/**
 * A capture of a UDP query client:33000 -> vip:53 and a port unreachable about it from `server`, quoting the
 * query as the server received it: from `seenFrom` (address, port) to the server's port `serverPort`.
 */
export function portUnreachableCapture(client: string, vip: string, seenFrom: [string, number], server: string, serverPort: number): Uint8Array {
  const payload = new Uint8Array(20).fill(7);
  const query = ipv4({ proto: 17, src: client, dst: vip }, udp({ src: client, dst: vip, sport: 33000, dport: 53 }, payload));
  const [qsrc, qport] = seenFrom;
  const seen = ipv4({ proto: 17, src: qsrc, dst: server }, udp({ src: qsrc, dst: server, sport: qport, dport: serverPort }, payload));
  // an ICMP error quotes the IP header and the first 8 bytes of its payload
  const unreach = ipv4({ proto: 1, src: server, dst: qsrc }, icmp({ type: 3, code: 3 }, seen.subarray(0, 28)));
  return pcapFile([
    { sec: 1700000000, frac: 0, data: eth(0x0800, query) },
    { sec: 1700000000, frac: 10, data: eth(0x0800, unreach) },
  ]);
}
