// The Envoy and Istio wiring examples parse, point at what the chart installs, and send
// mcp-authz the whole MCP body within the service's own body limit.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigSchema } from '../src/config/schema.js';
import { CI_VALUES, ROOT, renderChart, validateObject, type K8sObject } from './helpers/helm.js';

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
  t.deepEqual(ext.with_request_body, { max_request_bytes: maxBodyBytes, allow_partial_message: false, pack_as_bytes: true });
  t.regex(ext.grpc_service.timeout, /^\d+(\.\d+)?s$/);
  const cluster = envoy.static_resources.clusters.find((c: any) => c.name === ext.grpc_service.envoy_grpc.cluster_name);
  t.truthy(cluster, 'the ext_authz cluster is defined');
  const proto = cluster.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
  t.truthy(proto.explicit_http_config.http2_protocol_options, 'gRPC needs HTTP/2');
  t.truthy(cluster.health_checks[0].grpc_health_check);
  t.is(cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value, grpcPort);
});

test('the Istio example registers mcp-authz as envoyExtAuthzGrpc at the chart\'s Service, with a timeout and the whole body', async (t) => {
  const operator = load('examples/istio/mesh-config.yaml') as K8sObject;
  await t.notThrowsAsync(validateObject(operator));
  const [provider] = operator.spec.meshConfig.extensionProviders;
  const grpc = provider.envoyExtAuthzGrpc;
  const istio = renderChart({ files: [CI_VALUES.find((f) => f.endsWith('istio-values.yaml'))!], namespace: 'mcp-authz' });
  t.is(grpc.service, `${istio.get('Service')!.metadata.name}.mcp-authz.svc.cluster.local`);
  t.is(grpc.port, grpcPort);
  t.regex(grpc.timeout, /^\d+(\.\d+)?(ms|s)$/);
  t.false(grpc.failOpen);
  t.deepEqual(grpc.includeRequestBodyInCheck, { maxRequestBytes: maxBodyBytes, allowPartialMessage: false, packAsBytes: true });

  const policy = load('examples/istio/authorization-policy.yaml') as K8sObject;
  await t.notThrowsAsync(validateObject(policy));
  t.is(policy.spec.action, 'CUSTOM');
  t.is(policy.spec.provider.name, provider.name);
  t.truthy(Object.keys(policy.spec.selector.matchLabels).length, 'selects the MCP workloads, not the whole namespace');
});
