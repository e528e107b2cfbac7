/** Structured logs for live mode: one line per event on stderr, text or JSON, filtered by level. */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type Level = keyof typeof LEVELS;

export class Logger {
  constructor(
    readonly level: Level = 'info',
    readonly json = false,
    private readonly out: (line: string) => void = (l) => void process.stderr.write(l),
  ) {}

  log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
    if (LEVELS[level] < LEVELS[this.level]) return;
    const time = new Date().toISOString();
    if (this.json) this.out(`${JSON.stringify({ time, level, msg, ...fields })}\n`);
    else {
      const kv = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
        .join(' ');
      this.out(`${time} ${level.toUpperCase().padEnd(5)} ${msg}${kv ? ` ${kv}` : ''}\n`);
    }
  }
  debug(msg: string, f?: Record<string, unknown>): void {
    this.log('debug', msg, f);
  }
  info(msg: string, f?: Record<string, unknown>): void {
    this.log('info', msg, f);
  }
  warn(msg: string, f?: Record<string, unknown>): void {
    this.log('warn', msg, f);
  }
  error(msg: string, f?: Record<string, unknown>): void {
    this.log('error', msg, f);
  }
}
