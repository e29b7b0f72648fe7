// `serve --check-config`: everything `serve` loads before it can decide — the config, the API
// key registry and the policy — loaded by the same code (buildRuntime), without listening.
// A config that is valid on paper but whose keys file or bundle is missing fails here.
// The result is printed as lines, or with --json as one object for scripts and CI.
import { readFileSync } from 'node:fs';
import { KeyRing } from '../upstream/connections-keys.js';
import { KeysFileError } from '../auth/key-registry.js';
import type { LoadedConfig } from '../config/load.js';
import { collectingLogger, silentLogger } from '../log/logger.js';
import { createMetricsRegistry } from '../metrics/registry.js';
import { SHIPPED_BUNDLE } from '../config/paths.mjs';
import { buildRuntime } from '../pipeline/build-runtime.js';
import { servesTls, TlsFiles, TlsFilesError } from '../server/tls-files.js';
import { describeTracing, tracingSettings, TracingConfigError } from '../tracing/settings.js';

/** One thing that stops serve from deciding: which part, and why. */
export interface ConfigProblem {
  part: 'config' | 'apiKeys' | 'policy' | 'tracing' | 'tls' | 'upstream';
  message: string;
}

/** What `serve --check-config --json` prints. */
export interface ConfigReport {
  ok: boolean;
  config: { file: string | null; endpoints: string[] };
  apiKeys: { count: number; file: string | null; inline: number } | null;
  policy: { revision: string; source: string } | null;
  tracing: string | null;
  /** The certificate the ports serve (tls.*File), when any port serves TLS. */
  tls: {
    subject: string;
    subjectAltName: string | null;
    notAfter: string;
    grpc: string;
    http: string;
    extAuthzHttp: string | null;
    clientCaFile: string | null;
  } | null;
  problems: ConfigProblem[];
  /** Loads, but should not be served like this (the public demo keys beyond loopback). */
  warnings: string[];
}

export interface ConfigCheck {
  ok: boolean;
  /** What loaded, or what did not and why. */
  lines: string[];
  report: ConfigReport;
}

/** The report of a config that did not even parse (ConfigError's problems). */
export function invalidConfigReport(file: string | undefined, problems: readonly string[]): ConfigReport {
  return {
    ok: false,
    config: { file: file ?? null, endpoints: [] },
    apiKeys: null,
    policy: null,
    tracing: null,
    tls: null,
    problems: problems.map((message) => ({ part: 'config', message })),
    warnings: [],
  };
}

export async function checkConfig(loaded: LoadedConfig): Promise<ConfigCheck> {
  const { config } = loaded;
  const report: ConfigReport = {
    ok: false,
    config: { file: loaded.file ?? null, endpoints: config.endpoints.map((e) => e.name) },
    apiKeys: null,
    policy: null,
    tracing: null,
    tls: null,
    problems: [],
    warnings: [],
  };
  const lines = [`config: ${loaded.file ?? '(built in)'}: valid, ${config.endpoints.length} endpoint(s)`];
  const done = (ok: boolean): ConfigCheck => {
    report.ok = ok;
    return { ok, lines, report };
  };
  const fail = (part: ConfigProblem['part'], line: string, message = line): ConfigCheck => {
    lines.push(line);
    report.problems.push({ part, message });
    return done(false);
  };
  let keys: number | undefined;
  let demo: string | undefined;
  let storeUp = false;
  let revision: string | undefined;
  let runtime;
  try {
    report.tracing = describeTracing(tracingSettings(process.env));
  } catch (err) {
    if (err instanceof TracingConfigError) return fail('tracing', `tracing: ${err.message}`, err.message);
    throw err;
  }
  if (servesTls(config)) {
    try {
      const files = new TlsFiles({ config: config.tls!, logger: silentLogger(), events: {}, watch: false });
      const m = files.current;
      const t = config.tls!;
      report.tls = {
        subject: m.subject.replace(/\n/g, ', '),
        subjectAltName: m.subjectAltName ?? null,
        notAfter: m.notAfter.toISOString(),
        grpc: t.grpc,
        http: t.http,
        extAuthzHttp: config.listen.extAuthzHttp !== undefined ? t.extAuthzHttp : null,
        clientCaFile: t.clientCaFile ?? null,
      };
      lines.push(
        `TLS: ${m.subject.replace(/\n/g, ', ')} (${m.subjectAltName ?? 'no subjectAltName'}), expires ${m.notAfter.toISOString()}; gRPC ${t.grpc}, HTTP ${t.http}${config.listen.extAuthzHttp !== undefined ? `, HTTP authorization ${t.extAuthzHttp}` : ''}${t.clientCaFile ? `; client CA ${t.clientCaFile}` : ''}`,
      );
      await files.close();
    } catch (err) {
      if (err instanceof TlsFilesError) return fail('tls', `TLS: ${err.message}`, err.message);
      throw err;
    }
  }
  const upstream = upstreamFileProblems(config);
  if (upstream.length > 0) {
    lines.push(...upstream.map((m) => `upstream credentials: ${m}`));
    report.problems.push(...upstream.map((message) => ({ part: 'upstream' as const, message })));
    return done(false);
  }
  try {
    // The demo-key warning is the one serve logs, kept from the key source's own log line:
    // the keys file is loaded once here (a million keys cost seconds and memory).
    const logger = collectingLogger('warn', (line) => {
      if (line.demo_keys !== undefined && typeof line.msg === 'string') demo = line.msg;
    });
    runtime = await buildRuntime(loaded, logger, createMetricsRegistry(), {
      // Its files are checked above; nothing is fetched or connected to from here.
      upstreamCredentials: false,
      watch: false,
      sharedLimits: false,
      tracing: false,
      events: {
        keysReload: (result, n) => {
          if (result === 'success') keys = n;
        },
        keyStore: (state) => {
          storeUp = state === 'up';
        },
        policyReload: (result, rev) => {
          if (result === 'success') revision = rev;
        },
      },
    });
  } catch (err) {
    if (err instanceof KeysFileError) return fail('apiKeys', `API keys: ${err.message}`, err.message);
    throw err;
  }
  if (config.stores.keys === 'postgres') {
    const c = config.stores.postgres!;
    const where = `PostgreSQL (${c.url ?? 'the PG* variables'}, schema ${c.schema})`;
    if (!storeUp) {
      await runtime.close();
      return fail(
        'apiKeys',
        `API keys: ${where} is not reachable, or its tables are missing (mcp-authz db migrate)`,
        `${where} is not reachable`,
      );
    }
    lines.push(`API keys: from ${where}, connected`);
  }
  try {
    const from = config.apiKeys.file ?? 'the config';
    report.apiKeys = { count: keys ?? 0, file: config.apiKeys.file ?? null, inline: config.apiKeys.keys.length };
    if (config.stores.keys === 'file')
      lines.push(
        `API keys: ${keys ?? 0} from ${from}${config.apiKeys.keys.length ? ` (${config.apiKeys.keys.length} inline)` : ''}`,
      );
    if (demo) {
      report.warnings.push(demo);
      lines.push(`WARNING: ${demo}`);
    }
    const source = config.policy?.rego ?? config.policy?.bundle ?? SHIPPED_BUNDLE;
    const notReady = runtime.notReady?.() ?? [];
    if (notReady.length > 0) {
      lines.push(...notReady.map((r) => `${r} (${source})`));
      report.problems.push(...notReady.map((r) => ({ part: 'policy' as const, message: `${r} (${source})` })));
      return done(false);
    }
    report.policy = { revision: revision ?? '?', source };
    lines.push(`policy: revision ${revision ?? '?'} from ${source}`, report.tracing);
    return done(true);
  } finally {
    await runtime.close();
  }
}

/**
 * The files endpoints' upstream credentials read (client secrets and keys, actor tokens,
 * static values, connection encryption keys): serve starts without them and denies those
 * endpoints' requests until they appear, so a missing one is worth failing the check for.
 */
export function upstreamFileProblems(config: LoadedConfig['config']): string[] {
  const problems: string[] = [];
  const check = (endpoint: string, what: string, file: string | undefined, parse?: (text: string) => unknown) => {
    if (file === undefined) return;
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(
        `endpoint ${endpoint}: ${what} ${file} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(err)})`}`,
      );
      return;
    }
    if (text === '') {
      problems.push(`endpoint ${endpoint}: ${what} ${file} is empty`);
      return;
    }
    try {
      parse?.(text);
    } catch (err) {
      problems.push(`endpoint ${endpoint}: ${what} ${file}: ${(err as Error).message}`);
    }
  };
  for (const e of config.endpoints) {
    const u = e.upstream;
    if (u === undefined) continue;
    if (u.mode === 'static') check(e.name, 'the static value file', u.valueFile);
    else if (u.mode === 'userConnections') {
      check(e.name, 'the client secret file', u.client.secretFile);
      check(e.name, 'the encryption key file', u.encryptionKeyFile, (t) => KeyRing.parse(t));
    } else {
      check(e.name, 'the client secret file', u.client.secretFile);
      check(e.name, 'the client private key file', u.client.privateKeyFile);
      if (u.mode === 'tokenExchange') check(e.name, 'the actor token file', u.actorTokenFile);
    }
  }
  return problems;
}
