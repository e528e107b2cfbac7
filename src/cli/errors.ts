/** User mistakes (bad option values, unreadable inputs): one line on stderr, exit 2, never a stack trace. */
import { CommanderError } from 'commander';

export class UsageError extends Error {}

/** a bug in tsvs (sysexits EX_SOFTWARE): distinct from 2, a bad input or usage */
export const EXIT_INTERNAL = 70;

/** Exit status for an error thrown by a command's parse/action, or rethrow it when it is not the user's. */
export function exitStatusFor(prog: string, e: unknown): number {
  if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
  if (e instanceof UsageError) {
    process.stderr.write(`${prog}: ${e.message}\n`);
    return 2;
  }
  throw e;
}
