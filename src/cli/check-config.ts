// `serve --check-config`: everything `serve` loads before it can decide — the config, the API
// key registry and the policy — loaded by the same code (buildRuntime), without listening.
// A config that is valid on paper but whose keys file or bundle is missing fails here.
import { KeysFileError } from '../auth/key-registry.js';
import type { LoadedConfig } from '../config/load.js';
import { silentLogger } from '../log/logger.js';
import { createMetricsRegistry } from '../metrics/registry.js';
import { SHIPPED_BUNDLE } from '../config/paths.mjs';
import { buildRuntime } from '../pipeline/build-runtime.js';
import { servesTls, TlsFiles, TlsFilesError } from '../server/tls-files.js';
import { describeTracing, tracingSettings, TracingConfigError } from '../tracing/settings.js';

export interface ConfigCheck {
  ok: boolean;
  /** What loaded, or what did not and why. */
  lines: string[];
}

export async function checkConfig(loaded: LoadedConfig): Promise<ConfigCheck> {
  const { config } = loaded;
  const lines = [`config: ${loaded.file ?? '(built in)'}: valid, ${config.endpoints.length} endpoint(s)`];
  let keys: number | undefined;
  let revision: string | undefined;
  let runtime;
  let tracing: string;
  try {
    tracing = describeTracing(tracingSettings(process.env));
  } catch (err) {
    if (err instanceof TracingConfigError) return { ok: false, lines: [...lines, `tracing: ${err.message}`] };
    throw err;
  }
  if (servesTls(config)) {
    try {
      const files = new TlsFiles({ config: config.tls!, logger: silentLogger(), events: {}, watch: false });
      const m = files.current;
      const t = config.tls!;
      lines.push(`TLS: ${m.subject.replace(/\n/g, ', ')} (${m.subjectAltName ?? 'no subjectAltName'}), expires ${m.notAfter.toISOString()}; gRPC ${t.grpc}, HTTP ${t.http}${config.listen.extAuthzHttp !== undefined ? `, HTTP authorization ${t.extAuthzHttp}` : ''}${t.clientCaFile ? `; client CA ${t.clientCaFile}` : ''}`);
      await files.close();
    } catch (err) {
      if (err instanceof TlsFilesError) return { ok: false, lines: [...lines, `TLS: ${err.message}`] };
      throw err;
    }
  }
  try {
    runtime = await buildRuntime(loaded, silentLogger(), createMetricsRegistry(), {
      watch: false,
      sharedLimits: false,
      tracing: false,
      events: {
        keysReload: (result, n) => {
          if (result === 'success') keys = n;
        },
        policyReload: (result, rev) => {
          if (result === 'success') revision = rev;
        },
      },
    });
  } catch (err) {
    if (err instanceof KeysFileError) return { ok: false, lines: [...lines, `API keys: ${err.message}`] };
    throw err;
  }
  try {
    const from = config.apiKeys.file ?? 'the config';
    lines.push(`API keys: ${keys ?? 0} from ${from}${config.apiKeys.keys.length ? ` (${config.apiKeys.keys.length} inline)` : ''}`);
    const source = config.policy?.rego ?? config.policy?.bundle ?? SHIPPED_BUNDLE;
    const notReady = runtime.notReady?.() ?? [];
    if (notReady.length > 0) {
      lines.push(...notReady.map((r) => `${r} (${source})`));
      return { ok: false, lines };
    }
    lines.push(`policy: revision ${revision ?? '?'} from ${source}`, tracing);
    return { ok: true, lines };
  } finally {
    await runtime.close();
  }
}
