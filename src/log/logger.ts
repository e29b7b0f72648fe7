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

/** The service log: JSON lines on stderr. Never given a key, a token or a full header map. */
export function createLogger(level = process.env.MCP_AUTHZ_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'mcp-authz' } }, new TurnBatcher(pino.destination({ dest: 2, sync: true })));
}

/** A logger that drops everything (the `check` CLI and tests that do not read logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
