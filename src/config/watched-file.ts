// A file (or folder, or a set of files read together) the service reloads when it changes:
// the API keys file, the policy bundle or .rego folder, a TLS certificate with its key and
// client CA. Changes are seen three ways — fs.watch on the file's folder
// (editors and Kubernetes replace files by rename, and kubelet swaps a "..data" symlink,
// which a watch on the file itself would miss), fs.watch on a folder source, and a slow
// poll as a safety net where file events are unreliable (network volumes). Bursts of
// events are debounced; reloads never overlap (a change during one runs one more after it);
// a digest of the contents makes an unchanged source a no-op, so touching a file is not a
// reload and a broken file is refused once, not on every poll. What the owner builds from
// the contents replaces the value in force only when building succeeds: the last good value
// stays otherwise.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync, watch, type FSWatcher } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface SourceSnapshot {
  /** The source's path (a set of files: their paths joined with ", "). */
  path: string;
  /** SHA-256 over the contents (a folder: every file's path and bytes, in name order; a set: each file's path and bytes, in order). */
  digest: string;
  /** A file's bytes; undefined for a folder or a set. */
  content: Buffer | undefined;
  /** A set of files: each one's bytes, in the order given. */
  files?: Buffer[];
}

export type ReloadResult<T> =
  | { ok: true; value: T; changed: boolean; previous?: T | undefined }
  /** `unreadable`: the source could not be read at all (missing, permissions). */
  | { ok: false; error: unknown; unreadable: boolean; kept: T | undefined };

/** The warn line watching problems are logged with (the service logger fits). */
export interface WatchLog {
  warn(fields: Record<string, unknown>, msg: string): void;
}

export interface WatchedFileOptions<T> {
  /** A file or folder, or files that make one value together (read at the same moment, reloaded as one). */
  path: string | readonly string[];
  /** Builds the value from changed contents; throwing keeps the value in force. */
  build(source: SourceSnapshot): T | Promise<T>;
  pollIntervalMs: number;
  /** Coalesces a burst of file events into one reload (default 50 ms). */
  debounceMs?: number;
  /** false: poll only, for file systems without change events. */
  fsEvents?: boolean;
  log: WatchLog;
  /** Names the source in log lines ("the keys file"). */
  what: string;
  /** A value already built from the source, and the digest it was built from. */
  initial?: { value: T; digest: string };
  /**
   * 'stream': a file too large to hold twice (a keys file of a million keys). Its digest is
   * taken reading it in chunks that yield to the event loop, the snapshot carries no
   * content, and `build` reads the file itself (readFileChunks), throwing SourceChanged
   * when what it read is not what was digested: the reload then runs again.
   */
  read?: 'whole' | 'stream';
}

/** Thrown by a build that read other contents than the snapshot's digest: the file changed meanwhile. */
export class SourceChanged extends Error {
  constructor(path: string) {
    super(`${path} changed while it was read`);
  }
}

export class WatchedFile<T> {
  private value: T | undefined;
  /** Digest of the contents last built, successfully or not, and whether that build failed. */
  private seen: string | undefined;
  private seenBroken = false;
  private readonly listeners = new Set<(r: ReloadResult<T>) => void>();
  private running: Promise<ReloadResult<T>> | undefined;
  private again = false;
  private watcher: FSWatcher | undefined;
  private readonly watchers = new Set<FSWatcher>();
  private poller: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: WatchedFileOptions<T>) {
    this.value = opts.initial?.value;
    this.seen = opts.initial?.digest;
  }

  /** The value in force: the last one built successfully. */
  get current(): T | undefined {
    return this.value;
  }

  /** Puts a value built from the same source in force (the policy built again with other data). */
  replace(value: T): void {
    this.value = value;
  }

  /** Told after every reload that read changed contents, or could not read the source. */
  onReload(listener: (r: ReloadResult<T>) => void): void {
    this.listeners.add(listener);
  }

  /** Reads the source now and rebuilds if it changed; concurrent calls are serialized and coalesced. */
  reload(): Promise<ReloadResult<T>> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let r: ReloadResult<T>;
      do {
        this.again = false;
        r = await this.reloadOnce();
      } while (this.again && !this.closed);
      this.running = undefined;
      return r;
    })();
    return this.running;
  }

  /** Starts watching and polling. */
  start(): void {
    if (this.closed || this.poller) return;
    const { path, log, what } = this.opts;
    if (this.opts.fsEvents === false) {
      // polling only
    } else if (typeof path !== 'string') {
      this.watchSet(path);
    } else {
      let isDir = false;
      try {
        isDir = statSync(path).isDirectory();
      } catch {
        // missing: watch its folder and load it when it appears
      }
      const name = basename(path);
      const onEvent = (_event: string, changed: string | Buffer | null) => {
        // Kubernetes volume updates swap a "..data" symlink rather than touching the file itself.
        if (!isDir && changed !== null && String(changed) !== name && !String(changed).startsWith('..')) return;
        this.schedule();
      };
      try {
        this.watcher = isDir
          ? watch(path, { recursive: true, persistent: false }, onEvent)
          : watch(dirname(path), { persistent: false }, onEvent);
        this.watcher.on('error', (err) => {
          log.warn({ source: path, err: err.message }, `watching ${what} failed; polling only`);
          this.watcher?.close();
          this.watcher = undefined;
        });
      } catch (err) {
        log.warn({ source: path, err: (err as Error).message }, `cannot watch ${what} for changes; polling only`);
      }
    }
    this.poller = setInterval(() => void this.reload(), this.opts.pollIntervalMs);
    this.poller.unref();
  }

  /** Watches the folder of each file of a set (several files may share one). */
  private watchSet(paths: readonly string[]): void {
    const { log, what } = this.opts;
    const byDir = new Map<string, Set<string>>();
    for (const p of paths) {
      const names = byDir.get(dirname(p)) ?? new Set<string>();
      names.add(basename(p));
      byDir.set(dirname(p), names);
    }
    for (const [dir, names] of byDir) {
      const onEvent = (_event: string, changed: string | Buffer | null) => {
        if (changed !== null && !names.has(String(changed)) && !String(changed).startsWith('..')) return;
        this.schedule();
      };
      try {
        const w = watch(dir, { persistent: false }, onEvent);
        w.on('error', (err) => {
          log.warn({ source: dir, err: err.message }, `watching ${what} failed; polling only`);
          w.close();
          this.watchers.delete(w);
        });
        this.watchers.add(w);
      } catch (err) {
        log.warn({ source: dir, err: (err as Error).message }, `cannot watch ${what} for changes; polling only`);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watchers) w.close();
    this.watchers.clear();
    this.watcher?.close();
    clearInterval(this.poller);
    clearTimeout(this.debounce);
    await this.running;
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.reload(), this.opts.debounceMs ?? 50);
    this.debounce.unref();
  }

  private async reloadOnce(): Promise<ReloadResult<T>> {
    let source: SourceSnapshot;
    try {
      const { path } = this.opts;
      source =
        this.opts.read === 'stream' && typeof path === 'string'
          ? { path, digest: await readFileChunks(path, () => undefined), content: undefined }
          : readSource(path);
    } catch (error) {
      return this.tell({ ok: false, error, unreadable: true, kept: this.value });
    }
    if (source.digest === this.seen) {
      // Unchanged: nothing to build; a broken source was reported when it first appeared.
      if (this.seenBroken || this.value === undefined)
        return {
          ok: false,
          error: new Error('unchanged since the last failed load'),
          unreadable: false,
          kept: this.value,
        };
      return { ok: true, value: this.value, changed: false };
    }
    let next: T;
    try {
      next = await this.opts.build(source);
    } catch (error) {
      if (error instanceof SourceChanged && !this.closed) {
        // Read again: the change that made the difference has its own event, but it may have come already.
        this.again = true;
        return { ok: false, error, unreadable: false, kept: this.value };
      }
      this.seen = source.digest;
      this.seenBroken = true;
      return this.tell({ ok: false, error, unreadable: false, kept: this.value });
    }
    if (this.closed) return { ok: false, error: new Error('closed'), unreadable: false, kept: this.value };
    const previous = this.value;
    this.value = next;
    this.seen = source.digest;
    this.seenBroken = false;
    return this.tell({ ok: true, value: next, changed: true, previous });
  }

  private tell(r: ReloadResult<T>): ReloadResult<T> {
    for (const l of this.listeners) l(r);
    return r;
  }
}

/** The source's contents and digest, read now. Throws when it cannot be read. */
export function readSource(path: string | readonly string[]): SourceSnapshot {
  if (typeof path !== 'string') {
    const hash = createHash('sha256');
    const files = path.map((p) => {
      const content = readFileSync(p);
      hash.update(p).update('\0').update(content).update('\0');
      return content;
    });
    return { path: path.join(', '), digest: hash.digest('hex'), content: undefined, files };
  }
  if (!statSync(path).isDirectory()) {
    const content = readFileSync(path);
    return { path, digest: createHash('sha256').update(content).digest('hex'), content };
  }
  const hash = createHash('sha256');
  hashFolder(path, hash);
  return { path, digest: hash.digest('hex'), content: undefined };
}

function hashFolder(dir: string, hash: Hash): void {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) hashFolder(p, hash);
    else if (st.isFile()) hash.update(p).update('\0').update(readFileSync(p));
  }
}

/** Bytes read from disk at a time; what a chunked reader is handed is cut smaller (sliceBytes). */
const READ_BYTES = 1 << 20;

export interface ChunkOptions {
  /** The most bytes handed to `each` at once (default 1 MiB): the work between two yields. */
  sliceBytes?: number;
}

/**
 * Reads a file in chunks, handing each to `each` (which must copy what it keeps: the buffer
 * is reused) and returning the SHA-256 of everything read. The whole file is never held.
 */
export function readFileChunksSync(path: string, each: (chunk: Buffer) => void, opts: ChunkOptions = {}): string {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(READ_BYTES);
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      hash.update(chunk);
      slices(chunk, opts.sliceBytes, each);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/**
 * The same, yielding to the event loop (setImmediate) after every slice, so a large file
 * is read and processed between the requests a process answers meanwhile.
 */
export async function readFileChunks(
  path: string,
  each: (chunk: Buffer) => void,
  opts: ChunkOptions = {},
): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(READ_BYTES);
  const fh = await open(path, 'r');
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      const size = opts.sliceBytes ?? READ_BYTES;
      for (let at = 0; at < bytesRead; at += size) {
        each(chunk.subarray(at, Math.min(at + size, bytesRead)));
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

function slices(chunk: Buffer, size: number | undefined, each: (chunk: Buffer) => void): void {
  if (size === undefined || size >= chunk.length) {
    each(chunk);
    return;
  }
  for (let at = 0; at < chunk.length; at += size) each(chunk.subarray(at, Math.min(at + size, chunk.length)));
}
