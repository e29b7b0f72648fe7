// opa-envoy-plugin, the benchmark's peer: the real plugin (scripts/install-tools.sh builds it
// from its pinned source), run as its own docs run it, with bench/opa-envoy/policy.rego and
// the data that policy reads (the same keys, endpoints and JWKS mcp-authz gets).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Prepared } from './mcp-authz.js';
import { out, root, tools } from './paths.js';
import { freePort, run, start, type Started } from './processes.js';
import { BENCH_USER, OAUTH_RESOURCE, PATHS } from './scenarios.js';
import { CheckClient } from './verify.js';

export function opaEnvoyData(p: Prepared): unknown {
  const keys: Record<string, unknown> = {};
  for (const k of p.keyEntries)
    keys[k.sha256] = { id: k.id, userId: k.userId ?? null, permissions: k.permissions, disabled: false };
  const seg = (path: string) => path.split('/').filter(Boolean);
  return {
    bench: {
      keys,
      endpoints: [
        { name: 'open', segments: seg(PATHS.open), apiKey: false, oauth: false },
        { name: 'files', segments: seg(PATHS.apiKey), owner: BENCH_USER, apiKey: true, oauth: false },
        {
          name: 'oauth',
          segments: seg(PATHS.oauth),
          owner: BENCH_USER,
          apiKey: false,
          oauth: true,
          resource: OAUTH_RESOURCE,
        },
      ],
      oauth: { issuer: p.issuer.issuer, jwks: JSON.stringify(p.issuer.jwks) },
    },
  };
}

/** Which build of the plugin runs: the install stamp (commit, tarball hash) and its own version line. */
export async function opaEnvoyPluginBuild(): Promise<{ build: string; version: string }> {
  let build = 'unknown';
  try {
    build = readFileSync(join(root, '.tools', 'bin', '.opa-envoy-plugin.version'), 'utf8').trim();
  } catch {
    /* not installed by scripts/install-tools.sh */
  }
  const v = await run(tools.oep, ['version'], { timeoutMs: 30_000 });
  const version = /^Version: (.+)$/m.exec(v.stdout)?.[1] ?? 'unknown';
  return { build, version: `OPA ${version}, ${/^Go Version: (.+)$/m.exec(v.stdout)?.[1] ?? 'go ?'}` };
}

/**
 * Starts the plugin with every listener on loopback: its gRPC server (default ":9191", every
 * interface) and OPA's HTTP API (default "localhost:8181"); no version check against GitHub
 * (OPA's default phones home at start), no decision logs on the console. Waits until it
 * answers `probe`.
 */
export async function startOpaEnvoyPlugin(
  p: Prepared,
  probe: Record<string, unknown>,
): Promise<{ server: Started; target: string; httpPort: number }> {
  const dir = join(out, 'opa-envoy');
  mkdirSync(dir, { recursive: true });
  const dataFile = join(dir, 'data.json');
  writeFileSync(dataFile, JSON.stringify(opaEnvoyData(p)));
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const server = start(
    tools.oep,
    [
      'run',
      '--server',
      '--skip-version-check',
      '--log-level',
      'error',
      '--addr',
      `127.0.0.1:${httpPort}`,
      '--config-file',
      join(root, 'bench', 'opa-envoy', 'config.yaml'),
      '--set',
      `plugins.envoy_ext_authz_grpc.addr=127.0.0.1:${grpcPort}`,
      join(root, 'bench', 'opa-envoy', 'policy.rego'),
      dataFile,
    ],
    { cwd: root, logFile: join(out, 'opa-envoy-plugin.log') },
  );
  const target = `127.0.0.1:${grpcPort}`;
  const client = new CheckClient(target);
  let alive = true;
  void server.exited.then(() => (alive = false));
  try {
    await client.waitReady(probe, 60_000, () => alive);
  } catch (err) {
    await server.stop();
    throw new Error(`opa-envoy-plugin did not start (see bench/out/opa-envoy-plugin.log): ${(err as Error).message}`);
  } finally {
    client.close();
  }
  return { server, target, httpPort };
}
