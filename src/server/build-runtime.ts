// Wires the real phases from the config. `serve`, `check` and the tests all build the
// runtime here, so the CLI explains exactly what the server decides.
import type { Registry } from 'prom-client';
import { ModeAuthenticator } from '../auth/authenticator.js';
import { KeySource } from '../auth/key-source.js';
import { createTokenVerifier } from '../auth/oauth/jwt-verifier.js';
import { ProtectedResourceMetadata } from '../auth/protected-resource-metadata.js';
import type { LoadedConfig } from '../config/load.js';
import { createRuntime, type Runtime } from '../check/runtime.js';
import { fanOut } from '../check/observers.js';
import type { Observer } from '../check/phases.js';
import { EndpointRegistry } from '../endpoints/registry.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { PolicySource } from '../policy/bundle-watcher.js';
import { DecisionLog } from '../policy/decision-log.js';
import { InputBuilder } from '../policy/policy-input.js';
import { PolicyAuthorizer } from '../policy/policy-authorizer.js';
import { SHIPPED_BUNDLE } from '../policy/rego-compiler.js';

export interface BuildOptions {
  events?: ServiceEvents;
  /** Watch keys and policy for changes (serve: yes; the one-shot `check` command: no). */
  watch?: boolean;
}

export async function buildRuntime(loaded: LoadedConfig, logger: Logger, _metrics: Registry, opts: BuildOptions = {}): Promise<Runtime> {
  const { config } = loaded;
  const events = opts.events ?? {};
  const watch = opts.watch ?? true;
  const endpoints = new EndpointRegistry(config.endpoints);

  // Authentication: the API key registry and the OAuth token verifier.
  const keys = new KeySource({
    file: config.apiKeys.file,
    inline: config.apiKeys.keys,
    pollIntervalMs: config.apiKeys.pollIntervalMs,
    logger,
    events,
    watch,
  });
  const verifier = config.oauth.issuers.length > 0 ? createTokenVerifier(config.oauth, { logger, events }) : undefined;

  // Authorization: the policy bundle, evaluated in-process as WASM.
  const policy = config.policy ?? { entrypoint: 'mcp/authz/decision', dryRun: false, maxMemoryPages: 1024, envoyInput: true, data: {} };
  const authorizer = new PolicyAuthorizer({
    input: new InputBuilder(endpoints.all, {
      envoyInput: policy.envoyInput,
      publicBaseUrl: config.publicBaseUrl,
      keyHeader: config.apiKeys.header,
      keyQueryParams: config.apiKeys.queryParams,
    }),
    dryRun: policy.dryRun,
    events,
    logger,
  });
  const endpointData = Object.fromEntries(endpoints.all.map(({ metadataPath: _m, ...e }) => [e.name, e]));
  const source = new PolicySource(
    {
      ...(policy.rego !== undefined ? { rego: policy.rego } : { bundle: policy.bundle ?? SHIPPED_BUNDLE }),
      entrypoint: policy.entrypoint,
      maxMemoryPages: policy.maxMemoryPages,
      // The service's own view wins over static data: a policy always sees the real endpoints.
      data: { ...policy.data, endpoints: endpointData },
    },
    authorizer,
    logger,
    events,
  );
  // A policy that fails to load leaves the service NOT_SERVING (every Check a 503 deny) until a good one appears.
  await source.load();
  if (watch) source.watch();

  const observers: Observer[] = [];
  if (config.decisionLog.enabled) observers.push(new DecisionLog(logger, { sampleRate: config.decisionLog.sampleRate }));
  const readinessListeners = new Set<() => void>();
  source.onLoad(() => readinessListeners.forEach((l) => l()));

  return createRuntime(config, logger, {
    endpoints,
    authenticator: new ModeAuthenticator({ config, endpoints, keys: () => keys.current, verifier, events }),
    directResponder: new ProtectedResourceMetadata(config, endpoints),
    authorizer,
    observer: fanOut(observers, (err) => logger.warn({ err }, 'a decision observer failed')),
    notReady: () => authorizer.notReady(),
    onReadinessChange: (l) => readinessListeners.add(l),
    close: async () => {
      await Promise.allSettled([keys.close(), verifier?.close(), source.close()]);
    },
  });
}
