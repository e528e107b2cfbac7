#!/usr/bin/env node
/** `tsvs` entry point. User mistakes print one line and exit 2; never a stack trace (TSVS_DEBUG=1 shows one). */
import * as fs from 'node:fs';
import { Command, CommanderError } from 'commander';
import { replayFile, ReplayError } from '../replay.js';
import { formatSummary, progressBar } from './format.js';

const LARGE_FILE = 64 * 1024 * 1024;

async function replayCmd(files: string[], opts: { json?: boolean; verifyChecksums?: boolean }): Promise<number> {
  let rc = 0;
  const color = process.stdout.isTTY === true;
  for (const file of files) {
    let packets = 0;
    let size = 0;
    try {
      size = fs.statSync(file).size;
    } catch {
      /* reported by the reader */
    }
    const showProgress = process.stderr.isTTY === true && size >= LARGE_FILE;
    try {
      const s = await replayFile(file, {
        verifyChecksums: opts.verifyChecksums,
        onPacket: showProgress ? () => void packets++ : undefined,
        onProgress: showProgress ? (done, total) => process.stderr.write(progressBar(done, total, packets)) : undefined,
      });
      if (showProgress) process.stderr.write('\r\x1b[K');
      for (const w of s.warnings) process.stderr.write(`tsvs: warning: ${file}: ${w}\n`);
      process.stdout.write(opts.json ? `${JSON.stringify(s)}\n` : `${formatSummary(s, color)}\n\n`);
    } catch (e) {
      if (showProgress) process.stderr.write('\r\x1b[K');
      if (!(e instanceof ReplayError)) throw e;
      process.stderr.write(`tsvs: ${e.message}\n`);
      if (e.summary) process.stdout.write(opts.json ? `${JSON.stringify(e.summary)}\n` : `${formatSummary(e.summary, color)}\n\n`);
      rc = 2;
    }
  }
  return rc;
}

export async function main(argv: string[]): Promise<number> {
  let rc = 0;
  const program = new Command('tsvs')
    .description('connection tracking and L4 load balancing over captures and live traffic')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program
    .command('replay')
    .description('read pcap/pcapng captures (optionally gzip-compressed) and report what they hold')
    .argument('<file...>', 'capture files')
    .option('--json', 'one JSON object per file on stdout')
    .option('--verify-checksums', 'verify IPv4 header and TCP/UDP/ICMP checksums (counted, never dropped)')
    .action(async (files: string[], opts: { json?: boolean; verifyChecksums?: boolean }) => {
      rc = await replayCmd(files, opts);
    });
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
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
    process.exitCode = 1;
  },
);
