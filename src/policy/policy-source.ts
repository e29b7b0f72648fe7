// The policy in force: a bundle file or folder, or a .rego folder compiled with opa, loaded
// at start and reloaded when it changes (src/config/watched-file.ts). A load that fails
// keeps the policy in use and says why; the authorizer reads `current` on every Check.
import { WatchedFile, type ReloadResult, type SourceSnapshot } from '../config/watched-file.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { loadBundle, type Bundle } from './bundle-loader.js';
import { compileRego } from './rego-compiler.js';
import { WasmEngine } from './wasm-engine.js';

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
}

/** A loaded policy: its engine, and whether it reads opa-envoy-plugin's input fields. */
export interface LoadedPolicy {
  engine: WasmEngine;
  /**
   * What the bundle declares in data.mcp_authz.input.envoy: a policy that never reads
   * opa-envoy-plugin's fields saves building them (≈20 µs a Check).
   */
  envoyInput: boolean;
}

export class PolicySource {
  private readonly file: WatchedFile<LoadedPolicy>;
  private readonly where: string;
  /** Why no policy is loaded (for /readyz), while there is none. */
  private missing = 'no policy loaded yet';

  constructor(
    private readonly opts: PolicySourceOptions,
    private readonly logger: Logger,
    private readonly events: ServiceEvents,
  ) {
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
    return this.file.current;
  }

  /** Reasons the policy phase cannot decide (empty when a policy is loaded). */
  notReady(): string[] {
    return this.file.current ? [] : [`policy: ${this.missing}`];
  }

  /** Called after every load attempt that read a changed source (readiness, tests). */
  onLoad(listener: (r: ReloadResult<LoadedPolicy>) => void): void {
    this.file.onReload(listener);
  }

  /** Loads now; concurrent calls are serialized and coalesced. */
  load(): Promise<ReloadResult<LoadedPolicy>> {
    return this.file.reload();
  }

  /** Reloads on change from now on. */
  watch(): void {
    this.file.start();
  }

  close(): Promise<void> {
    return this.file.close();
  }

  private async build(source: SourceSnapshot): Promise<LoadedPolicy> {
    const bundle: Bundle = this.opts.rego ? await compileRego(this.opts.rego, this.opts.entrypoint, this.opts.visibleEntrypoint) : loadBundle(source.path, source.content);
    const engine = await WasmEngine.create(bundle, {
      entrypoint: this.opts.entrypoint,
      ...(this.opts.visibleEntrypoint !== undefined ? { visibleEntrypoint: this.opts.visibleEntrypoint } : {}),
      maxMemoryPages: this.opts.maxMemoryPages,
      data: { ...bundle.data, ...this.opts.data },
    });
    return { engine, envoyInput: declaredEnvoyInput(bundle.data) };
  }

  private loaded(r: ReloadResult<LoadedPolicy>): void {
    if (r.ok) {
      this.events.policyReload?.('success', r.value.engine.revision);
      this.logger.info({ policy: this.where, policy_revision: r.value.engine.revision, previous_revision: r.previous?.engine.revision ?? null }, 'policy loaded');
      if (this.opts.visibleEntrypoint !== undefined && !r.value.engine.hasVisible) {
        this.logger.warn(
          { policy: this.where, policy_revision: r.value.engine.revision, entrypoint: this.opts.visibleEntrypoint },
          'the policy has no list visibility rule: list responses filtered through ext_proc are withheld (docs/ext_proc.md)',
        );
      }
      return;
    }
    const error = r.unreadable ? `cannot read policy ${this.opts.rego ? '.rego folder' : 'bundle'} ${this.where}: ${message(r.error)}` : message(r.error);
    const kept = r.kept?.engine.revision;
    this.missing = error;
    this.events.policyReload?.('failure', kept);
    this.logger.error(
      { policy: this.where, err: error, policy_revision_kept: kept ?? null },
      kept ? 'policy reload failed; the previous policy stays in use' : 'policy load failed; no policy is loaded and Checks are denied',
    );
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A bundle may declare that its policy never reads opa-envoy-plugin's input fields. */
function declaredEnvoyInput(data: Record<string, unknown>): boolean {
  const settings = data.mcp_authz as { input?: { envoy?: unknown } } | undefined;
  return settings?.input?.envoy !== false;
}
