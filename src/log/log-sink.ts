// Where the service's log lines go (stderr): a bounded buffer in front of the file descriptor
// that never blocks the process. A stalled log pipeline on a node — nobody reading the
// container's stderr — fills the pipe; a synchronous write would then block the event loop and
// every Check with it. Here a line that does not fit in the buffer is dropped whole and
// counted, by kind (decision or service line), and when the descriptor drains the buffered
// lines follow in order and a service line says how many were lost.
//
// How a line reaches the descriptor depends on what it is:
// - a pipe (containerd, Docker, CRI-O give a container pipes): the pipe is opened again through
//   /proc/self/fd, non-blocking — a description of its own, so the flags of the descriptor the
//   process shares with its workers and with Node's own stderr stay as they are — and written
//   on the event loop: a write either fits or fails with EAGAIN, and is retried a little later;
// - a socket (journald, Node's child_process) or a pipe that cannot be opened again: written
//   by libuv's thread pool, so a full socket blocks a pool thread, never the event loop;
// - a file or a character device (/dev/null, a terminal): written synchronously, as before.
// Writes carry whole lines, at most PIPE_BUF bytes (but a longer line) to a pipe or socket: the
// kernel keeps such a write whole, so lines of several processes sharing one pipe (the
// workers of `serve --workers N`) never interleave.
import { closeSync, constants, fstatSync, openSync, write, writeSync } from 'node:fs';

export type LogKind = 'decision' | 'service';
export const LOG_KINDS: readonly LogKind[] = ['decision', 'service'];

/** What the sink reports when it drained after dropping lines: how many of each kind. */
export type DroppedLines = Record<LogKind, number>;

/** PIPE_BUF on Linux: a pipe write of at most this many bytes is never split or interleaved. */
const ATOMIC_WRITE_BYTES = 4096;
/** One synchronous write to a file. */
const FILE_WRITE_BYTES = 64 * 1024;
/** At exit: give up on a descriptor that took nothing for this long, or after this long in all. */
const EXIT_STALL_MS = 1000;
const EXIT_MAX_MS = 5000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Time a write in flight gets to return before it counts as blocked. */
const WRITE_RETURN_MS = 250;
const RETRY_MIN_MS = 5;
const RETRY_MAX_MS = 200;

export type WriteMode = 'nonblocking' | 'threadpool' | 'sync';

export interface LogSinkOptions {
  /** The descriptor written to (2: stderr). */
  fd: number;
  /** Bytes of lines held while the descriptor does not take them; a line past this is dropped. */
  maxBufferedBytes: number;
  /** Told once the buffer has drained after lines were dropped (the logger logs it). */
  onRecovered?: (dropped: DroppedLines) => void;
  /** How to write; default: chosen by what the descriptor is. */
  mode?: WriteMode;
}

export class LogSink {
  /** Lines dropped since start, by kind. */
  readonly dropped: DroppedLines = { decision: 0, service: 0 };
  readonly mode: WriteMode;
  private readonly fd: number;
  private readonly ownFd: boolean;
  private readonly chunkBytes: number;
  private lines: string[] = [];
  private kinds: LogKind[] = [];
  private bytes: number[] = [];
  private head = 0;
  /** Bytes of the lines held and of the chunk being written, not yet taken by the descriptor. */
  private bufferedBytes = 0;
  /** The unwritten end of a chunk the descriptor took only in part. */
  private rest: Buffer | undefined;
  private restKinds: LogKind[] = [];
  private scheduled = false;
  private inFlight = false;
  private retry: NodeJS.Timeout | undefined;
  private retryMs = RETRY_MIN_MS;
  private broken = false;
  /** Dropped since the last report (reported once the buffer drains). */
  private unreported: DroppedLines = { decision: 0, service: 0 };
  private readonly idle = new Set<() => void>();
  private readonly returned = new Set<() => void>();

  constructor(private readonly opts: LogSinkOptions) {
    const chosen = opts.mode !== undefined ? { mode: opts.mode, fd: opts.fd, own: false } : chooseMode(opts.fd);
    this.mode = chosen.mode;
    this.fd = chosen.fd;
    this.ownFd = chosen.own;
    this.chunkBytes = this.mode === 'sync' ? FILE_WRITE_BYTES : ATOMIC_WRITE_BYTES;
  }

  /** A service line (pino's destination interface). */
  write(line: string): boolean {
    return this.push(line, 'service');
  }

  /** A decision-log line. */
  writeDecision(line: string): boolean {
    return this.push(line, 'decision');
  }

  /** Bytes held, not yet written (a chunk being written included). */
  get buffered(): number {
    return this.bufferedBytes;
  }

  /**
   * Waits until every held line is written, at most `timeoutMs`; true when all were. Lines
   * still held then are dropped and counted (the process is about to exit).
   */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.isIdle()) return true;
    this.kick();
    const drained = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.idle.delete(done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.idle.delete(done);
        resolve(true);
      };
      this.idle.add(done);
    });
    return drained;
  }

  /** A write is in flight in the thread pool: the process cannot exit normally until it returns. */
  get stuck(): boolean {
    return this.inFlight;
  }

  /** Resolves true once no write is in flight in the thread pool, false if one still is after `timeoutMs`. */
  writeReturns(timeoutMs: number): Promise<boolean> {
    if (!this.inFlight) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.returned.delete(done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.returned.delete(done);
        resolve(true);
      };
      this.returned.add(done);
    });
  }

  /**
   * At exit (no event loop any more): writes what is held, waiting for a full descriptor while
   * it makes progress — a reader that reads gets every line — but giving up once it has taken
   * nothing for EXIT_STALL_MS, or after EXIT_MAX_MS in all. A socket with a write in flight
   * takes nothing more: writing beside it could reorder or split lines, and that write's end is
   * only ever told to the event loop. A process that ends itself calls settle() first
   * (exitAfterLogs, disconnectAfterSettle), so nothing is in flight here.
   */
  flushAtExit(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
    if (this.broken || (this.mode === 'threadpool' && this.inFlight)) return;
    const start = performance.now();
    let progress = start;
    let pause = 1;
    try {
      while (this.rest !== undefined || this.head < this.lines.length) {
        if (this.writeNow()) {
          progress = performance.now();
          pause = 1;
          continue;
        }
        const now = performance.now();
        if (now - progress >= EXIT_STALL_MS || now - start >= EXIT_MAX_MS) break;
        Atomics.wait(sleeper, 0, 0, pause);
        pause = Math.min(50, pause * 2);
      }
    } catch {
      // the descriptor is gone: nothing more can be written
    }
    if (this.ownFd) {
      try {
        closeSync(this.fd);
      } catch {
        // already closed
      }
    }
  }

  private push(line: string, kind: LogKind): boolean {
    const size = Buffer.byteLength(line);
    // An empty buffer always takes one line, however long, so a long line is never refused alone.
    if (this.broken || (this.bufferedBytes + size > this.opts.maxBufferedBytes && this.bufferedBytes > 0)) {
      this.dropped[kind]++;
      this.unreported[kind]++;
      return false;
    }
    this.lines.push(line);
    this.kinds.push(kind);
    this.bytes.push(size);
    this.bufferedBytes += size;
    if (!this.scheduled && !this.inFlight && this.retry === undefined) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
    return true;
  }

  private kick(): void {
    if (this.scheduled || this.inFlight) return;
    clearTimeout(this.retry);
    this.retry = undefined;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    this.retry = undefined;
    if (this.broken) return;
    if (this.mode === 'threadpool') {
      this.writeInPool();
      return;
    }
    try {
      while (this.rest !== undefined || this.head < this.lines.length) {
        if (!this.writeNow()) {
          this.waitAndRetry();
          return;
        }
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    this.drained();
  };

  /** One synchronous write of the next chunk; false when the descriptor is full (EAGAIN). */
  private writeNow(): boolean {
    const chunk = this.rest ?? this.takeChunk();
    let n: number;
    try {
      n = writeSync(this.fd, chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        this.keep(chunk, 0);
        return false;
      }
      throw err;
    }
    this.keep(chunk, n);
    this.retryMs = RETRY_MIN_MS;
    this.maybeReport();
    return true;
  }

  private writeInPool(): void {
    if (this.inFlight) return;
    if (this.rest === undefined && this.head >= this.lines.length) {
      this.drained();
      return;
    }
    const chunk = this.rest ?? this.takeChunk();
    this.inFlight = true;
    write(this.fd, chunk, 0, chunk.length, null, (err, n) => {
      this.inFlight = false;
      for (const done of [...this.returned]) done();
      if (err) {
        if (err.code === 'EAGAIN') {
          this.keep(chunk, 0);
          this.waitAndRetry();
        } else {
          this.fail(err);
        }
        return;
      }
      this.keep(chunk, n);
      this.retryMs = RETRY_MIN_MS;
      this.maybeReport();
      this.writeInPool();
    });
  }

  /** Whole lines from the head of the buffer, at most chunkBytes (or one longer line). */
  private takeChunk(): Buffer {
    const start = this.head;
    let end = start;
    let size = 0;
    while (end < this.lines.length && (end === start || size + this.bytes[end]! <= this.chunkBytes))
      size += this.bytes[end++]!;
    const text = end - start === 1 ? this.lines[start]! : this.lines.slice(start, end).join('');
    this.restKinds = this.kinds.slice(start, end);
    this.head = end;
    if (this.head > 1024 && this.head * 2 > this.lines.length) this.compact();
    else if (this.head === this.lines.length) this.compact();
    return Buffer.from(text);
  }

  /** What is left of a chunk after `written` bytes went out: held as the next thing to write. */
  private keep(chunk: Buffer, written: number): void {
    this.bufferedBytes -= written;
    this.rest = written >= chunk.length ? undefined : chunk.subarray(written);
    if (this.rest === undefined) this.restKinds = [];
  }

  private compact(): void {
    this.lines = this.lines.slice(this.head);
    this.kinds = this.kinds.slice(this.head);
    this.bytes = this.bytes.slice(this.head);
    this.head = 0;
  }

  private waitAndRetry(): void {
    if (this.retry !== undefined) return;
    this.retry = setTimeout(this.flush, this.retryMs);
    // A full pipe must not keep an exiting process alive; drain() holds its own timer.
    this.retry.unref();
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
  }

  private drained(): void {
    this.retryMs = RETRY_MIN_MS;
    this.maybeReport();
    if (this.isIdle()) for (const done of [...this.idle]) done();
  }

  /**
   * Once lines were dropped and the buffer is at most half full again (the descriptor takes
   * lines again), reports them: one line per episode, not one per write.
   */
  private maybeReport(): void {
    if (this.unreported.decision + this.unreported.service === 0 || this.bufferedBytes * 2 > this.opts.maxBufferedBytes)
      return;
    const report = this.unreported;
    this.unreported = { decision: 0, service: 0 };
    this.opts.onRecovered?.(report);
  }

  private isIdle(): boolean {
    return this.broken || (this.rest === undefined && this.head >= this.lines.length && !this.inFlight);
  }

  /** The descriptor failed (EPIPE: the reader is gone): every held and later line is dropped. */
  private fail(_err: unknown): void {
    this.broken = true;
    for (const k of this.restKinds) this.dropped[k]++;
    for (let i = this.head; i < this.kinds.length; i++) this.dropped[this.kinds[i]!]++;
    this.rest = undefined;
    this.restKinds = [];
    this.lines = [];
    this.kinds = [];
    this.bytes = [];
    this.head = 0;
    this.bufferedBytes = 0;
    for (const done of [...this.idle]) done();
  }
}

/**
 * Before a stopping process exits: waits, at most `boundMs`, for the sink's lines to be
 * written. False when a write is still blocked in the thread pool on a full socket: exit()
 * waits for the pool's threads, so such a process cannot exit normally until the reader
 * drains the socket (terminateSelf ends it).
 */
export async function settle(sink: LogSink, boundMs: number): Promise<boolean> {
  if (await sink.drain(boundMs)) return true;
  // A write in flight on a non-blocking descriptor returns at once (EAGAIN); one that does not
  // is blocked on a full socket.
  return sink.writeReturns(WRITE_RETURN_MS);
}

/**
 * A cluster worker's way out once its work is done: its log settles first (at most `boundMs`),
 * then it leaves the primary's IPC channel. Node's cluster module ends a worker the moment that
 * channel closes (process.exit, no natural exit), and at exit the lines held behind a write in
 * flight in the thread pool can no longer be written: writing beside it could split lines, and
 * its completion is only ever told to the event loop. So nothing may be held when it closes.
 * A write still blocked after the bound (a socket nobody reads): ends by SIGTERM (terminateSelf).
 */
export async function disconnectAfterSettle(sink: LogSink, boundMs: number): Promise<void> {
  if (!(await settle(sink, boundMs))) terminateSelf();
  if (process.connected) process.disconnect?.();
}

/** Ends the process by SIGTERM's default action, which no blocked thread can hold up. */
export function terminateSelf(): void {
  process.removeAllListeners('SIGTERM');
  process.kill(process.pid, 'SIGTERM');
}

/** How to write to `fd`, and the descriptor to write to (a pipe's own non-blocking one). */
function chooseMode(fd: number): { mode: WriteMode; fd: number; own: boolean } {
  let st;
  try {
    st = fstatSync(fd);
  } catch {
    return { mode: 'sync', fd, own: false };
  }
  if (st.isFIFO()) {
    try {
      return {
        mode: 'nonblocking',
        fd: openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY | constants.O_NONBLOCK),
        own: true,
      };
    } catch {
      // no /proc, or not allowed to open the pipe again: the thread pool keeps the loop free
      return { mode: 'threadpool', fd, own: false };
    }
  }
  if (st.isSocket()) return { mode: 'threadpool', fd, own: false };
  return { mode: 'sync', fd, own: false };
}
