// The mcp-authz command line: serve, check, keys.
import { spawnSync } from 'node:child_process';
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load.js';
import { projectRoot, QUICKSTART_CONFIG } from '../config/paths.mjs';
import { createLogger } from '../log/logger.js';
import { buildRuntime, type BuildOptions } from '../pipeline/build-runtime.js';
import { runPrimary } from '../server/cluster-primary.js';
import { runWorker } from '../server/cluster-worker.js';
import { startService } from '../server/service.js';
import { explain, parseHeaderFlag, readBodyFlag } from './check-command.js';
import { keysCommand } from './keys-command.js';

const USAGE = `usage:
  mcp-authz serve [--config FILE] [--check-config] [--workers N]   (N defaults to the number of cores; 1 = one process)
  mcp-authz check --config FILE --method M --path P [-H 'name: value']... [--body JSON|@file] [--host H] [--source ADDR]
  mcp-authz policy build [--src DIR] [--out FILE] [--force]   (opa build -t wasm of the Rego)
  mcp-authz policy test                                       (opa check --strict, opa test, coverage)
  mcp-authz keys create --name N [--id ID] [--user U] [--role R] [--permission P]... [--expires DATE] [--json]
`;

export interface MainOptions {
  /** Passed to buildRuntime in every process `serve` starts (tests inject phase doubles here). */
  runtime?: BuildOptions;
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
      case 'policy':
        return policy(rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`mcp-authz: unknown command "${command}"\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    // A ConfigError's message names every bad field; any other error's message says what failed.
    process.stderr.write(`mcp-authz: ${(err as Error).message}\n`);
    return 1;
  }
}

async function serve(args: string[], options: MainOptions): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, 'check-config': { type: 'boolean' }, workers: { type: 'string', short: 'w' } },
    strict: true,
  });
  const workers = parseWorkers(values.workers);
  const file = values.config ?? QUICKSTART_CONFIG;
  const loaded = loadConfigFile(file);
  if (values['check-config']) {
    process.stdout.write(`${loaded.file}: configuration is valid\n`);
    return 0;
  }
  const logger = createLogger();
  if (cluster.isWorker) return runWorker(loaded, logger.child({ worker: cluster.worker?.id }), options.runtime);
  if (!values.config) logger.info({ config: file }, 'no --config given: serving the quickstart');
  if (workers > 1) return runPrimary(loaded, { workers, logger });
  const service = await startService(loaded, { logger, buildRuntime: (l, lg, m) => buildRuntime(l, lg, m, options.runtime) });
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

function parseWorkers(v: string | undefined): number {
  if (v === undefined) return availableParallelism();
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new Error(`--workers expects a whole number from 1 to 1024, got ${JSON.stringify(v)}`);
  return n;
}

async function check(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      method: { type: 'string', short: 'X', default: 'POST' },
      path: { type: 'string' },
      host: { type: 'string' },
      source: { type: 'string' },
      header: { type: 'string', short: 'H', multiple: true },
      body: { type: 'string', short: 'd' },
    },
    strict: true,
  });
  if (!values.path) throw new Error('check needs --path');
  const loaded = loadConfigFile(values.config ?? QUICKSTART_CONFIG);
  const result = await explain(loaded, {
    method: values.method!,
    path: values.path,
    headers: (values.header ?? []).map(parseHeaderFlag),
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(values.source !== undefined ? { sourceAddress: values.source } : {}),
    ...(values.body !== undefined ? { body: readBodyFlag(values.body)! } : {}),
  });
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  return result.decision === 'allow' ? 0 : 3;
}

/** Wraps the real opa through the same scripts as `npm run policy:build` / `policy:test`. */
function policy(args: string[]): number {
  const [verb, ...rest] = args;
  const script = verb === 'build' ? 'policy-build.mjs' : verb === 'test' ? 'policy-test.mjs' : undefined;
  if (!script) {
    process.stderr.write(`mcp-authz policy: expected "build" or "test"\n${USAGE}`);
    return 2;
  }
  const r = spawnSync(process.execPath, [join(projectRoot, 'scripts', script), ...rest], { stdio: 'inherit' });
  return r.status ?? 1;
}

async function keys(args: string[]): Promise<number> {
  return keysCommand(args, (s) => process.stdout.write(s));
}
