/**
 * Synthetic captures for the benchmarks, written with the project's pcap writer. Frames are built once
 * per flow and patched per packet, so generation is fast and deterministic.
 *
 *   node dist/bench/gen.js OUT.pcap [packets] [flows]
 *
 * Traffic: `flows` TCP connections (80%) over IPv4 and IPv6 and UDP flows (20%) from 10.x clients to a
 * handful of servers; each TCP flow opens with SYN / SYN-ACK / ACK, then alternates data both ways.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PcapWriter } from '../src/capture/writer.js';
import { wr16, wr32 } from '../src/packet/bytes.js';
import { setIpv4HeaderChecksum } from '../src/packet/checksum.js';

/** an Ethernet/IPv4 frame template (TTL 64, no addresses yet) with room for `l4len` + `payload` bytes */
export function ethIpv4(proto: number, l4len: number, payload: number): Uint8Array {
  const f = new Uint8Array(14 + 20 + l4len + payload);
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0]);
  f[14] = 0x45;
  wr16(f, 16, 20 + l4len + payload);
  f[22] = 64;
  f[23] = proto;
  return f;
}

function ethIpv6(proto: number, l4len: number, payload: number): Uint8Array {
  const f = new Uint8Array(14 + 40 + l4len + payload);
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
  f[14] = 0x60;
  wr16(f, 18, l4len + payload);
  f[20] = proto;
  f[21] = 64;
  return f;
}

export interface GenOptions {
  packets: number;
  flows: number;
  /** fraction of flows that are IPv6 */
  v6?: number;
  /** packets per flow before it is closed and a new one opened (0 = keep flows open, round robin) */
  perFlow?: number;
  /** no UDP flows (every fifth flow is UDP otherwise) */
  tcpOnly?: boolean;
}

/** Write a synthetic capture; returns the number of packets written. */
export function generate(out: string, o: GenOptions): number {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const w = new PcapWriter(out, 1, 6);
  const v6share = o.v6 ?? 0.1;
  const tcp4 = ethIpv4(6, 20, 64);
  const udp4 = ethIpv4(17, 8, 64);
  const tcp6 = ethIpv6(6, 20, 64);
  const udp6 = ethIpv6(17, 8, 64);
  for (const f of [tcp4, tcp6]) f[14 + (f === tcp4 ? 20 : 40) + 12] = 0x50;
  for (const f of [udp4, udp6]) wr16(f, 14 + (f === udp4 ? 20 : 40) + 4, 72);
  let t = 1700000000 * 1e6;
  const flows = o.flows;
  const perFlow = o.perFlow ?? 0;
  let gen = 0; // flow generation (new client ports when flows are recycled)
  const step = new Uint32Array(flows);
  for (let n = 0; n < o.packets; n++) {
    const id = n % flows;
    if (perFlow && step[id]! >= perFlow) {
      step[id] = 0;
      if (id === 0) gen++;
    }
    const k = step[id]!++;
    const isV6 = v6share > 0 && id % Math.round(1 / v6share) === 0;
    const isUdp = !o.tcpOnly && id % 5 === 4;
    const f = isUdp ? (isV6 ? udp6 : udp4) : isV6 ? tcp6 : tcp4;
    const l3 = 14;
    const l4 = l3 + (isV6 ? 40 : 20);
    const client = (0x0a000000 + id + 1 + gen * 7919) >>> 0;
    const server = (0xc0a80100 + (id % 8)) >>> 0;
    const cport = 1024 + ((id * 7 + gen * 131) % 60000);
    const fromClient = k % 2 === 0 || k === 2;
    const s = fromClient ? client : server;
    const d = fromClient ? server : client;
    if (isV6) {
      wr32(f, l3 + 8, 0x20010db8);
      wr32(f, l3 + 20, s);
      wr32(f, l3 + 24, 0x20010db8);
      wr32(f, l3 + 36, d);
    } else {
      wr32(f, l3 + 12, s);
      wr32(f, l3 + 16, d);
      setIpv4HeaderChecksum(f, l3, 20);
    }
    wr16(f, l4, fromClient ? cport : 80);
    wr16(f, l4 + 2, fromClient ? 80 : cport);
    let len = f.length;
    if (!isUdp) {
      wr32(f, l4 + 4, 1000 + k * 64);
      wr32(f, l4 + 8, k === 0 ? 0 : 5000 + k * 64);
      f[l4 + 13] = k === 0 ? 0x02 : k === 1 ? 0x12 : k === 2 ? 0x10 : 0x18;
      if (k < 3) {
        // handshake packets carry no payload
        len = l4 + 20;
        wr16(f, l3 + (isV6 ? 4 : 2), isV6 ? 20 : 40);
        if (!isV6) setIpv4HeaderChecksum(f, l3, 20);
      } else {
        wr16(f, l3 + (isV6 ? 4 : 2), isV6 ? 84 : 104);
        if (!isV6) setIpv4HeaderChecksum(f, l3, 20);
      }
    }
    t += 1;
    w.write(Math.floor(t / 1e6), t % 1e6, f, 0, len);
  }
  w.close();
  return o.packets;
}

if (process.argv[1] && process.argv[1].endsWith('gen.js')) {
  const out = process.argv[2] ?? 'bench/data/bench.pcap';
  const packets = Number(process.argv[3] ?? 1_000_000);
  const flows = Number(process.argv[4] ?? 10_000);
  generate(out, { packets, flows, v6: Number(process.env.GEN_V6 ?? 0.1), tcpOnly: process.env.GEN_TCP_ONLY === '1' });
  console.log(`wrote ${packets} packets (${flows} flows) to ${out}`);
}
