// The mcp-authz command line: serve, check, keys, login, policy. Each command loads only what it
// runs (dynamic imports): the cluster primary, which decides no Check, never loads the
// pipeline, the policy engine or the gRPC server, and stays small.
import { spawnSync } from 'node:child_process';
import cluster from 'node:cluster';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigFile, type ConfigError, type LoadedConfig } from '../config/load.js';
import { projectRoot, QUICKSTART_CONFIG } from '../config/paths.mjs';
import { childLogger, createLogger } from '../log/logger.js';
import type { BuildOptions } from '../pipeline/build-runtime.js';
import type { ResponseTypeFlag } from './check-response.js';
import { defaultWorkers } from '../server/cpu-quota.js';
import { tracingSettings } from '../tracing/settings.js';
import { LOG_LEVELS, USAGE, version } from './usage.js';

export interface MainOptions {
  /** Passed to buildRuntime in every process `serve` starts (tests inject phase doubles here). */
  runtime?: BuildOptions;
}

/** A mistake on the command line: its message and the command's usage, exit code 2. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
  }
}

export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serve(rest, options);
      case 'check':
        return await check(rest);
      case 'keys':
        return await keys(rest);
      case 'pins':
        return await pins(rest);
      case 'db':
        return await (await import('./store-command.js')).dbCommand(rest, (s) => process.stdout.write(s));
      case 'login':
        return await login(rest);
      case 'connections':
        return await connections(rest);
      case 'replay':
        return await (await import('./replay-command.js')).replayCommand(rest);
      case 'policy':
        return policy(rest);
      case '--version':
      case '-v':
      case 'version':
        process.stdout.write(`mcp-authz ${version()}\n`);
        return 0;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        if (command === 'help' && rest[0] !== undefined && rest[0] in USAGE && rest[0] !== 'main') {
          process.stdout.write(USAGE[rest[0] as keyof typeof USAGE]);
          return 0;
        }
        process.stdout.write(USAGE.main);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`, USAGE.main);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`mcp-authz: ${err.message}\n\n${err.usage}`);
      return 2;
    }
    // A ConfigError's message names every bad field; any other error's message says what failed.
    process.stderr.write(`mcp-authz: ${(err as Error).message}\n`);
    return 1;
  }
}

/** node:util parseArgs, with its "Unknown option" and missing-value errors turned into usage errors. */
function parse<T extends NonNullable<Parameters<typeof parseArgs>[0]>['options']>(
  args: string[],
  options: T,
  usage: string,
) {
  try {
    return parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } } as T & { help: { type: 'boolean'; short: 'h' } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message, usage);
  }
}

async function serve(args: string[], options: MainOptions): Promise<number> {
  const values = parse(
    args,
    {
      config: { type: 'string', short: 'c' },
      'check-config': { type: 'boolean' },
      json: { type: 'boolean' },
      workers: { type: 'string', short: 'w' },
    },
    USAGE.serve,
  );
  if (values.help) {
    process.stdout.write(USAGE.serve);
    return 0;
  }
  if (values.json && !values['check-config']) throw new UsageError('--json goes with --check-config', USAGE.serve);
  let workers = parseWorkers(values.workers as string | undefined);
  const file = (values.config as string | undefined) ?? QUICKSTART_CONFIG;
  if (values['check-config']) return checkConfigCommand(file, Boolean(values.json));
  const loaded = await storeEndpoints(loadConfigFile(file));
  const logger = createLogger(logLevel());
  tracingSettings(process.env); // a tracing variable serve cannot honour stops it here, before workers start
  if (cluster.isWorker) {
    const { runWorker } = await import('../server/cluster-worker.js');
    return runWorker(loaded, childLogger(logger, { worker: cluster.worker?.id }), options.runtime);
  }
  if (!values.config) logger.info({ config: file }, 'no --config given: serving the quickstart');
  // The HTTP port of several workers is the cluster primary's, which decides nothing: what a
  // person or another gateway reaches there needs the process that decides (docs/scaling.md).
  const single = singleProcessFeatures(loaded.config);
  if (workers > 1 && single.length > 0) {
    if (values.workers !== undefined)
      throw new UsageError(
        `${single.join(', ')}: served by the process that decides Checks, which --workers ${workers} does not give the HTTP port: serve --workers 1, and scale with replicas`,
        USAGE.serve,
      );
    logger.info({ features: single }, `one worker: ${single.join(', ')} must be served by the process that decides`);
    workers = 1;
  }
  logger.info({ version: version(), workers }, 'mcp-authz starting');
  if (workers > 1) {
    const { runPrimary } = await import('../server/cluster-primary.js');
    return runPrimary(loaded, { workers, logger });
  }
  const [{ startService }, { buildRuntime }] = await Promise.all([
    import('../server/service.js'),
    import('../pipeline/build-runtime.js'),
  ]);
  const service = await startService(loaded, {
    logger,
    buildRuntime: (l, lg, m) => buildRuntime(l, lg, m, options.runtime),
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down: draining in-flight Checks');
      service.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

/** serve --check-config [--json]: 0 when serve would decide requests, 1 naming what stops it. */
async function checkConfigCommand(file: string, json: boolean): Promise<number> {
  const { checkConfig, invalidConfigReport } = await import('./check-config.js');
  if (json) {
    let report;
    try {
      report = (await checkConfig(await storeEndpoints(loadConfigFile(file)))).report;
    } catch (err) {
      // A config that does not parse is a report too: scripts read one shape whatever failed.
      if ((err as { code?: string }).code !== 'ERR_CONFIG') throw err;
      const e = err as ConfigError;
      report = invalidConfigReport(e.source, e.problems);
    }
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return report.ok ? 0 : 1;
  }
  const result = await checkConfig(await storeEndpoints(loadConfigFile(file)));
  (result.ok ? process.stdout : process.stderr).write(
    `${result.lines.join('\n')}\n${result.ok ? 'configuration is valid: serve would start with all of the above\n' : 'configuration is NOT ready: serve would not decide requests (see above)\n'}`,
  );
  return result.ok ? 0 : 1;
}

/** MCP_AUTHZ_LOG_LEVEL, refused with the levels there are rather than pino's error. */
function logLevel(): string {
  const level = process.env.MCP_AUTHZ_LOG_LEVEL;
  if (level === undefined || level === '') return 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new Error(`MCP_AUTHZ_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}; got ${JSON.stringify(level)}`);
  }
  return level;
}

/** What the config turns on that only a single process can serve (its pages or API on the HTTP port). */
function singleProcessFeatures(config: LoadedConfig['config']): string[] {
  const features: string[] = [];
  if (config.approvals) features.push('approvals (the approval page)');
  if (config.authzen.enabled) features.push('authzen.enabled (the AuthZEN API)');
  if (config.endpoints.some((e) => e.upstream?.mode === 'userConnections'))
    features.push('userConnections (the /connect/<provider> page)');
  return features;
}

function parseWorkers(v: string | undefined): number {
  if (v === undefined) return defaultWorkers();
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1024)
    throw new UsageError(`--workers expects a whole number from 1 to 1024, got ${JSON.stringify(v)}`, USAGE.serve);
  return n;
}

async function check(args: string[]): Promise<number> {
  const values = parse(
    args,
    {
      config: { type: 'string', short: 'c' },
      method: { type: 'string', short: 'X', default: 'POST' },
      path: { type: 'string' },
      host: { type: 'string' },
      source: { type: 'string' },
      'peer-principal': { type: 'string' },
      'peer-certificate': { type: 'string' },
      header: { type: 'string', short: 'H', multiple: true },
      body: { type: 'string', short: 'd' },
      explain: { type: 'boolean' },
      rego: { type: 'string' },
      response: { type: 'string' },
      'response-type': { type: 'string', default: 'auto' },
      'check-request': { type: 'string' },
      bearer: { type: 'string' },
      shadow: { type: 'string' },
    },
    USAGE.check,
  );
  if (values.help) {
    process.stdout.write(USAGE.check);
    return 0;
  }
  const stdinFlags = (['body', 'response', 'peer-certificate', 'check-request', 'bearer'] as const).filter(
    (f) => values[f] === '-' || values[f] === '@-',
  );
  if (stdinFlags.length > 1)
    throw new UsageError(
      `only one flag can read standard input; got - for ${stdinFlags.map((f) => `--${f}`).join(' and ')}`,
      USAGE.check,
    );
  const captured = values['check-request'] as string | undefined;
  if (captured !== undefined) {
    // The captured request carries the method, path, headers, body and peer: the flags that build one do not mix with it.
    const clash = (
      ['path', 'host', 'source', 'peer-principal', 'peer-certificate', 'header', 'body', 'bearer'] as const
    ).filter((f) => values[f] !== undefined);
    if (clash.length > 0)
      throw new UsageError(
        `--check-request is the whole request; drop ${clash.map((f) => `--${f}`).join(', ')}`,
        USAGE.check,
      );
  } else if (!values.path) {
    throw new UsageError('check needs --path (or --check-request)', USAGE.check);
  }
  if (values.rego !== undefined && !values.explain)
    throw new UsageError('--rego is the policy source for --explain', USAGE.check);
  const responseType = values['response-type'] as string;
  if (!['auto', 'json', 'sse'].includes(responseType))
    throw new UsageError(`--response-type expects json, sse or auto, got ${JSON.stringify(responseType)}`, USAGE.check);
  const loaded = loadConfigFile((values.config as string | undefined) ?? QUICKSTART_CONFIG);
  const { explain, parseHeaderFlag, readBodyFlag } = await import('./check-command.js');
  const headers = ((values.header as string[] | undefined) ?? []).map(parseHeaderFlag);
  if (values.bearer !== undefined) {
    if (headers.some(([name]) => name.toLowerCase() === 'authorization'))
      throw new UsageError('--bearer sets the Authorization header: drop -H authorization', USAGE.check);
    const { readBearer } = await import('./token-file.js');
    const bearer = readBearer(values.bearer as string);
    if (bearer.warning) process.stderr.write(`mcp-authz check: ${bearer.warning}\n`);
    headers.push(['authorization', `Bearer ${bearer.token}`]);
  }
  let checkRequest: Uint8Array | undefined;
  if (captured !== undefined) {
    const { checkRequestFromJson } = await import('../ext-authz/check-request-json.js');
    const text = readBodyFlag(captured)!;
    checkRequest = checkRequestFromJson(text);
  }
  const result = await explain(
    loaded,
    checkRequest
      ? { checkRequest }
      : {
          method: values.method as string,
          path: values.path as string,
          headers,
          ...(values.host !== undefined ? { host: values.host as string } : {}),
          ...(values.source !== undefined ? { sourceAddress: values.source as string } : {}),
          ...(values['peer-principal'] !== undefined ? { peerPrincipal: values['peer-principal'] as string } : {}),
          ...(values['peer-certificate'] !== undefined
            ? { peerCertificatePem: readBodyFlag(values['peer-certificate'] as string)! }
            : {}),
          ...(values.body !== undefined ? { body: readBodyFlag(values.body as string)! } : {}),
        },
    {
      trace: Boolean(values.explain),
      ...(values.rego !== undefined ? { rego: values.rego as string } : {}),
      ...(values.shadow !== undefined ? { shadow: values.shadow as string } : {}),
      ...(values.response !== undefined
        ? { response: { text: readBodyFlag(values.response as string)!, type: responseType as ResponseTypeFlag } }
        : {}),
    },
  );
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  return result.decision === 'allow' ? 0 : 3;
}

async function login(args: string[]): Promise<number> {
  const values = parse(
    args,
    {
      resource: { type: 'string' },
      issuer: { type: 'string' },
      scope: { type: 'string', multiple: true },
      'client-id': { type: 'string' },
      'client-secret-file': { type: 'string' },
      'client-metadata-url': { type: 'string' },
      port: { type: 'string' },
      'no-browser': { type: 'boolean' },
      json: { type: 'boolean' },
      save: { type: 'string' },
      timeout: { type: 'string' },
      'allow-http': { type: 'boolean' },
    },
    USAGE.login,
  );
  if (values.help) {
    process.stdout.write(USAGE.login);
    return 0;
  }
  const { loginFlags, LoginUsageError, runLogin } = await import('./login-command.js');
  const { openBrowser } = await import('./open-browser.js');
  try {
    return await runLogin(loginFlags(values), {
      stdout: (s) => process.stdout.write(s),
      stderr: (s) => process.stderr.write(s),
      fetch: globalThis.fetch,
      openBrowser: (url) => openBrowser(url),
      version: version(),
      now: Date.now,
    });
  } catch (err) {
    if (err instanceof LoginUsageError) throw new UsageError(err.message, USAGE.login);
    throw err;
  }
}

/** Wraps the real opa through the same scripts as `npm run policy:build` / `policy:test`. */
function policy(args: string[]): number {
  const [verb, ...rest] = args;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    process.stdout.write(USAGE.policy);
    return verb === undefined ? 2 : 0;
  }
  const script = verb === 'build' ? 'policy-build.mjs' : verb === 'test' ? 'policy-test.mjs' : undefined;
  if (!script) throw new UsageError(`policy: expected "build" or "test", got ${JSON.stringify(verb)}`, USAGE.policy);
  const r = spawnSync(process.execPath, [join(projectRoot, 'scripts', script), ...rest], { stdio: 'inherit' });
  return r.status ?? 1;
}

async function pins(args: string[]): Promise<number> {
  const { pinsCommand, PinsCommandError } = await import('./pins-command.js');
  try {
    return await pinsCommand(args, (s) => process.stdout.write(s), USAGE.pins);
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') || err instanceof PinsCommandError)
      throw new UsageError((err as Error).message, USAGE.pins);
    throw err;
  }
}

async function connections(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE.connections);
    return 0;
  }
  const { connectionsCommand, ConnectionsUsageError } = await import('./connections-command.js');
  try {
    return await connectionsCommand(
      args,
      (s) => process.stdout.write(s),
      (s) => process.stderr.write(s),
    );
  } catch (err) {
    if (err instanceof ConnectionsUsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))
      throw new UsageError((err as Error).message, USAGE.connections);
    throw err;
  }
}

async function keys(args: string[]): Promise<number> {
  const { keysCommand } = await import('./keys-command.js');
  try {
    if (args.some((a) => a === '--store' || a.startsWith('--store=')))
      return await (await import('./store-command.js')).keysStoreCommand(args, (s) => process.stdout.write(s));
    return keysCommand(args, (s) => process.stdout.write(s));
  } catch (err) {
    // parseArgs' own errors ("Unknown option") are usage errors; the rest say what is wrong.
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))
      throw new UsageError((err as Error).message, USAGE.keys);
    throw err;
  }
}

/** Endpoints from PostgreSQL (stores.endpoints: postgres) join the file's; pg is loaded only then. */
async function storeEndpoints(loaded: LoadedConfig): Promise<LoadedConfig> {
  if (loaded.config.stores.endpoints !== 'postgres') return loaded;
  return (await import('../stores/postgres-endpoints.js')).withStoreEndpoints(loaded);
}
