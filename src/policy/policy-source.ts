// The policy in force: a bundle file or folder, or a .rego folder compiled with opa, loaded
// at start and reloaded when it changes (src/config/watched-file.ts); or a bundle from a
// bundle service (src/policy/bundle-poller.ts), verified against its signature before it is
// built; or, in a cluster worker, the bundle the primary downloaded, activated when every
// worker has built it. A load that fails keeps the policy in use and says why; the
// authorizer reads `current` on every Check. When the endpoint set changes live (stores.md),
// the policy is built again with the new data.endpoints, and each endpoint set reads it
// through its own PolicyView, which never hands it a policy built with another set's data.
import type { BundleSourceConfig } from '../config/management.js';
import type { RemoteService } from '../config/remote-service.js';
import { WatchedFile, type ReloadResult, type SourceSnapshot } from '../config/watched-file.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { bundleFromFiles, loadBundle, readBundleArchive, type Bundle } from './bundle-loader.js';
import { BundlePoller, type BundleStatus } from './bundle-poller.js';
import { BundleRefused, verificationKeys, verifyBundleFiles } from './bundle-signature.js';
import { compileRego } from './rego-compiler.js';
import { WasmEngine } from './wasm-engine.js';
import type { GrantsInput } from './policy-input.js';

export interface PolicySourceOptions {
  /** A bundle .tar.gz file or unpacked folder. */
  bundle?: string;
  /** A .rego folder, compiled with opa on load and on change (development). */
  rego?: string;
  entrypoint: string;
  /** The list visibility rule, loaded beside the decision when the bundle has it. */
  visibleEntrypoint?: string;
  maxMemoryPages: number;
  /** The data document without the bundle's own data.json. */
  data: Record<string, unknown>;
  /** How often to re-check the source when file events are missed (default 5 s). */
  pollIntervalMs?: number;
  /** A bundle from a bundle service (OPA's `bundles` entry), instead of `bundle` and `rego`. */
  remote?: RemoteBundleOptions;
}

export interface RemoteBundleOptions {
  name: string;
  config: BundleSourceConfig;
  /** The service to poll; absent in a cluster worker, which is handed the bundle by the primary. */
  service?: RemoteService;
  keys: Readonly<Record<string, import('../config/management.js').VerificationKeyConfig>>;
  onStatus?(status: BundleStatus): void;
}

/** A loaded policy: its engine, and whether it reads opa-envoy-plugin's input fields. */
export interface LoadedPolicy {
  engine: WasmEngine;
  /**
   * What the bundle declares in data.mcp_authz.input.envoy: a policy that never reads
   * opa-envoy-plugin's fields saves building them (≈20 µs a Check).
   */
  envoyInput: boolean;
  /**
   * What the bundle declares in data.mcp_authz.input.grants: "applicable" when its policy reads
   * grants only to match the items a request names, so the input carries only those that can.
   */
  grantsInput: GrantsInput;
  /** The data document it was built with: its identity tells which endpoint set it serves. */
  data: Record<string, unknown>;
  /** What it was built from, to build it again with other data. */
  bundle: Bundle;
}

export class PolicySource {
  private readonly file: WatchedFile<LoadedPolicy> | undefined;
  private readonly poller: BundlePoller | undefined;
  private readonly keys: ReturnType<typeof verificationKeys> | undefined;
  /** The remote bundle in force (remote and cluster-fed sources). */
  private remoteValue: LoadedPolicy | undefined;
  private readonly remoteListeners = new Set<(r: ReloadResult<LoadedPolicy>) => void>();
  private readonly where: string;
  /** Why no policy is loaded (for /readyz), while there is none. */
  private missing = 'no policy loaded yet';
  /** The data document every build uses (opts.data until the endpoint set changes). */
  private data: Record<string, unknown>;
  /** The last policy in force built with each data document: an endpoint set's policy after the set was replaced. */
  private readonly lastFor = new WeakMap<Record<string, unknown>, LoadedPolicy>();

  constructor(
    private readonly opts: PolicySourceOptions,
    private readonly logger: Logger,
    private readonly events: ServiceEvents,
  ) {
    this.data = opts.data;
    const remote = opts.remote;
    if (remote) {
      this.keys = remote.config.signing ? verificationKeys(remote.keys) : undefined;
      this.where = remote.service
        ? remote.service.url(remote.config.resource ?? `bundles/${remote.name}`).href
        : `bundle ${remote.name} (from the cluster primary)`;
      this.missing = remote.service
        ? `bundle ${remote.name} not downloaded yet from ${this.where}`
        : `waiting for bundle ${remote.name} from the cluster primary`;
      if (remote.service) {
        this.poller = new BundlePoller({
          name: remote.name,
          service: remote.service,
          config: remote.config,
          logger,
          events,
          activate: async (bytes, origin) => {
            const policy = await this.stage(bytes, origin);
            this.commit(policy);
            return policy.engine.revision;
          },
          ...(remote.onStatus ? { onStatus: remote.onStatus } : {}),
        });
      }
      return;
    }
    this.where = opts.rego ?? opts.bundle!;
    this.file = new WatchedFile({
      path: this.where,
      build: (source) => this.build(source),
      pollIntervalMs: opts.pollIntervalMs ?? 5000,
      log: logger,
      what: 'the policy',
    });
    this.file.onReload((r) => this.loaded(r));
  }

  /** The policy in force, or undefined while none has loaded. */
  get current(): LoadedPolicy | undefined {
    return this.file ? this.file.current : this.remoteValue;
  }

  /** The remote bundle's state in OPA's status shape (undefined for a local source). */
  get bundleStatus(): BundleStatus | undefined {
    return this.poller?.status;
  }

  /** Reasons the policy phase cannot decide (empty when a policy is loaded). */
  notReady(): string[] {
    return this.current ? [] : [`policy: ${this.missing}`];
  }

  /** Called after every load attempt that read a changed source (readiness, tests). */
  onLoad(listener: (r: ReloadResult<LoadedPolicy>) => void): void {
    if (this.file) this.file.onReload(listener);
    else this.remoteListeners.add(listener);
  }

  /** Loads now (a remote bundle: one request); concurrent calls are serialized and coalesced. */
  async load(): Promise<ReloadResult<LoadedPolicy>> {
    if (this.file) return this.file.reload();
    if (this.poller) await this.poller.once();
    return this.remoteValue
      ? { ok: true, value: this.remoteValue, changed: false }
      : { ok: false, error: new Error(this.missing), unreadable: true, kept: undefined };
  }

  /**
   * The policy in force built again with another data document (a new endpoint set's
   * data.endpoints), not yet in force; undefined while no policy is loaded.
   */
  async rebuildWith(data: Record<string, unknown>): Promise<LoadedPolicy | undefined> {
    const now = this.current;
    return now ? this.buildFrom(now.bundle, data) : undefined;
  }

  /**
   * Every later build uses `data`; `policy` (from rebuildWith) goes in force unless another
   * policy was loaded meanwhile, which is then built again with `data`.
   */
  useData(data: Record<string, unknown>, policy: LoadedPolicy | undefined): void {
    this.data = data;
    if (policy && this.current?.bundle === policy.bundle) this.replace(policy);
    else this.refreshData();
  }

  /** A policy in force that was built with older data is built again with the current data. */
  private refreshData(): void {
    const now = this.current;
    if (now === undefined || now.data === this.data) return;
    const data = this.data;
    this.buildFrom(now.bundle, data).then(
      (policy) => {
        if (this.current === now && this.data === data) this.replace(policy);
        else this.refreshData();
      },
      (err: unknown) =>
        this.logger.error({ policy: this.where, err: message(err) }, 'policy rebuild with the new endpoints failed'),
    );
  }

  private replace(policy: LoadedPolicy): void {
    if (this.file) this.file.replace(policy);
    else this.remoteValue = policy;
    this.lastFor.set(policy.data, policy);
  }

  /** The last policy in force that was built with `data` (undefined if none was). */
  lastBuiltWith(data: Record<string, unknown>): LoadedPolicy | undefined {
    const now = this.current;
    return now?.data === data ? now : this.lastFor.get(data);
  }

  /** Reloads on change from now on. */
  watch(): void {
    this.file?.start();
    this.poller?.start();
  }

  close(): Promise<void> {
    return this.file ? this.file.close() : this.poller ? this.poller.close() : Promise.resolve();
  }

  /**
   * Unpacks, verifies (when signing is configured) and builds a downloaded bundle without
   * putting it in force; a refusal is logged, counted and thrown.
   */
  async stage(bytes: Buffer, origin: string): Promise<LoadedPolicy> {
    const remote = this.opts.remote!;
    try {
      const files = readBundleArchive(origin, bytes, remote.config.size_limit_bytes);
      if (this.keys)
        await verifyBundleFiles(origin, files, this.keys, {
          keyid: remote.config.signing?.keyid,
          scope: remote.config.signing?.scope,
        });
      return await this.buildFrom(bundleFromFiles(origin, files));
    } catch (err) {
      this.refused(err);
      throw err;
    }
  }

  /** Puts a staged bundle in force (atomically: the next Check reads it). */
  commit(policy: LoadedPolicy): void {
    const previous = this.remoteValue;
    this.remoteValue = policy;
    const r: ReloadResult<LoadedPolicy> = { ok: true, value: policy, changed: true, previous };
    this.loaded(r);
    for (const l of this.remoteListeners) l(r);
  }

  private refused(err: unknown): void {
    const remote = this.opts.remote!;
    const reason = err instanceof BundleRefused ? err.reason : 'invalid';
    this.events.bundleRefused?.(remote.name, reason);
    const r: ReloadResult<LoadedPolicy> = { ok: false, error: err, unreadable: false, kept: this.remoteValue };
    this.loaded(r);
    for (const l of this.remoteListeners) l(r);
  }

  private async build(source: SourceSnapshot): Promise<LoadedPolicy> {
    const bundle: Bundle = this.opts.rego
      ? await compileRego(this.opts.rego, this.opts.entrypoint, this.opts.visibleEntrypoint)
      : loadBundle(source.path, source.content);
    return this.buildFrom(bundle);
  }

  private async buildFrom(bundle: Bundle, data = this.data): Promise<LoadedPolicy> {
    const engine = await WasmEngine.create(bundle, {
      entrypoint: this.opts.entrypoint,
      ...(this.opts.visibleEntrypoint !== undefined ? { visibleEntrypoint: this.opts.visibleEntrypoint } : {}),
      maxMemoryPages: this.opts.maxMemoryPages,
      data: { ...bundle.data, ...data },
    });
    return {
      engine,
      envoyInput: declaredEnvoyInput(bundle.data),
      grantsInput: declaredGrantsInput(bundle.data),
      data,
      bundle,
    };
  }

  private loaded(r: ReloadResult<LoadedPolicy>): void {
    if (r.ok) {
      this.lastFor.set(r.value.data, r.value);
      // Built while the endpoint set changed: built again with the new set's data.
      if (r.value.data !== this.data) queueMicrotask(() => this.refreshData());
      this.events.policyReload?.('success', r.value.engine.revision);
      this.logger.info(
        {
          policy: this.where,
          policy_revision: r.value.engine.revision,
          previous_revision: r.previous?.engine.revision ?? null,
        },
        'policy loaded',
      );
      if (this.opts.visibleEntrypoint !== undefined && !r.value.engine.hasVisible) {
        this.logger.warn(
          { policy: this.where, policy_revision: r.value.engine.revision, entrypoint: this.opts.visibleEntrypoint },
          'the policy has no list visibility rule: list responses filtered through ext_proc are withheld (docs/ext_proc.md)',
        );
      }
      return;
    }
    const error = r.unreadable
      ? `cannot read policy ${this.opts.rego ? '.rego folder' : 'bundle'} ${this.where}: ${message(r.error)}`
      : message(r.error);
    const kept = r.kept?.engine.revision;
    this.missing = error;
    this.events.policyReload?.('failure', kept);
    const refusal = r.error instanceof BundleRefused ? r.error.reason : undefined;
    this.logger.error(
      { policy: this.where, err: error, policy_revision_kept: kept ?? null, ...(refusal ? { refused: refusal } : {}) },
      refusal
        ? kept
          ? 'bundle refused: its signature does not hold; the previous policy stays in use'
          : 'bundle refused: its signature does not hold; no policy is loaded and Checks are denied'
        : kept
          ? 'policy reload failed; the previous policy stays in use'
          : 'policy load failed; no policy is loaded and Checks are denied',
    );
  }
}

/**
 * The policy as one endpoint set sees it: the policy in force while it was built with that
 * set's data, else the last one that was. A Check never evaluates data.endpoints of another
 * endpoint set than the one its endpoint was chosen from.
 */
export class PolicyView {
  constructor(
    private readonly source: PolicySource,
    readonly data: Record<string, unknown>,
  ) {}

  get current(): LoadedPolicy | undefined {
    return this.source.lastBuiltWith(this.data);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A bundle may declare that its policy reads only the grants that can apply to a request. */
function declaredGrantsInput(data: Record<string, unknown>): GrantsInput {
  const settings = data.mcp_authz as { input?: { grants?: unknown } } | undefined;
  return settings?.input?.grants === 'applicable' ? 'applicable' : 'all';
}

/** A bundle may declare that its policy never reads opa-envoy-plugin's input fields. */
function declaredEnvoyInput(data: Record<string, unknown>): boolean {
  const settings = data.mcp_authz as { input?: { envoy?: unknown } } | undefined;
  return settings?.input?.envoy !== false;
}
