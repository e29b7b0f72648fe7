import test from 'ava';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { renderValuesSchema, VALUES_SCHEMA_FILE } from '../scripts/gen-values-schema.js';
import { CHART, CI_VALUES, helm, helmBin, renderChart, renderNotes, validateObject, type K8sObject, type Rendered } from './helpers/helm.js';

const rendered = new Map<string, Rendered>(CI_VALUES.map((f) => [basename(f), renderChart({ files: [f] })]));
const defaults = CI_VALUES[0]!;

function serviceConfig(r: Rendered): Record<string, any> {
  const cm = r.all('ConfigMap').find((c) => c.data?.['config.yaml'] !== undefined);
  if (!cm) throw new Error('no ConfigMap with config.yaml rendered');
  return parseYaml(cm.data['config.yaml']);
}
const pod = (r: Rendered) => r.get('Deployment')!.spec.template;
const container = (r: Rendered) => pod(r).spec.containers[0];
const portOf = (hostPort: string) => Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));

test('a missing helm binary is an error that says how to install it', (t) => {
  const err = t.throws(() => helmBin({ root: '/nonexistent', path: '/nonexistent/bin' }));
  t.regex(err!.message, /scripts\/install-tools\.sh helm/);
});

test('helm lint passes with every ci values file', (t) => {
  for (const f of CI_VALUES) {
    const out = helm(['lint', CHART, '--strict', '--kube-version', '1.30.0', '-f', f]);
    t.regex(out, /1 chart\(s\) linted, 0 chart\(s\) failed/, basename(f));
  }
});

test('the schema validator rejects a Deployment with a non-numeric container port', async (t) => {
  const dep = structuredClone(rendered.get('default-values.yaml')!.get('Deployment')!);
  dep.spec.template.spec.containers[0].ports[0].containerPort = 'grpc';
  await t.throwsAsync(validateObject(dep), { message: /containerPort must be integer/ });
});

for (const file of CI_VALUES) {
  const name = basename(file);
  test(`${name}: every rendered object is valid against its Kubernetes schema`, async (t) => {
    const r = rendered.get(name)!;
    t.true(r.objects.length >= 4);
    for (const obj of r.objects) await t.notThrowsAsync(validateObject(obj), `${obj.kind}/${obj.metadata.name}`);
  });

  test(`${name}: the rendered config is accepted by the service's own validation`, (t) => {
    const cfg = serviceConfig(rendered.get(name)!);
    const valid = validateConfig(cfg, `${name} ConfigMap`, '/etc/mcp-authz', {});
    t.is(valid.listen.grpc, `0.0.0.0:${container(rendered.get(name)!).ports.find((p: any) => p.name === 'grpc').containerPort}`);
  });

  test(`${name}: container ports, probes and Service target the config's listen ports`, (t) => {
    const r = rendered.get(name)!;
    const cfg = serviceConfig(r);
    const ports = Object.fromEntries(container(r).ports.map((p: any) => [p.name, p.containerPort]));
    t.deepEqual(ports, { grpc: portOf(cfg.listen.grpc), http: portOf(cfg.listen.http) });
    t.is(container(r).startupProbe.grpc.port, ports.grpc);
    t.is(container(r).livenessProbe.httpGet.path, '/healthz');
    t.is(container(r).readinessProbe.httpGet.path, '/readyz');
    const svc = r.get('Service')!;
    t.deepEqual(svc.spec.ports.map((p: any) => [p.name, p.targetPort, p.appProtocol]), [['grpc', 'grpc', 'grpc'], ['http', 'http', 'http']]);
  });

  test(`${name}: every file the config names lies in a volume the pod mounts as a directory`, (t) => {
    const r = rendered.get(name)!;
    const cfg = serviceConfig(r);
    const mounts: { mountPath: string; subPath?: string; name: string }[] = container(r).volumeMounts;
    const files = [cfg.apiKeys?.file, cfg.policy?.bundle].filter(Boolean) as string[];
    for (const f of files) {
      if (f.startsWith('/app/')) continue; // baked into the image
      const m = mounts.find((v) => v.mountPath === dirname(f));
      t.truthy(m, `${f} is not in a mounted directory`);
      t.is(m!.subPath, undefined, 'a subPath mount never sees kubelet updates');
      t.truthy(pod(r).spec.volumes.find((v: any) => v.name === m!.name));
    }
    t.is(container(r).args.slice(0, 3).join(' '), 'serve --config /etc/mcp-authz/config.yaml');
    t.truthy(mounts.find((m) => m.mountPath === '/etc/mcp-authz' && m.subPath === undefined));
  });
}

test('pods run restricted: non-root, read-only root, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, writable /tmp', (t) => {
  const r = rendered.get('default-values.yaml')!;
  const podSc = pod(r).spec.securityContext;
  const sc = container(r).securityContext;
  t.true(podSc.runAsNonRoot);
  t.true(podSc.runAsUser > 0);
  t.is(podSc.seccompProfile.type, 'RuntimeDefault');
  t.like(sc, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true });
  t.deepEqual(sc.capabilities.drop, ['ALL']);
  t.is(sc.seccompProfile.type, 'RuntimeDefault');
  const tmp = container(r).volumeMounts.find((m: any) => m.mountPath === '/tmp');
  t.truthy(pod(r).spec.volumes.find((v: any) => v.name === tmp.name && v.emptyDir));
  t.false(pod(r).spec.automountServiceAccountToken);
});

test('a PodDisruptionBudget exists only when more than one replica runs', (t) => {
  t.is(renderChart({ files: [defaults], set: { replicaCount: 1 } }).get('PodDisruptionBudget'), undefined);
  const pdb = renderChart({ files: [defaults], set: { replicaCount: 3 } }).get('PodDisruptionBudget');
  t.is(pdb?.spec.maxUnavailable, 1);
  t.truthy(renderChart({ files: [defaults], set: { 'autoscaling.enabled': true, 'autoscaling.minReplicas': 2 } }).get('PodDisruptionBudget'));
  t.is(renderChart({ files: [defaults], set: { 'autoscaling.enabled': true, 'autoscaling.minReplicas': 1 } }).get('PodDisruptionBudget'), undefined);
});

test('with autoscaling the HPA owns the replica count', (t) => {
  const r = rendered.get('redis-values.yaml')!;
  t.is(r.get('Deployment')!.spec.replicas, undefined);
  t.like(r.get('HorizontalPodAutoscaler')!.spec, { minReplicas: 2, maxReplicas: 6 });
});

test('a config change changes the config checksum, so pods roll; an unrelated change does not', (t) => {
  const checksum = (r: Rendered) => pod(r).metadata.annotations['checksum/config'];
  const base = checksum(renderChart({ files: [defaults] }));
  t.regex(base, /^[0-9a-f]{64}$/);
  t.not(checksum(renderChart({ files: [defaults], set: { 'config.rateLimit.failedAuth.maxAttempts': 5 } })), base);
  t.is(checksum(renderChart({ files: [defaults], set: { 'podLabels.team': 'platform' } })), base);
});

test('a key registry change changes the secret checksum; an existing Secret is reloaded in place instead', (t) => {
  const key = (sha: string) => [{ id: 'k1', sha256: sha }];
  const sum = (r: Rendered) => pod(r).metadata.annotations['checksum/secret'];
  const a = renderChart({ files: [defaults], setJson: { 'apiKeys.keys': key('a'.repeat(64)) } });
  const b = renderChart({ files: [defaults], setJson: { 'apiKeys.keys': key('b'.repeat(64)) } });
  t.regex(sum(a), /^[0-9a-f]{64}$/);
  t.not(sum(a), sum(b));
  t.is(parseYaml(a.get('Secret')!.stringData['keys.yaml']).keys[0].sha256, 'a'.repeat(64));
  const existing = rendered.get('existing-secret-values.yaml')!;
  t.is(existing.get('Secret'), undefined);
  t.is(sum(existing), undefined);
  t.is(pod(existing).spec.volumes.find((v: any) => v.name === 'api-keys').secret.secretName, 'mcp-authz-api-keys');
  t.is(serviceConfig(existing).apiKeys.file, '/var/lib/mcp-authz/keys/registry.yaml');
});

test('changing containerPorts moves the listen addresses, container ports and probes together', (t) => {
  const r = renderChart({ files: [defaults], set: { 'containerPorts.grpc': 10001, 'containerPorts.http': 10002 } });
  t.deepEqual(serviceConfig(r).listen, { grpc: '0.0.0.0:10001', http: '0.0.0.0:10002' });
  t.deepEqual(container(r).ports.map((p: any) => p.containerPort), [10001, 10002]);
  t.is(container(r).startupProbe.grpc.port, 10001);
});

test('the policy bundle comes from the image by default, else from a binaryData ConfigMap or a volume', (t) => {
  t.is(serviceConfig(rendered.get('default-values.yaml')!).policy.bundle, '/app/policies/build/bundle.tar.gz');
  t.is(pod(rendered.get('default-values.yaml')!).spec.volumes.find((v: any) => v.name === 'policy'), undefined);
  const ha = rendered.get('ha-values.yaml')!;
  const cm = ha.get('ConfigMap', 'mcp-mcp-authz-policy')!;
  t.is(Buffer.from(cm.binaryData['bundle.tar.gz'], 'base64')[0], 0x1f, 'a gzip bundle');
  t.is(pod(ha).spec.volumes.find((v: any) => v.name === 'policy').configMap.name, 'mcp-mcp-authz-policy');
  const vol = rendered.get('existing-secret-values.yaml')!;
  t.is(pod(vol).spec.volumes.find((v: any) => v.name === 'policy').persistentVolumeClaim.claimName, 'rego-bundles');
  t.is(serviceConfig(vol).policy.bundle, '/var/lib/mcp-authz/policy/mcp.tar.gz');
});

test('a Redis URL goes into the config, or from a Secret into MCP_REDIS_URL which the service reads', (t) => {
  t.is(serviceConfig(rendered.get('redis-values.yaml')!).rateLimit.redis.url, 'redis://redis-master.redis.svc.cluster.local:6379/0');
  const r = rendered.get('existing-secret-values.yaml')!;
  const env = container(r).env.find((e: any) => e.name === 'MCP_REDIS_URL');
  t.deepEqual(env.valueFrom.secretKeyRef, { name: 'mcp-authz-redis', key: 'url' });
  const cfg = validateConfig(serviceConfig(r), 'configmap', '/etc/mcp-authz', { MCP_REDIS_URL: 'rediss://:pw@redis:6380' });
  t.is(cfg.rateLimit.redis?.url, 'rediss://:pw@redis:6380');
  t.throws(() => validateConfig(serviceConfig(r), 'configmap', '/etc/mcp-authz', { MCP_REDIS_URL: 'http://nope' }), { instanceOf: ConfigError });
});

test('the values schema refuses a config the service would refuse, naming the field', (t) => {
  const err = t.throws(() => renderChart({ files: [defaults], set: { 'config.endpoints[0].name': 'bad name', 'config.endpoints[0].match.pathPrefix': '/x' } }));
  t.regex(err!.message, /config\/endpoints\/0\/name/);
  const listen = t.throws(() => renderChart({ set: { 'config.listen.grpc': '127.0.0.1:1' } }));
  t.regex(listen!.message, /listen/);
  const alg = t.throws(() => renderChart({ setJson: { 'config.oauth.issuers': [{ issuer: 'https://idp.example.com', algorithms: ['HS256'] }] } }));
  t.regex(alg!.message, /algorithms/);
});

test('the committed values.schema.json is what npm run gen:values-schema generates', (t) => {
  t.is(readFileSync(VALUES_SCHEMA_FILE, 'utf8'), renderValuesSchema(), 'run `npm run gen:values-schema` and commit the result');
});

test('the Grafana dashboard ships as a ConfigMap labelled for the Grafana sidecar', (t) => {
  const cm = rendered.get('default-values.yaml')!.get('ConfigMap', 'mcp-mcp-authz-dashboard')!;
  t.is(cm.metadata.labels!.grafana_dashboard, '1');
  const shipped = JSON.parse(cm.data['mcp-authz.json']);
  t.deepEqual(shipped, JSON.parse(readFileSync(join(CHART, 'dashboards', 'mcp-authz.json'), 'utf8')));
  t.is(renderChart({ files: [defaults], set: { 'metrics.dashboard.enabled': false } }).get('ConfigMap', 'mcp-mcp-authz-dashboard'), undefined);
});

test('the HA values ship the alerts and a ServiceMonitor scraping /metrics on the HTTP port', (t) => {
  const rule = rendered.get('ha-values.yaml')!.get('PrometheusRule')! as K8sObject;
  const alerts = rule.spec.groups.flatMap((g: any) => g.rules.map((r: any) => r.alert));
  t.true(alerts.length >= 11, 'the alerts of test/alerts.test.ts');
  const sm = rendered.get('ha-values.yaml')!.get('ServiceMonitor')!;
  t.is(sm.spec.endpoints[0].port, 'http');
  t.is(sm.spec.endpoints[0].path, '/metrics');
});

test('NOTES tell how to wire Envoy and Istio to the release\'s gRPC address', (t) => {
  const notes = renderNotes([defaults]);
  t.regex(notes, /mcp-mcp-authz\.mcp\.svc\.cluster\.local:9191/);
  t.regex(notes, /envoy\.filters\.http\.ext_authz/);
  t.regex(notes, /envoyExtAuthzGrpc/);
  t.regex(notes, /action: CUSTOM/);
});
