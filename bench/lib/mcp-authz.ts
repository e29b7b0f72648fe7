// mcp-authz as the benchmark runs it: the real CLI (`serve`, default workers or --workers N) as a
// subprocess, from bench/config/mcp-authz.yaml completed with this run's ports and issuer.
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { benchPins } from './bench-tools.js';
import type { Issuer } from './credentials.js';
import { mcpAuthzCli, out, root } from './paths.js';
import { run, start, type Started } from './processes.js';
import { OAUTH_RESOURCE, type Scenario } from './scenarios.js';
import { CheckClient } from './verify.js';

export interface Prepared {
  list: Scenario[];
  /** Per scenario name: the ghz data file, h2load's gRPC-framed body, the HTTP/1.1 body, and loadgen's message list. */
  data: Map<string, { ghz: string; grpc: string; http: string; list: string }>;
  keysFile: string;
  /** The keys file content; with `extraKey`, one more key (a key reload). */
  keysDocument(extraKey?: string): unknown;
  issuer: Issuer;
  apiKey: string;
  keySource: string;
  keyEntries: { id: string; sha256: string; userId?: string; permissions: string[] }[];
}

/** Writes bench/out/mcp-authz.yaml; copies the shipped bundle beside it (reloads rewrite the copy). */
export function writeMcpAuthzConfig(
  p: Prepared,
  grpcPort: number,
  httpPort: number,
  bundle: string | undefined,
): string {
  const cfg = parseYaml(readFileSync(join(root, 'bench', 'config', 'mcp-authz.yaml'), 'utf8')) as Record<string, any>;
  cfg.listen = { grpc: `127.0.0.1:${grpcPort}`, http: `127.0.0.1:${httpPort}` };
  cfg.oauth = {
    ...cfg.oauth,
    issuers: [{ issuer: p.issuer.issuer, jwksUri: p.issuer.jwksUri, audiences: [OAUTH_RESOURCE] }],
  };
  for (const e of cfg.endpoints as { upstream?: { tokenEndpoint?: string } }[]) {
    if (e.upstream?.tokenEndpoint !== undefined) e.upstream.tokenEndpoint = p.issuer.tokenEndpoint;
  }
  writeFileSync(join(out, 'upstream-client-secret'), p.issuer.clientSecret, { mode: 0o600 });
  writeFileSync(join(out, 'pins.yaml'), benchPins());
  if (bundle) copyFileSync(bundle, join(out, 'bundle.tar.gz'));
  else delete cfg.policy; // nothing to load yet: the fail-closed placeholder decides
  const file = join(out, 'mcp-authz.yaml');
  writeFileSync(file, stringify(cfg));
  return file;
}

/** Starts `mcp-authz serve` and waits until it answers Check. Decision logs go to `logFile` or nowhere. */
export async function startMcpAuthz(
  configFile: string,
  grpcPort: number,
  probe: Record<string, unknown>,
  logFile?: string,
  workers?: number,
): Promise<Started> {
  const args = [
    ...mcpAuthzCli.slice(1),
    'serve',
    '--config',
    configFile,
    ...(workers !== undefined ? ['--workers', String(workers)] : []),
  ];
  const server = start(mcpAuthzCli[0]!, args, {
    cwd: root,
    ...(logFile ? { logFile } : {}),
    env: { ...process.env, NODE_ENV: 'production' },
  });
  const client = new CheckClient(`127.0.0.1:${grpcPort}`);
  let alive = true;
  void server.exited.then(() => (alive = false));
  try {
    await client.waitReady(probe, 60_000, () => alive);
  } catch (err) {
    const why = await run(
      mcpAuthzCli[0]!,
      [...mcpAuthzCli.slice(1), 'serve', '--config', configFile, '--check-config'],
      { cwd: root, timeoutMs: 30_000 },
    );
    await server.stop();
    throw new Error(
      `mcp-authz did not start: ${(err as Error).message}\n${(why.stdout + why.stderr).trim().slice(0, 2000)}`,
    );
  } finally {
    client.close();
  }
  return server;
}
