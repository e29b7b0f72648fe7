import { pino, type Logger } from 'pino';

export type { Logger };

interface FileStream {
  write(chunk: string): unknown;
}

/**
 * Log lines written during one turn of the event loop, handed to the file as one write
 * (synchronous, as Node writes stderr to pipes and files anyway) when the turn ends: with a
 * decision line per Check, a write per line cost more than building the line. Lines still
 * pending when the process exits are written then.
 */
class TurnBatcher {
  private pending: string[] = [];
  private scheduled = false;

  constructor(private readonly out: FileStream) {
    process.on('exit', () => {
      try {
        this.flush();
      } catch {
        // stderr is gone: nothing more can be written
      }
    });
  }

  write(line: string): boolean {
    this.pending.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
    return true;
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const chunk = this.pending.length === 1 ? this.pending[0]! : this.pending.join('');
    this.pending = [];
    this.out.write(chunk);
  };
}

/**
 * Where the loggers createLogger makes (and their children made with childLogger) write: the
 * decision log builds its hot-path lines itself and writes them there, in pino's line shape,
 * through no pino internals. Loggers made otherwise are not here; theirs go through pino.
 */
const lineSinks = new WeakMap<Logger, FileStream>();

/** The stream a logger of createLogger writes whole lines to, with pino's default line shape (no redaction, mixin or formatters). */
export function lineSink(logger: Logger): FileStream | undefined {
  return lineSinks.get(logger);
}

/** logger.child(bindings), keeping the parent's line sink. */
export function childLogger(parent: Logger, bindings: Record<string, unknown>): Logger {
  const child = parent.child(bindings);
  const sink = lineSinks.get(parent);
  if (sink) lineSinks.set(child, sink);
  return child;
}

/** The service log: JSON lines on stderr. Never given a key, a token or a full header map. */
export function createLogger(level = process.env.MCP_AUTHZ_LOG_LEVEL ?? 'info'): Logger {
  const sink = new TurnBatcher(pino.destination({ dest: 2, sync: true }));
  const logger = pino({ level, base: { service: 'mcp-authz' } }, sink);
  lineSinks.set(logger, sink);
  return logger;
}

/** A logger that drops everything (the `check` CLI and tests that do not read logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
