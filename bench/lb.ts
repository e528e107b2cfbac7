/**
 * Full load-balancer path (issue 4): read + decode + conntrack + wrr + FNAT rewrite + pcap write, over a
 * generated IPv4 capture of 1M packets on 10k connections (TCP opening with SYN, and UDP), every flow to a
 * virtual service. Output goes to the null device.
 */
import * as os from 'node:os';
import { replayFile } from '../src/replay.js';
import { Services } from '../src/service/services.js';
import { parseConfig } from '../src/config.js';

/** the generator's servers (192.168.1.0-7, port 80) become VIPs, each with 4 real servers, FNAT */
export function benchServices(): Services {
  const services = [];
  for (let i = 0; i < 8; i++) {
    for (const proto of ['tcp', 'udp']) {
      services.push({
        proto,
        vip: `192.168.1.${i}`,
        port: 80,
        scheduler: 'wrr',
        forward: 'fnat',
        laddrs: ['10.201.9.1', '10.201.9.2'],
        servers: [1, 2, 3, 4].map((k) => ({ addr: `10.201.${i}.${k}`, port: 8080, weight: k })),
      });
    }
  }
  return new Services(parseConfig({ services }, 'bench').services);
}

export async function lbPath(file: string): Promise<{ packets: number; seconds: number; emitted: number; conns: number }> {
  // the configuration is read once per tsvs run, before the first packet: not part of the packet path
  const services = benchServices();
  const t0 = performance.now();
  const s = await replayFile(file, { track: { profile: 'dpvs', seed: 1, maxConns: 1 << 17 }, lb: { services, out: os.devNull } });
  return { packets: s.packets, seconds: (performance.now() - t0) / 1000, emitted: s.lb!.emitted, conns: s.conns!.total };
}
