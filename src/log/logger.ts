import { pino, type Logger } from 'pino';
import {
  disconnectAfterSettle,
  LogSink,
  settle,
  terminateSelf,
  type DroppedLines,
  type WriteMode,
} from './log-sink.js';

export { terminateSelf };

export type { Logger };

/** Bytes of log lines a process holds while stderr is not read (MCP_AUTHZ_LOG_BUFFER_BYTES). */
export const DEFAULT_LOG_BUFFER_BYTES = 4 * 1024 * 1024;
const MIN_LOG_BUFFER_BYTES = 4096;
/** How long a stopping process waits for its log to be read before it exits anyway. */
export const LOG_SETTLE_MS = 5000;

/** The sink this process's service log writes to (one per process: createLogger's). */
let processSink: LogSink | undefined;

/**
 * The service log: JSON lines on stderr, through a bounded buffer that never blocks the
 * process (src/log/log-sink.ts): a line that does not fit while stderr is not read is dropped
 * and counted, and a warning says how many once stderr drains. Never given a key, a token or
 * a full header map.
 */
export function createLogger(
  level = process.env.MCP_AUTHZ_LOG_LEVEL ?? 'info',
  opts: { bufferBytes?: number; fd?: number; mode?: WriteMode; sink?: LineSink } = {},
): Logger {
  if (opts.sink) return attach(pino({ level, base: { service: 'mcp-authz' } }, opts.sink), opts.sink);
  let logger: Logger | undefined;
  const fd = opts.fd ?? 2;
  const sink = new LogSink({
    fd,
    maxBufferedBytes: opts.bufferBytes ?? logBufferBytes(),
    onRecovered: (dropped) =>
      logger?.warn(
        { dropped },
        'log lines dropped: stderr was not read fast enough (lines past the log buffer are dropped, never waited for)',
      ),
    ...(opts.mode !== undefined ? { mode: opts.mode } : {}),
  });
  if (fd === 2) processSink ??= sink;
  process.on('exit', () => sink.flushAtExit());
  logger = attach(pino({ level, base: { service: 'mcp-authz' } }, sink), sink);
  return logger;
}

/**
 * Where a logger made by createLogger writes whole lines: the service's LogSink, or a test's
 * own (`createLogger(level, { sink })`). The decision log writes its lines straight to it.
 */
export interface LineSink {
  /** A service line, as pino writes it. */
  write(line: string): unknown;
  /** A decision-log line, built in the same shape. */
  writeDecision(line: string): unknown;
  /** Lines dropped so far, by kind (the service's LogSink counts them). */
  readonly dropped?: DroppedLines;
}

/**
 * The sink of each logger createLogger made, and of their children made with childLogger: the
 * decision log builds its hot-path lines itself and writes them there, in pino's line shape,
 * through no pino internals. Loggers made otherwise are not here; theirs go through pino.
 */
const sinks = new WeakMap<Logger, LineSink>();

function attach(logger: Logger, sink: LineSink): Logger {
  sinks.set(logger, sink);
  return logger;
}

/** The sink a logger made by createLogger (or a child made with childLogger) writes to; undefined for any other logger. */
export function logSinkOf(logger: Logger): LineSink | undefined {
  return sinks.get(logger);
}

/** logger.child(bindings), keeping the parent's sink. */
export function childLogger(parent: Logger, bindings: Record<string, unknown>): Logger {
  const child = parent.child(bindings);
  const sink = sinks.get(parent);
  if (sink) sinks.set(child, sink);
  return child;
}

/** MCP_AUTHZ_LOG_BUFFER_BYTES, refused with what it takes rather than ignored. */
export function logBufferBytes(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const v = env.MCP_AUTHZ_LOG_BUFFER_BYTES;
  if (v === undefined || v === '') return DEFAULT_LOG_BUFFER_BYTES;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < MIN_LOG_BUFFER_BYTES)
    throw new Error(
      `MCP_AUTHZ_LOG_BUFFER_BYTES must be a whole number of bytes, at least ${MIN_LOG_BUFFER_BYTES}; got ${JSON.stringify(v)}`,
    );
  return n;
}

/**
 * Before a stopping process exits: waits, at most `boundMs`, for its log lines to be written.
 * Resolves false when a write is still blocked in the thread pool on a full socket: such a
 * process cannot exit normally (exit waits for the pool's threads) until the reader drains it.
 */
export async function settleLogs(boundMs = LOG_SETTLE_MS): Promise<boolean> {
  return processSink ? settle(processSink, boundMs) : true;
}

/**
 * Ends the process with `code` once its log has settled (at most LOG_SETTLE_MS). When a log
 * write is stuck on a full socket, exit() would wait for the reader forever: the process then
 * ends itself by SIGTERM, as it was asked to stop.
 */
export async function exitAfterLogs(code: number): Promise<void> {
  if (await settleLogs()) {
    process.exit(code);
  }
  terminateSelf();
}

/**
 * A cluster worker leaves the primary once its log has settled (at most LOG_SETTLE_MS): the
 * cluster module exits a worker at once when the channel closes, and lines still held then
 * would be lost (src/log/log-sink.ts, disconnectAfterSettle).
 */
export async function leaveClusterAfterLogs(boundMs = LOG_SETTLE_MS): Promise<void> {
  if (processSink) await disconnectAfterSettle(processSink, boundMs);
  else if (process.connected) process.disconnect?.();
}

/** A logger that drops everything (the `check` CLI and tests that do not read logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** A logger that hands each line at `level` or above, parsed, to `take` (and writes nothing). */
export function collectingLogger(level: 'warn' | 'info', take: (line: Record<string, unknown>) => void): Logger {
  return pino({ level }, { write: (line: string) => take(JSON.parse(line) as Record<string, unknown>) });
}
