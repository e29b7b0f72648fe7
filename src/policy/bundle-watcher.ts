// Loads the policy (a bundle file or folder, or a .rego folder compiled with opa) and
// reloads it when it changes. A load that fails keeps the policy in use and says why.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { loadBundle, type Bundle } from './bundle-loader.js';
import type { PolicyAuthorizer } from './policy-authorizer.js';
import { compileRego } from './rego-compiler.js';
import { WasmEngine } from './wasm-engine.js';

export interface PolicySourceOptions {
  /** A bundle .tar.gz file or unpacked folder. */
  bundle?: string;
  /** A .rego folder, compiled with opa on load and on change (development). */
  rego?: string;
  entrypoint: string;
  maxMemoryPages: number;
  /** The data document without the bundle's own data.json. */
  data: Record<string, unknown>;
  /** Coalesces a burst of file events into one reload. */
  debounceMs?: number;
  /** How often to re-check the source when file events are missed (default 5 s). */
  pollIntervalMs?: number;
}

export type LoadResult = { ok: true; revision: string; changed: boolean } | { ok: false; error: string };

export class PolicySource {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private poller: NodeJS.Timeout | undefined;
  private running: Promise<LoadResult> | undefined;
  private again = false;
  private fingerprint: string | undefined;
  private failedFingerprint: string | undefined;
  private readonly listeners = new Set<(r: LoadResult) => void>();

  constructor(
    private readonly opts: PolicySourceOptions,
    private readonly authorizer: PolicyAuthorizer,
    private readonly logger: Logger,
    private readonly events: ServiceEvents,
  ) {}

  /** Called after every load attempt (readiness, tests). */
  onLoad(listener: (r: LoadResult) => void): void {
    this.listeners.add(listener);
  }

  /** Loads now; concurrent calls are serialized and coalesced. */
  load(): Promise<LoadResult> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let r: LoadResult;
      do {
        this.again = false;
        r = await this.loadOnce();
      } while (this.again);
      this.running = undefined;
      return r;
    })();
    return this.running;
  }

  private async loadOnce(): Promise<LoadResult> {
    const where = this.opts.rego ?? this.opts.bundle!;
    let result: LoadResult;
    const fingerprint = this.sourceFingerprint();
    if (fingerprint !== undefined && fingerprint === this.failedFingerprint) {
      // The same broken source again (a poll): already logged and counted once.
      return { ok: false, error: 'unchanged since the last failed load' };
    }
    try {
      if (fingerprint !== undefined && fingerprint === this.fingerprint && this.authorizer.revision !== undefined) {
        return { ok: true, revision: this.authorizer.revision, changed: false };
      }
      const bundle: Bundle = this.opts.rego ? await compileRego(this.opts.rego, this.opts.entrypoint) : loadBundle(this.opts.bundle!);
      const engine = await WasmEngine.create(bundle, {
        entrypoint: this.opts.entrypoint,
        maxMemoryPages: this.opts.maxMemoryPages,
        data: { ...bundle.data, ...this.opts.data },
      });
      const previous = this.authorizer.revision;
      this.authorizer.use(engine, declaredEnvoyInput(bundle.data));
      this.fingerprint = fingerprint;
      this.failedFingerprint = undefined;
      this.events.policyReload?.('success', engine.revision);
      this.logger.info({ policy: where, policy_revision: engine.revision, previous_revision: previous ?? null }, 'policy loaded');
      result = { ok: true, revision: engine.revision, changed: true };
    } catch (err) {
      const error = (err as Error).message ?? String(err);
      this.failedFingerprint = fingerprint;
      this.authorizer.loadFailed(error);
      this.events.policyReload?.('failure', this.authorizer.revision);
      this.logger.error({ policy: where, err: error, policy_revision_kept: this.authorizer.revision ?? null }, this.authorizer.revision ? 'policy reload failed; the previous policy stays in use' : 'policy load failed; no policy is loaded and Checks are denied');
      result = { ok: false, error };
    }
    for (const l of this.listeners) l(result);
    return result;
  }

  /** A hash of what the policy is built from, so touching a file without changing it is not a reload. */
  private sourceFingerprint(): string | undefined {
    const hash = createHash('sha256');
    const add = (p: string) => {
      const st = statSync(p);
      if (st.isDirectory()) {
        for (const n of readdirSync(p).sort()) add(join(p, n));
      } else if (st.isFile()) {
        hash.update(p).update('\0').update(readFileSync(p));
      }
    };
    try {
      add(this.opts.rego ?? this.opts.bundle!);
    } catch {
      return undefined;
    }
    return hash.digest('hex');
  }

  /** Watches the source; a change triggers a (debounced) reload. */
  watch(): void {
    const target = this.opts.rego ?? this.opts.bundle!;
    let isDir = false;
    try {
      isDir = statSync(target).isDirectory();
    } catch {
      // a missing file: watch its folder and load when it appears
    }
    const onEvent = (_e: string, file: string | Buffer | null) => {
      // Kubernetes volume updates swap a "..data" symlink rather than touching the file itself.
      if (!isDir && file !== null && String(file) !== basename(target) && !String(file).startsWith('..')) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.load(), this.opts.debounceMs ?? 50);
    };
    try {
      // Files are usually replaced by rename (atomic writes), which a watch on the file itself misses.
      this.watcher = isDir ? watch(target, { recursive: true }, onEvent) : watch(dirname(target), onEvent);
      this.watcher.on('error', (err) => this.logger.warn({ err: err.message, policy: target }, 'policy watch failed; reloads stop'));
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, policy: target }, 'cannot watch the policy for changes; polling only');
    }
    // A safety net where file events are unreliable (network volumes): an unchanged source is a cheap no-op.
    this.poller = setInterval(() => void this.load(), this.opts.pollIntervalMs ?? 5000);
    this.poller.unref();
  }

  close(): void {
    clearTimeout(this.timer);
    clearInterval(this.poller);
    this.watcher?.close();
  }
}

/** A bundle may declare that its policy never reads opa-envoy-plugin's input fields. */
function declaredEnvoyInput(data: Record<string, unknown>): boolean {
  const settings = data.mcp_authz as { input?: { envoy?: unknown } } | undefined;
  return settings?.input?.envoy !== false;
}
