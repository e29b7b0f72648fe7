// The reading end of a process's stdout/stderr, as a log shipper holds it: lines read as they
// arrive, and a pause that stops reading altogether, so the pipe fills as it does behind a
// stalled log pipeline on a node. Two kinds of pipe: a FIFO (what containerd and Docker give a
// container: a kernel pipe, 64 KiB) and the socketpair Node's own child_process gives
// (`stdio: 'pipe'`; journald's stdout stream is a socket too).
import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

export type PipeKind = 'fifo' | 'socketpair';

export class LineReader {
  readonly lines: string[] = [];
  private partial = '';
  private readonly waiters = new Set<() => void>();
  private ended = false;

  constructor(private readonly stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop()!;
      this.lines.push(...parts);
      for (const w of this.waiters) w();
    });
    stream.on('end', () => {
      this.ended = true;
      for (const w of this.waiters) w();
    });
    stream.on('error', () => {});
  }

  /** Stops reading: what the process writes from now on stays in the pipe until it is full. */
  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }

  /** Resolves once a line read so far (or later) satisfies `match`; rejects after `deadlineMs`. */
  waitForLine(what: string, match: (line: string) => boolean, deadlineMs = 60_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.lines.find(match);
        if (line !== undefined) {
          done();
          resolve(line);
        } else if (this.ended) {
          done();
          reject(new Error(`the stream ended before ${what}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${what}`));
      }, deadlineMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves when the stream ends (the writers have all exited). */
  untilEnd(deadlineMs = 60_000): Promise<void> {
    return this.waitForLine('the end of the stream', () => false, deadlineMs).then(
      () => undefined,
      (err: Error) => {
        if (this.ended) return;
        throw err;
      },
    );
  }
}

/**
 * A FIFO for a child's stdout or stderr: the child gets `writeFd` (close it in the parent once
 * the child has it), the test reads `reader`.
 */
export function fifo(): { writeFd: number; reader: LineReader; closeWriteEnd(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-fifo-'));
  const path = join(dir, 'pipe');
  const made = spawnSync('mkfifo', [path]);
  if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr}`);
  // The read end first, without waiting for a writer; then the write end, which finds it.
  const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeFd = openSync(path, constants.O_WRONLY);
  rmSync(dir, { recursive: true, force: true });
  const socket = new Socket({ fd: readFd, readable: true, writable: false });
  let closed = false;
  return {
    writeFd,
    reader: new LineReader(socket),
    closeWriteEnd: () => {
      if (!closed) closeSync(writeFd);
      closed = true;
    },
  };
}
