// Keeps the current KeyRegistry: loads the keys file at start (a bad file stops start-up),
// then reloads it on change — fs.watch on its folder (editors and Kubernetes replace files
// by rename, which a watch on the file itself would lose) plus a slow poll as a safety net.
// A reload builds a new registry and swaps it in one assignment; a bad file keeps the old
// one, logs why and reports a failure.
import { createHash } from 'node:crypto';
import { watch, readFileSync, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { ApiKeyEntry } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { buildKeyRegistry, KeyRegistry, KeysFileError, parseKeysFile } from './key-registry.js';

export interface KeySourceOptions {
  file: string | undefined;
  inline: readonly ApiKeyEntry[];
  pollIntervalMs: number;
  logger: Logger;
  events: ServiceEvents;
  /** Watch the file for changes (the server); off for one-shot uses such as `mcp-authz check`. */
  watch: boolean;
}

const DEBOUNCE_MS = 50;

export class KeySource {
  /** The registry in force; replaced whole on a successful reload. */
  current: KeyRegistry;
  private lastDigest: string | undefined;
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private again = false;
  private closed = false;

  constructor(private readonly opts: KeySourceOptions) {
    this.current = this.loadInitial();
    opts.events.keysReload?.('success', this.current.size);
    if (opts.watch && opts.file) this.startWatching(opts.file);
  }

  /** Re-reads the keys file now; resolves when the reload (or the decision to keep the old registry) is done. */
  reload(): Promise<void> {
    if (this.reloading) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = this.reloadOnce().finally(() => {
      this.reloading = undefined;
      if (this.again && !this.closed) {
        this.again = false;
        void this.reload();
      }
    });
    return this.reloading;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.debounce) clearTimeout(this.debounce);
    await this.reloading;
  }

  private loadInitial(): KeyRegistry {
    const { file, inline } = this.opts;
    if (!file) return buildKeyRegistry([], inline, 'config');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new KeysFileError(file, [`cannot read the keys file (apiKeys.file): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
    }
    this.lastDigest = digest(text);
    return buildKeyRegistry(parseKeysFile(text, file), inline, file);
  }

  private async reloadOnce(): Promise<void> {
    const file = this.opts.file!;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      this.failed(file, [`cannot read the keys file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
      return;
    }
    const d = digest(text);
    if (d === this.lastDigest) return;
    try {
      const next = buildKeyRegistry(parseKeysFile(text, file), this.opts.inline, file);
      if (this.closed) return;
      this.current = next;
      this.lastDigest = d;
      this.opts.logger.info({ keys_file: file, keys: next.size }, 'API keys reloaded');
      this.opts.events.keysReload?.('success', next.size);
    } catch (err) {
      this.lastDigest = d;
      this.failed(file, err instanceof KeysFileError ? err.problems : [(err as Error).message]);
    }
  }

  private failed(file: string, problems: string[]): void {
    this.opts.logger.warn({ keys_file: file, problems, keys: this.current.size }, 'API keys reload failed; the previous keys stay in force');
    this.opts.events.keysReload?.('failure', this.current.size);
  }

  private startWatching(file: string): void {
    const name = basename(file);
    const schedule = () => {
      if (this.closed) return;
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => void this.reload(), DEBOUNCE_MS);
      this.debounce.unref();
    };
    try {
      // Any change in the folder: Kubernetes swaps a "..data" symlink rather than the file itself.
      this.watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
        if (changed === null || changed === name || changed.startsWith('..')) schedule();
      });
      this.watcher.on('error', (err) => {
        this.opts.logger.warn({ keys_file: file, err: err.message }, 'watching the keys file failed; polling only');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.opts.logger.warn({ keys_file: file, err: (err as Error).message }, 'cannot watch the keys file; polling only');
    }
    this.pollTimer = setInterval(() => void this.reload(), this.opts.pollIntervalMs);
    this.pollTimer.unref();
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
