// Keeps the current KeyRegistry: loads the keys file at start (a bad file stops start-up),
// then reloads it on change (src/config/watched-file.ts). The file is read in chunks, never
// held whole. A reload builds a new registry in steps that yield to Checks, and swaps it in
// one assignment; a bad file keeps the old one, logs why and reports a failure.
import type { ApiKeyEntry } from '../config/schema.js';
import { WatchedFile, type ReloadResult } from '../config/watched-file.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { demoKeyWarning, type ListenAddresses } from './demo-keys.js';
import {
  buildKeyRegistry,
  type KeyRegistry,
  KeysFileError,
  loadKeysFileInSteps,
  loadKeysFileSync,
} from './key-registry.js';

export interface KeySourceOptions {
  file: string | undefined;
  inline: readonly ApiKeyEntry[];
  pollIntervalMs: number;
  logger: Logger;
  events: ServiceEvents;
  /** Watch the file for changes (the server); off for one-shot uses such as `mcp-authz check`. */
  watch: boolean;
  /** The service's listen addresses: the public demo keys loaded beyond loopback are a loud warning. */
  listen?: ListenAddresses;
}

export class KeySource {
  private readonly fixed: KeyRegistry | undefined;
  private readonly file: WatchedFile<KeyRegistry> | undefined;

  constructor(private readonly opts: KeySourceOptions) {
    const { file, inline } = opts;
    if (!file) {
      this.fixed = buildKeyRegistry([], inline, 'config');
    } else {
      let initial;
      try {
        initial = loadKeysFileSync(file, inline, file);
      } catch (err) {
        // Not an error of the file system's (no syscall): the file's contents, worded already.
        if (err instanceof KeysFileError || (err as NodeJS.ErrnoException).syscall === undefined) throw err;
        throw new KeysFileError(file, [
          `cannot read the keys file (apiKeys.file): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        ]);
      }
      // The file is read in chunks, never held whole; a reload yields to Checks between
      // steps, and the keys in force answer until it is done.
      this.file = new WatchedFile<KeyRegistry>({
        path: file,
        read: 'stream',
        build: (s) => loadKeysFileInSteps(file, inline, file, s.digest, (p) => opts.events.keysReloadStep?.(p)),
        pollIntervalMs: opts.pollIntervalMs,
        log: opts.logger,
        what: 'the keys file',
        initial: { value: initial.registry, digest: initial.digest },
      });
      this.file.onReload((r) => this.reloaded(file, r));
      if (opts.watch) this.file.start();
    }
    opts.events.keysReload?.('success', this.current.size);
    this.warnOnDemoKeys(this.current);
  }

  private warnOnDemoKeys(registry: KeyRegistry): void {
    const warning = this.opts.listen && demoKeyWarning(registry, this.opts.listen);
    if (warning) this.opts.logger.warn({ demo_keys: warning.keys, listen: warning.exposed }, warning.message);
  }

  /** The registry in force; replaced whole on a successful reload. */
  get current(): KeyRegistry {
    return this.fixed ?? this.file!.current!;
  }

  /** Re-reads the keys file now; resolves when the reload (or the decision to keep the old registry) is done. */
  async reload(): Promise<void> {
    await this.file?.reload();
  }

  async close(): Promise<void> {
    await this.file?.close();
  }

  private reloaded(file: string, r: ReloadResult<KeyRegistry>): void {
    const { logger, events } = this.opts;
    if (r.ok) {
      logger.info({ keys_file: file, keys: r.value.size }, 'API keys reloaded');
      events.keysReload?.('success', r.value.size);
      this.warnOnDemoKeys(r.value);
      return;
    }
    const err = r.error as NodeJS.ErrnoException;
    const problems = r.unreadable
      ? [`cannot read the keys file: ${err.code ?? err.message}`]
      : err instanceof KeysFileError
        ? err.problems
        : [err.message];
    logger.warn(
      { keys_file: file, problems, keys: this.current.size },
      'API keys reload failed; the previous keys stay in force',
    );
    events.keysReload?.('failure', this.current.size);
  }
}
