// Wires the real phases from the config. `serve`, `check` and the tests all build the
// runtime here, so the CLI explains exactly what the server decides.
import type { Registry } from 'prom-client';
import { ModeAuthenticator } from '../auth/authenticator.js';
import { KeySource } from '../auth/key-source.js';
import { createTokenVerifier } from '../auth/oauth/jwt-verifier.js';
import { ProtectedResourceMetadata } from '../auth/protected-resource-metadata.js';
import type { LoadedConfig } from '../config/load.js';
import { createRuntime, type Runtime } from '../check/runtime.js';
import { EndpointRegistry } from '../endpoints/registry.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';

export interface BuildOptions {
  /** Reload the keys file on change (the server); `mcp-authz check` reads it once. */
  watch?: boolean;
  events?: ServiceEvents;
}

export async function buildRuntime(loaded: LoadedConfig, logger: Logger, _metrics: Registry, opts: BuildOptions = {}): Promise<Runtime> {
  const { config } = loaded;
  const events = opts.events ?? {};
  const endpoints = new EndpointRegistry(config.endpoints);
  const keys = new KeySource({
    file: config.apiKeys.file,
    inline: config.apiKeys.keys,
    pollIntervalMs: config.apiKeys.pollIntervalMs,
    logger,
    events,
    watch: opts.watch ?? true,
  });
  const verifier = config.oauth.issuers.length > 0 ? createTokenVerifier(config.oauth, { logger, events }) : undefined;
  return createRuntime(config, logger, {
    endpoints,
    authenticator: new ModeAuthenticator({ config, endpoints, keys: () => keys.current, verifier, events }),
    directResponder: new ProtectedResourceMetadata(config, endpoints),
    close: async () => {
      await Promise.allSettled([keys.close(), verifier?.close()]);
    },
  });
}
