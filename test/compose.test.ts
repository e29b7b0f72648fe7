// examples/compose (the demo with the real Envoy) is checked without a container engine:
// Docker Compose's own CLI (`docker-compose config`, built by `scripts/install-tools.sh
// compose` from the version test/compose-cli/go.mod pins) reads and validates the file as
// `docker compose up` would; Envoy's bootstrap passes envoy-validate; mcp-authz's config
// passes the service's own validation; and the three agree with each other, with the demo
// and with the Envoy examples they are made of.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfigFile } from '../src/config/load.js';
import { ROOT } from './helpers/helm.js';

const COMPOSE = join(ROOT, 'examples', 'compose', 'compose.yaml');
const BIN = join(ROOT, '.build', 'bin');

function run(bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!existsSync(join(BIN, bin)))
    throw new Error(
      `${bin} is not built: run scripts/install-tools.sh ${bin === 'docker-compose' ? 'compose' : bin} (npm test does it in pretest)`,
    );
  return new Promise((resolve) => {
    execFile(join(BIN, bin), args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const read = (rel: string) => parse(readFileSync(join(ROOT, rel), 'utf8'));

test('docker compose config accepts the compose file: three services, only Envoy published and only on loopback, pinned images', async (t) => {
  const r = await run('docker-compose', ['-f', COMPOSE, 'config', '--format', 'json']);
  t.is(r.code, 0, r.stderr);
  const project = JSON.parse(r.stdout) as { services: Record<string, any> };
  t.deepEqual(Object.keys(project.services).sort(), ['envoy', 'everything', 'mcp-authz']);
  const { envoy, 'mcp-authz': authz, everything } = project.services;
  t.regex(envoy.image, /^envoyproxy\/envoy:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$/, 'Envoy pinned by tag and digest');
  t.regex(everything.image, /^node:\d+[-\w]*@sha256:[0-9a-f]{64}$/);
  t.deepEqual(
    envoy.ports.map((p: any) => [p.host_ip, p.published, p.target]),
    [
      ['127.0.0.1', '8080', 8080],
      ['127.0.0.1', '8081', 8081],
    ],
  );
  t.is(authz.ports, undefined, 'mcp-authz is not published');
  t.is(everything.ports, undefined, 'the MCP server is reachable only through Envoy');
  t.like(envoy.depends_on, {
    'mcp-authz': { condition: 'service_healthy' },
    everything: { condition: 'service_started' },
  });
  // mcp-authz is this repository's image, built from the checkout.
  t.is(authz.build.context, ROOT);
  t.true(existsSync(join(authz.build.context, authz.build.dockerfile)));
  t.is(authz.pull_policy, 'build');
  // The MCP server is the version the demo runs.
  const pinned = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).devDependencies[
    '@modelcontextprotocol/server-everything'
  ];
  t.true(
    everything.command.includes(`@modelcontextprotocol/server-everything@${pinned}`),
    everything.command.join(' '),
  );
  t.true(everything.command.includes('streamableHttp'));
  for (const v of [...envoy.volumes, ...authz.volumes]) t.true(existsSync(v.source), `${v.source} exists`);
});

test('the compose CLI refuses what docker compose would refuse (it is a real validator)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-compose-'));
  const bad = join(dir, 'compose.yaml');
  writeFileSync(bad, readFileSync(COMPOSE, 'utf8').replace('condition: service_healthy', 'condition: service_ready'));
  const r = await run('docker-compose', ['-f', bad, 'config', '--quiet']);
  t.is(r.code, 1);
  t.regex(r.stderr, /depends_on\.mcp-authz\.condition/);
});

test("the compose Envoy is a valid bootstrap: the Envoy examples' listeners unchanged, clusters at the compose services' ports", async (t) => {
  const r = await run('envoy-validate', ['bootstrap', join(ROOT, 'examples', 'compose', 'envoy.yaml')]);
  t.is(r.code, 0, r.stderr);
  const envoy = read('examples/compose/envoy.yaml');
  const [extProc, extAuthz] = envoy.static_resources.listeners;
  t.deepEqual(extProc, read('examples/envoy/envoy-ext-proc.yaml').static_resources.listeners[0]);
  t.deepEqual(
    { ...extAuthz, name: 'mcp', address: { socket_address: { ...extAuthz.address.socket_address, port_value: 8080 } } },
    read('examples/envoy/envoy.yaml').static_resources.listeners[0],
  );

  const compose = read('examples/compose/compose.yaml');
  const authz = loadConfigFile(join(ROOT, 'examples', 'compose', 'mcp-authz.yaml'), {}).config;
  const at = (name: string) =>
    envoy.static_resources.clusters.find((c: any) => c.name === name).load_assignment.endpoints[0].lb_endpoints[0]
      .endpoint.address.socket_address;
  t.deepEqual(at('mcp-authz'), { address: 'mcp-authz', port_value: Number(authz.listen.grpc.split(':').at(-1)) });
  t.deepEqual(at('mcp-server'), {
    address: 'everything',
    port_value: Number(compose.services.everything.environment.PORT),
  });
  t.true(authz.listen.grpc.startsWith('0.0.0.0:'), 'reachable from the Envoy container');
});

test("mcp-authz's compose config is valid and serves the demo's endpoint with the demo's keys", (t) => {
  const compose = loadConfigFile(join(ROOT, 'examples', 'compose', 'mcp-authz.yaml'), {}).config;
  const demo = loadConfigFile(join(ROOT, 'examples', 'demo', 'config.yaml'), {}).config;
  t.deepEqual(compose.endpoints, demo.endpoints);
  const mounts: string[] = read('examples/compose/compose.yaml').services['mcp-authz'].volumes;
  t.true(
    mounts.includes(`../demo/keys.yaml:${compose.apiKeys.file}:ro`),
    'the demo keys are mounted where the config reads them',
  );
  t.true(mounts.some((m) => m.startsWith('./mcp-authz.yaml:/etc/mcp-authz/config.yaml')));
});
