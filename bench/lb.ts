/**
 * Full load-balancer path (issue 4): read + decode + conntrack + wrr + FNAT rewrite + pcap write, over a
 * generated IPv4 capture of 1M packets on 10k connections (TCP opening with SYN, and UDP), every flow to a
 * virtual service. Output goes to the null device.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { renderReport } from '../src/report/html.js';
import type { ReportData } from '../src/report/report.js';
import { replayFile } from '../src/replay.js';
import { Services } from '../src/service/services.js';
import { loadConfig } from '../src/config.js';
import { fileURLToPath } from 'node:url';

/** the generator's servers (192.168.1.0-7, port 80) become VIPs, each with 4 real servers, FNAT: bench/lb.yaml */
export function benchServices(): Services {
  return new Services(loadConfig(fileURLToPath(new URL('../../bench/lb.yaml', import.meta.url))).services);
}

export async function lbPath(file: string): Promise<{ packets: number; seconds: number; emitted: number; conns: number }> {
  // the configuration is read once per tsvs run, before the first packet: not part of the packet path
  const services = benchServices();
  const t0 = performance.now();
  // BENCH_FLOWS=1: with flow accounting (the default of tsvs run), as the flows part compares
  const flows = process.env.BENCH_FLOWS === '1' ? { idle: 3600, max: 1 << 20, perSource: 100 } : undefined;
  // BENCH_REPORT=FILE: with the replay report, written there (the report part compares)
  const reportFile = process.env.BENCH_REPORT;
  const report = reportFile ? { done: (d: ReportData) => fs.writeFileSync(reportFile, renderReport(d)) } : undefined;
  const s = await replayFile(file, { track: { profile: 'dpvs', seed: 1, maxConns: 1 << 17 }, lb: { services, out: os.devNull }, flows, report });
  return { packets: s.packets, seconds: (performance.now() - t0) / 1000, emitted: s.lb!.emitted, conns: s.conns!.total };
}
