// A secret the service reads from a mounted file (a Kubernetes Secret): a client secret, a
// signing key, an actor token, a static header value. Reloaded on change through the one
// reload mechanism (WatchedFile); a broken new file keeps the value in force. Values are
// never logged, only the path and what went wrong.
import { WatchedFile } from '../config/watched-file.js';
import type { Logger } from '../log/logger.js';

export interface SecretFileOptions<T> {
  path: string;
  /** Names the file in log lines ("the client secret of endpoint files"). */
  what: string;
  /** Builds the value from the file's text (trimmed); throws for an unusable file. */
  parse(text: string): T | Promise<T>;
  pollIntervalMs: number;
  logger: Logger;
  /** Told when a new value replaces the one in force (caches built on the old one are dropped). */
  onChange?: () => void;
}

export class SecretFile<T> {
  private readonly file: WatchedFile<T>;

  constructor(opts: SecretFileOptions<T>) {
    this.file = new WatchedFile<T>({
      path: opts.path,
      what: opts.what,
      pollIntervalMs: opts.pollIntervalMs,
      log: opts.logger,
      build: async (source) => {
        const text = (source.content ?? Buffer.alloc(0)).toString('utf8').trim();
        if (text === '') throw new Error('the file is empty');
        return opts.parse(text);
      },
    });
    this.file.onReload((r) => {
      if (r.ok) {
        if (r.changed && r.previous !== undefined) opts.onChange?.();
        return;
      }
      const why = r.error instanceof Error ? r.error.message : String(r.error);
      opts.logger.warn(
        { source: opts.path, err: why, kept: r.kept !== undefined },
        `upstream credentials: cannot load ${opts.what}${r.kept !== undefined ? '; the previous value stays in force' : ''}`,
      );
    });
  }

  /** The value in force, or undefined while the file has never loaded. */
  get current(): T | undefined {
    return this.file.current;
  }

  /** Loads now; a missing file is logged and waited for (requests are denied meanwhile). */
  async load(watch: boolean): Promise<void> {
    await this.file.reload();
    if (watch) this.file.start();
  }

  reload(): Promise<unknown> {
    return this.file.reload();
  }

  close(): Promise<void> {
    return this.file.close();
  }
}
