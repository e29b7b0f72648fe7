import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The service log: JSON lines on stderr. Never given a key, a token or a full header map.
 * Lines are written in batches of at least 4 KiB, and at least every 200 ms: with a decision
 * line per Check, one write per line cost more CPU than the line. The buffer is written out
 * when the process exits.
 */
export function createLogger(level = process.env.MCP_AUTHZ_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'mcp-authz' } }, pino.destination({ dest: 2, sync: false, minLength: 4096, periodicFlush: 200 }));
}

/** A logger that drops everything (the `check` CLI and tests that do not read logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
