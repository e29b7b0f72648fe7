// The Envoy and Istio wiring examples parse, point at what the chart installs, send
// mcp-authz the whole MCP body within the service's own body limit, and send it every path
// it answers: the MCP endpoints and the OAuth discovery documents.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { OAuthDiscovery } from '../src/auth/oauth-discovery.js';
import { loadConfigFile, validateConfig } from '../src/config/load.js';
import { ConfigSchema, type Config } from '../src/config/schema.js';
import { EndpointRegistry } from '../src/endpoints/registry.js';
import { toRequest, type WireCheckRequest } from '../src/envoy/to-request.js';
import { CI_VALUES, ROOT, renderChart, validateObject, type K8sObject } from './helpers/helm.js';
import { checkRequest } from './helpers/service.js';

const load = (rel: string) => parseYaml(readFileSync(join(ROOT, rel), 'utf8'), { uniqueKeys: true });
const maxBodyBytes = ConfigSchema.parse({}).limits.maxBodyBytes;
const chartDefaults = renderChart();
const grpcPort = chartDefaults.get('Service')!.spec.ports.find((p: any) => p.name === 'grpc').port as number;

test('the Envoy example calls mcp-authz over gRPC ext_authz v3, failing closed, with the whole body as bytes', (t) => {
  const envoy = load('examples/envoy/envoy.yaml');
  const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
  const filters = hcm.http_filters as { name: string; typed_config: any }[];
  t.is(filters.at(-1)!.name, 'envoy.filters.http.router');
  const ext = filters.find((f) => f.name === 'envoy.filters.http.ext_authz')!.typed_config;
  t.is(ext['@type'], 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz');
  t.is(ext.transport_api_version, 'V3');
  t.false(ext.failure_mode_allow);
  t.deepEqual(ext.with_request_body, {
    max_request_bytes: maxBodyBytes,
    allow_partial_message: false,
    pack_as_bytes: true,
  });
  t.regex(ext.grpc_service.timeout, /^\d+(\.\d+)?s$/);
  const cluster = envoy.static_resources.clusters.find((c: any) => c.name === ext.grpc_service.envoy_grpc.cluster_name);
  t.truthy(cluster, 'the ext_authz cluster is defined');
  const proto = cluster.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
  t.truthy(proto.explicit_http_config.http2_protocol_options, 'gRPC needs HTTP/2');
  t.truthy(cluster.health_checks[0].grpc_health_check);
  t.is(cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value, grpcPort);
});

test("the Istio example registers mcp-authz as envoyExtAuthzGrpc at the chart's Service, with a timeout and the whole body", async (t) => {
  const operator = load('examples/istio/mesh-config.yaml') as K8sObject;
  await t.notThrowsAsync(validateObject(operator));
  const [provider] = operator.spec.meshConfig.extensionProviders;
  const grpc = provider.envoyExtAuthzGrpc;
  const istio = renderChart({
    files: [CI_VALUES.find((f) => f.endsWith('istio-values.yaml'))!],
    namespace: 'mcp-authz',
  });
  t.is(grpc.service, `${istio.get('Service')!.metadata.name}.mcp-authz.svc.cluster.local`);
  t.is(grpc.port, grpcPort);
  t.regex(grpc.timeout, /^\d+(\.\d+)?(ms|s)$/);
  t.false(grpc.failOpen);
  t.deepEqual(grpc.includeRequestBodyInCheck, {
    maxRequestBytes: maxBodyBytes,
    allowPartialMessage: false,
    packAsBytes: true,
  });

  const policy = load('examples/istio/authorization-policy.yaml') as K8sObject;
  await t.notThrowsAsync(validateObject(policy));
  t.is(policy.spec.action, 'CUSTOM');
  t.is(policy.spec.provider.name, provider.name);
  t.truthy(Object.keys(policy.spec.selector.matchLabels).length, 'selects the MCP workloads, not the whole namespace');
});

test('the Istio PeerAuthentication example makes mTLS STRICT for the workloads the AuthorizationPolicy protects', async (t) => {
  const peer = load('examples/istio/peer-authentication.yaml') as K8sObject;
  await t.notThrowsAsync(validateObject(peer));
  t.is(peer.spec.mtls.mode, 'STRICT', 'PERMISSIVE would let plain-text requests in without a peer identity');
  const policy = load('examples/istio/authorization-policy.yaml') as K8sObject;
  t.is(peer.metadata.namespace, policy.metadata.namespace);
  t.deepEqual(peer.spec.selector, policy.spec.selector);
});

test('the Envoy example normalizes paths before ext_authz sees them, and refuses escaped slashes', (t) => {
  const envoy = load('examples/envoy/envoy.yaml');
  const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
  t.true(hcm.normalize_path, 'dot segments resolved and unreserved escapes decoded before routing and ext_authz');
  t.true(hcm.merge_slashes, '`//` merged, as mcp-authz merges it');
  t.is(hcm.path_with_escaped_slashes_action, 'REJECT_REQUEST', '%2F and %5C refused, as mcp-authz refuses them');
});

test('the Istio provider answers 503 when mcp-authz cannot be reached, like the Envoy example, and the mesh merges slashes', (t) => {
  const operator = load('examples/istio/mesh-config.yaml') as K8sObject;
  const grpc = operator.spec.meshConfig.extensionProviders[0].envoyExtAuthzGrpc;
  t.is(grpc.statusOnError, '503');
  const envoy = load('examples/envoy/envoy.yaml');
  const ext = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters.find(
    (f: any) => f.name === 'envoy.filters.http.ext_authz',
  ).typed_config;
  t.is(ext.status_on_error.code, 'ServiceUnavailable');
  t.true(
    ['MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'].includes(operator.spec.meshConfig.pathNormalization.normalization),
  );
});

// ---- Every path mcp-authz answers reaches it ----

interface Answered {
  host: string;
  path: string;
  what: string;
}

/**
 * The paths a config makes mcp-authz answer, each confirmed by the service's own code: the
 * endpoint registry matches it, or the RFC 9728 responder answers it 200.
 */
function answeredPaths(config: Config): Answered[] {
  const endpoints = new EndpointRegistry(config.endpoints);
  const discovery = new OAuthDiscovery(config, endpoints);
  const out: Answered[] = [];
  const request = (host: string, path: string) =>
    toRequest(checkRequest({ method: 'GET', path, host }) as WireCheckRequest, config.limits);
  for (const e of endpoints.all) {
    const host = e.match.host ?? 'mcp.example.com';
    const paths =
      e.match.pathPrefix !== undefined
        ? [e.metadataPath, `${e.metadataPath}/`, `${e.metadataPath}/sse`]
        : ['/', '/mcp', '/messages'];
    for (const path of paths) {
      if (endpoints.match(path, host) !== e) throw new Error(`${path} on ${host} is not endpoint ${e.name}`);
      out.push({ host, path, what: `endpoint ${e.name}` });
    }
    if (e.auth.oauth) {
      const path = `/.well-known/oauth-protected-resource${e.metadataPath}`;
      const answer = discovery.answer(request(host, path));
      if (answer?.status !== 200) throw new Error(`${path} is not answered 200 for ${e.name}`);
      out.push({ host, path, what: `discovery document of ${e.name}` });
    }
  }
  // Documents the service does not publish: answered 404 (with how to authenticate), never 401.
  for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
    if (discovery.answer(request('mcp.example.com', path))?.status !== 404)
      throw new Error(`${path} is not answered 404`);
    out.push({ host: 'mcp.example.com', path, what: 'authorization server document (404)' });
  }
  if (config.oauth.issuers.length > 0) {
    const root = '/.well-known/oauth-protected-resource';
    if (discovery.answer(request('mcp.example.com', root))?.status !== 200)
      throw new Error('the root document is not answered');
    out.push({ host: 'mcp.example.com', path: root, what: 'root discovery document' });
  }
  return out;
}

const renderedConfig = (values: string): Config => {
  const r = renderChart({ files: [CI_VALUES.find((f) => f.endsWith(values))!], namespace: 'mcp-authz' });
  const cm = r.all('ConfigMap').find((c) => c.data?.['config.yaml'] !== undefined)!;
  return validateConfig(parseYaml(cm.data['config.yaml']), values, '/etc/mcp-authz', {});
};
// docs/authentication.md, "OAuth setup": an OAuth endpoint under /mcp/ beside the quickstart's API-key ones.
const oauthConfig = validateConfig(
  {
    publicBaseUrl: 'https://mcp.example.com',
    oauth: { issuers: [{ issuer: 'https://idp.example.com/realms/acme' }] },
    endpoints: [
      {
        name: 'files',
        match: { pathPrefix: '/mcp/files' },
        auth: { apiKey: true, oauth: true },
        resource: 'https://mcp.example.com/mcp/files',
        scopes: ['tools:read_file'],
      },
    ],
  },
  'oauth example',
  ROOT,
  {},
);
const quickstart = loadConfigFile(join(ROOT, 'examples', 'quickstart', 'config.yaml'), {}).config;

/** Istio's string match: exact, "prefix*", "*suffix", or "*" (any non-empty value). */
function istioMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return value !== '';
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  return value === pattern;
}

/** Whether a CUSTOM AuthorizationPolicy's rules send a request for host/path to the provider. */
function istioSends(policy: K8sObject, host: string, path: string): boolean {
  const rules: any[] = policy.spec.rules ?? [];
  return rules.some((rule) => {
    if (rule.from || rule.when) throw new Error('this test reads only `to` operations; extend it for `from`/`when`');
    if (!rule.to) return true;
    return rule.to.some(({ operation: op }: any) => {
      const fields = Object.keys(op ?? {});
      const unknown = fields.filter((f) => !['paths', 'notPaths', 'hosts', 'notHosts'].includes(f));
      if (unknown.length) throw new Error(`this test does not read operation fields ${unknown.join(', ')}`);
      return (
        (op.paths === undefined || op.paths.some((p: string) => istioMatch(p, path))) &&
        (op.notPaths === undefined || !op.notPaths.some((p: string) => istioMatch(p, path))) &&
        (op.hosts === undefined || op.hosts.some((h: string) => istioMatch(h, host))) &&
        (op.notHosts === undefined || !op.notHosts.some((h: string) => istioMatch(h, host)))
      );
    });
  });
}

test('the Istio AuthorizationPolicy sends every MCP endpoint path and every discovery document to mcp-authz', (t) => {
  const policy = load('examples/istio/authorization-policy.yaml') as K8sObject;
  const answered = [renderedConfig('istio-values.yaml'), oauthConfig, quickstart].flatMap(answeredPaths);
  t.true(
    answered.some((a) => a.path === '/.well-known/oauth-protected-resource/mcp/search'),
    'the Istio values publish a path-suffixed document',
  );
  for (const a of answered)
    t.true(istioSends(policy, a.host, a.path), `${a.what}: ${a.host}${a.path} never reaches mcp-authz`);
});

test('the Istio test reads rules the way Istio does: an excluded or unlisted path is not sent', (t) => {
  const only = { spec: { rules: [{ to: [{ operation: { paths: ['/mcp/*'] } }] }] } } as unknown as K8sObject;
  t.true(istioSends(only, 'h', '/mcp/files'));
  t.false(istioSends(only, 'h', '/.well-known/oauth-protected-resource'));
  const except = { spec: { rules: [{ to: [{ operation: { notPaths: ['/healthz'] } }] }] } } as unknown as K8sObject;
  t.false(istioSends(except, 'h', '/healthz'));
  t.true(istioSends(except, 'h', '/healthz/x'));
  t.false(istioSends({ spec: {} } as K8sObject, 'h', '/mcp/files'), 'a CUSTOM policy without rules sends nothing');
});

test('the Envoy example routes every MCP endpoint path to the MCP server and every discovery document somewhere ext_authz answers it', (t) => {
  const envoy = load('examples/envoy/envoy.yaml');
  const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
  const [vhost] = hcm.route_config.virtual_hosts;
  t.deepEqual(vhost.domains, ['*']);
  // Envoy's route matching: prefix (plain string prefix), path_separated_prefix (whole segments), path (exact).
  const matches = (m: { prefix?: string; path_separated_prefix?: string; path?: string }, path: string) =>
    m.prefix !== undefined
      ? path.startsWith(m.prefix)
      : m.path_separated_prefix !== undefined
        ? path === m.path_separated_prefix || path.startsWith(`${m.path_separated_prefix}/`)
        : m.path === path;
  const route = (path: string) => (vhost.routes as any[]).find((r) => matches(r.match, path));
  for (const a of [oauthConfig, quickstart].flatMap(answeredPaths)) {
    const r = route(a.path);
    t.truthy(r, `${a.what}: ${a.path} matches no route`);
    if (a.what.startsWith('endpoint')) t.is(r?.route?.cluster, 'mcp-server', `${a.path} goes to the MCP server`);
    else t.truthy(r?.direct_response ?? r?.route, `${a.path} has a route`);
  }
  t.is(
    route('/.well-known/oauth-protected-resource/mcp/files')?.route,
    undefined,
    'discovery is never forwarded to the MCP server',
  );
});
