// The Envoy and Istio examples are read by Envoy's and Istio's own generated types
// (test/envoy-validate, a Go program on go-control-plane and istio.io/api, built into
// .build/bin by `scripts/install-tools.sh envoy-validate`): protojson refuses unknown fields
// and wrong types, and every message — typed configs included — passes its validation rules.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { validateConfig } from '../src/config/load.js';
import type { Principal } from '../src/contracts/principal.js';
import { headerNameMatches } from '../src/contracts/upstream-headers.js';
import { identityHeaders } from '../src/pipeline/allow.js';
import { DECISION_ID_KEY } from '../src/ext-authz/answer.js';
import { RECOMMENDED_EXT_PROC } from './e2e/stack.js';
import { ROOT, validateObject } from './helpers/helm.js';

const BIN = join(ROOT, '.build', 'bin', 'envoy-validate');
const ENVOY = join(ROOT, 'examples', 'envoy', 'envoy.yaml');
const MESH = join(ROOT, 'examples', 'istio', 'mesh-config.yaml');

function validate(
  kind: 'bootstrap' | 'istio-mesh',
  file: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!existsSync(BIN))
    throw new Error(
      'envoy-validate is not built: run `scripts/install-tools.sh envoy-validate` (npm test does it in pretest)',
    );
  return new Promise((resolve) => {
    execFile(BIN, [kind, file], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A copy of `file` with one text replacement, which must apply. */
function edited(file: string, from: string, to: string): string {
  const text = readFileSync(file, 'utf8');
  if (!text.includes(from)) throw new Error(`${file} no longer contains ${JSON.stringify(from)}`);
  const out = join(mkdtempSync(join(tmpdir(), 'mcp-authz-validate-')), 'edited.yaml');
  writeFileSync(out, text.replace(from, to));
  return out;
}

test('the Envoy example is a valid v3 Bootstrap, with every typed config read and checked', async (t) => {
  const r = await validate('bootstrap', ENVOY);
  t.is(r.code, 0, r.stderr);
  for (const type of [
    'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
    'envoy.extensions.filters.http.router.v3.Router',
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  ])
    t.true(r.stdout.includes(type), `${type} checked:\n${r.stdout}`);
});

test('the mTLS Envoy example is a valid v3 Bootstrap, its UpstreamTlsContext read and checked', async (t) => {
  const r = await validate('bootstrap', join(ROOT, 'examples', 'envoy', 'envoy-mtls.yaml'));
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.includes('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext'), r.stdout);
  const typo = await validate(
    'bootstrap',
    edited(join(ROOT, 'examples', 'envoy', 'envoy-mtls.yaml'), 'san_type: DNS', 'san_type: DNSNAME'),
  );
  t.is(typo.code, 1);
  t.regex(typo.stderr, /invalid value for enum/);
});

test('the validator refuses a rule broken inside a typed config, an unknown field and a bad enum value', async (t) => {
  const zeroBody = await validate('bootstrap', edited(ENVOY, 'max_request_bytes: 1048576', 'max_request_bytes: 0'));
  t.is(zeroBody.code, 1);
  t.regex(zeroBody.stderr, /ExtAuthz.*MaxRequestBytes: value must be greater than 0/s);
  const typo = await validate('bootstrap', edited(ENVOY, 'failure_mode_allow: false', 'failure_mode_alow: false'));
  t.is(typo.code, 1);
  t.regex(typo.stderr, /unknown field "failure_mode_alow"/);
  const action = await validate(
    'bootstrap',
    edited(ENVOY, 'path_with_escaped_slashes_action: REJECT_REQUEST', 'path_with_escaped_slashes_action: REJECT'),
  );
  t.is(action.code, 1);
  t.regex(action.stderr, /invalid value for enum/);
});

test('the Istio mesh config is a valid istio.mesh.v1alpha1.MeshConfig with the mcp-authz provider', async (t) => {
  const r = await validate('istio-mesh', MESH);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /extension providers: mcp-authz/);
});

test('the validator refuses a mesh config field Istio does not have, and a wrong type', async (t) => {
  const typo = await validate(
    'istio-mesh',
    edited(MESH, 'failOpen: false', 'failOpen: false\n          statusOnErr: "503"'),
  );
  t.is(typo.code, 1);
  t.regex(typo.stderr, /unknown field "statusOnErr"/);
  const type = await validate('istio-mesh', edited(MESH, 'port: 9191', 'port: "nine"'));
  t.is(type.code, 1);
  t.regex(type.stderr, /port/);
});

const ENVOY_HTTP = join(ROOT, 'examples', 'envoy', 'envoy-http.yaml');
const MESH_HTTP = join(ROOT, 'examples', 'istio', 'mesh-config-http.yaml');

test('the Envoy HTTP ext_authz example is a valid v3 Bootstrap, with every typed config read and checked', async (t) => {
  const r = await validate('bootstrap', ENVOY_HTTP);
  t.is(r.code, 0, r.stderr);
  for (const type of [
    'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
    'envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute',
  ])
    t.true(r.stdout.includes(type), `${type} checked:\n${r.stdout}`);
});

test('the Istio envoyExtAuthzHttp provider is a valid MeshConfig extension provider', async (t) => {
  const r = await validate('istio-mesh', MESH_HTTP);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /extension providers: mcp-authz-http/);
  const typo = await validate('istio-mesh', edited(MESH_HTTP, 'headersToUpstreamOnAllow:', 'headersToUpstreamOnAlow:'));
  t.is(typo.code, 1);
});

/** The mcp-authz settings an example's header comment says to run with, as a config. */
function namedSettings(file: string): Record<string, unknown> {
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => /^#\s+(listen|clientAddress|extAuthzHttp):/.test(l));
  return parse(lines.map((l) => l.replace(/^#\s+/, '')).join('\n')) as Record<string, unknown>;
}

// Headers the service reads or removes, which Envoy must forward for it to see them.
const READ_HEADERS = [
  'authorization',
  'x-api-key',
  'cookie',
  'origin',
  'sec-fetch-site',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'mcp-param-region',
  'content-encoding',
  'content-type',
  'x-forwarded-for',
  'x-mcp-user-id',
  'x_mcp_user_id',
];

test('both HTTP examples forward every header the service reads, pass its identity headers upstream, and name settings that load', (t) => {
  const envoy = parse(readFileSync(ENVOY_HTTP, 'utf8'));
  const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
  const authz = hcm.http_filters.find((f: { name: string }) => f.name === 'envoy.filters.http.ext_authz').typed_config;
  const regexes = authz.allowed_headers.patterns.map(
    (p: { safe_regex?: { regex: string } }) => new RegExp(`^(?:${p.safe_regex!.regex})$`),
  );
  for (const h of READ_HEADERS)
    t.true(
      regexes.some((r: RegExp) => r.test(h)),
      `Envoy forwards ${h}`,
    );
  // What Envoy copies upstream is exactly what the service is told it copies (extAuthzHttp.upstreamHeaders):
  // the identity headers and the Cookie header without the session cookie; nothing is appended.
  const response = authz.http_service.authorization_response;
  t.is(response.allowed_upstream_headers_to_append, undefined);
  const upstream = response.allowed_upstream_headers.patterns.map((p: { prefix?: string; exact?: string }) =>
    p.prefix !== undefined ? `${p.prefix}*` : p.exact,
  );
  const identity = identityHeaders({ id: 'k1', method: 'api_key', userId: 'alice', keyId: 'k1' } as Principal).map(
    (h) => h.name,
  );
  t.true(identity.length >= 4);
  for (const h of [...identity, 'cookie'])
    t.true(
      upstream.some((p: string) => headerNameMatches(p, h)),
      `Envoy passes ${h} upstream`,
    );
  t.deepEqual(
    validateConfig(namedSettings(ENVOY_HTTP), ENVOY_HTTP, ROOT, {}).extAuthzHttp.upstreamHeaders,
    upstream,
    'extAuthzHttp.upstreamHeaders names what allowed_upstream_headers copies',
  );
  t.true(hcm.use_remote_address, 'Envoy appends the client address that trustedHops: 1 reads');

  const provider = parse(readFileSync(MESH_HTTP, 'utf8')).spec.meshConfig.extensionProviders[0].envoyExtAuthzHttp;
  // Istio's header patterns: exact, "prefix*" or "*suffix".
  const istioMatch = (pattern: string, h: string) =>
    pattern.endsWith('*')
      ? h.startsWith(pattern.slice(0, -1))
      : pattern.startsWith('*')
        ? h.endsWith(pattern.slice(1))
        : h === pattern;
  for (const h of READ_HEADERS)
    t.true(
      provider.includeRequestHeadersInCheck.some((p: string) => istioMatch(p, h)),
      `Istio forwards ${h}`,
    );
  for (const h of [...identity, 'cookie'])
    t.true(
      provider.headersToUpstreamOnAllow.some((p: string) => istioMatch(p, h)),
      `Istio passes ${h} upstream`,
    );
  t.deepEqual(
    validateConfig(namedSettings(MESH_HTTP), MESH_HTTP, ROOT, {}).extAuthzHttp.upstreamHeaders,
    provider.headersToUpstreamOnAllow,
    'extAuthzHttp.upstreamHeaders names what headersToUpstreamOnAllow copies',
  );

  for (const [file, port] of [
    [ENVOY_HTTP, 9292],
    [MESH_HTTP, provider.port],
  ] as const) {
    const settings = namedSettings(file);
    const loaded = validateConfig(settings, file, ROOT, {});
    t.is(loaded.listen.extAuthzHttp, `0.0.0.0:${port}`, `${file}: the port it calls`);
    t.is(loaded.extAuthzHttp.pathPrefix, file === ENVOY_HTTP ? authz.http_service.path_prefix : provider.pathPrefix);
  }
});

const EXT_PROC = join(ROOT, 'examples', 'envoy', 'envoy-ext-proc.yaml');

test('the ext_proc example is a valid v3 Bootstrap with the ExternalProcessor filter read and checked', async (t) => {
  const r = await validate('bootstrap', EXT_PROC);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.includes('envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor'), r.stdout);
  const broken = await validate('bootstrap', edited(EXT_PROC, 'message_timeout: 0.5s', 'message_timeout: 7200s'));
  t.is(broken.code, 1, 'a rule inside the ext_proc config is enforced');
  t.regex(broken.stderr, /MessageTimeout/);
});

test('the ext_proc example sets what docs/ext_proc.md requires, and the e2e tests run exactly its processing mode', (t) => {
  const filter = extProcFilter();
  t.is(filter.failure_mode_allow, false);
  t.is(filter.allow_mode_override, true);
  t.deepEqual(filter.request_attributes, ['source.address', 'connection.uri_san_peer_certificate']);
  t.is(filter.grpc_service.timeout, undefined, 'no deadline on a stream that lasts as long as its exchange');
  const { request_trailer_mode: _a, response_trailer_mode: _b, ...mode } = filter.processing_mode;
  t.deepEqual(mode, RECOMMENDED_EXT_PROC.processingMode);
  t.is(filter.allow_mode_override, RECOMMENDED_EXT_PROC.allowModeOverride);
  t.is(filter.failure_mode_allow, RECOMMENDED_EXT_PROC.failureModeAllow);
});

function extProcFilter(): Record<string, any> {
  const doc = parse(readFileSync(EXT_PROC, 'utf8'));
  const hcm = doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
  return hcm.http_filters.find((f: { name: string }) => f.name === 'envoy.filters.http.ext_proc').typed_config;
}

test("the Istio EnvoyFilter is a valid EnvoyFilter whose ext_proc filter is the Envoy example's, and Envoy reads it", async (t) => {
  const filter = parse(readFileSync(join(ROOT, 'examples', 'istio', 'ext-proc-envoyfilter.yaml'), 'utf8'));
  await validateObject(filter);
  const [patch] = filter.spec.configPatches;
  t.is(patch.applyTo, 'HTTP_FILTER');
  t.is(patch.match.listener.filterChain.filter.subFilter.name, 'envoy.filters.http.router');
  const istio = patch.patch.value.typed_config;
  const envoy = extProcFilter();
  // Everything but the cluster's name (Istio's outbound cluster) is the Envoy example's.
  const strip = (c: Record<string, any>) => ({
    ...c,
    grpc_service: { envoy_grpc: { ...c.grpc_service.envoy_grpc, cluster_name: undefined } },
  });
  t.deepEqual(strip(istio), strip(envoy));
  t.regex(istio.grpc_service.envoy_grpc.cluster_name, /^outbound\|9191\|\|mcp-authz\./);
  // The patched filter, in an Envoy example whose cluster has Istio's name: Envoy's own types read it.
  const bootstrap = readFileSync(EXT_PROC, 'utf8')
    .replaceAll(/cluster_name: mcp-authz$/gm, `cluster_name: "${istio.grpc_service.envoy_grpc.cluster_name}"`)
    .replace('- name: mcp-authz\n', `- name: "${istio.grpc_service.envoy_grpc.cluster_name}"\n`);
  const file = join(mkdtempSync(join(tmpdir(), 'mcp-authz-validate-')), 'istio.yaml');
  writeFileSync(file, bootstrap);
  const r = await validate('bootstrap', file);
  t.is(r.code, 0, r.stderr);
  t.true(bootstrap.includes('cluster_name: "outbound|9191||'));
});

test("the Envoy example's access log prints the decision id from the ext_authz filter's dynamic metadata, and no path", async (t) => {
  const text = readFileSync(ENVOY, 'utf8');
  // The namespace is the filter's canonical name; the key is the one mcp-authz writes.
  t.true(text.includes('- name: envoy.filters.http.ext_authz'));
  t.true(text.includes(`decision_id: "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:${DECISION_ID_KEY})%"`));
  // A path's query string can carry an API key: the log never prints one.
  t.false(/%REQ\(:PATH\)%|%REQ\(X-ENVOY-ORIGINAL-PATH/.test(text));
  const r = await validate('bootstrap', ENVOY);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.includes('envoy.extensions.access_loggers.stream.v3.StdoutAccessLog'), r.stdout);
});

test("the Envoy tracer set-up in docs/tracing.md is valid in the example's connection manager", async (t) => {
  const doc = readFileSync(join(ROOT, 'docs', 'tracing.md'), 'utf8');
  const block = /```yaml\n(tracing:\n[\s\S]*?)```/.exec(doc)?.[1];
  t.truthy(block, 'docs/tracing.md has the tracing: block');
  const indented = block!
    .trimEnd()
    .split('\n')
    .map((l) => ' '.repeat(16) + l)
    .join('\n');
  const file = edited(ENVOY, '                stat_prefix: mcp\n', `                stat_prefix: mcp\n${indented}\n`);
  const r = await validate('bootstrap', file);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.includes('envoy.config.trace.v3.OpenTelemetryConfig'), r.stdout);
});

test("the Istio VirtualService routes /connect/ and /approvals/ to mcp-authz's HTTP port and nothing else of it", async (t) => {
  const vs = parse(readFileSync(join(ROOT, 'examples', 'istio', 'virtual-service.yaml'), 'utf8'));
  await validateObject(vs);
  const toAuthz = vs.spec.http.filter((r: any) =>
    r.route.some((d: any) => d.destination.host.startsWith('mcp-authz.')),
  );
  t.deepEqual(
    toAuthz.flatMap((r: any) => r.match.map((m: any) => m.uri)),
    [{ prefix: '/connect/' }, { prefix: '/approvals/' }],
  );
  t.true(toAuthz.every((r: any) => r.route.every((d: any) => d.destination.port.number === 9090)));
});

test('every Envoy example routes /connect/ and /approvals/ to the HTTP port with its authorization filter off there', (t) => {
  for (const name of ['envoy.yaml', 'envoy-mtls.yaml', 'envoy-http.yaml', 'envoy-ext-proc.yaml']) {
    const doc = parse(readFileSync(join(ROOT, 'examples', 'envoy', name), 'utf8'));
    const hcm = doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const routes = hcm.route_config.virtual_hosts[0].routes;
    for (const prefix of ['/connect/', '/approvals/']) {
      const r = routes.find((x: any) => x.match.prefix === prefix);
      t.truthy(r, `${name}: ${prefix}`);
      const perFilter = Object.values(r.typed_per_filter_config) as any[];
      t.true(
        perFilter.length === 1 && perFilter[0].disabled === true,
        `${name}: ${prefix} skips the authorization filter`,
      );
      const cluster = doc.static_resources.clusters.find((c: any) => c.name === r.route.cluster);
      const port = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value;
      t.is(port, 9090, `${name}: ${prefix} goes to the HTTP port`);
    }
    // Placed before the MCP route, so that nothing else decides them.
    const mcpAt = routes.findIndex((x: any) => x.match.path_separated_prefix === '/mcp');
    t.true(routes.findIndex((x: any) => x.match.prefix === '/connect/') < mcpAt, name);
  }
});
