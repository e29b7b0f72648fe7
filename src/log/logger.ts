import { pino, type Logger } from 'pino';

export type { Logger };

/** The service log: JSON lines on stderr. Never given a key, a token or a full header map. */
export function createLogger(level = process.env.MCP_AUTHZ_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'mcp-authz' } }, pino.destination({ dest: 2, sync: false }));
}

/** A logger that drops everything (the `check` CLI and tests that do not read logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
