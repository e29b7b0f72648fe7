import test from 'ava';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { definitionDigest } from '../src/pins/definition.js';
import { parsePinsFile } from '../src/pins/pins-file.js';
import { renderValuesSchema, VALUES_SCHEMA_FILE } from '../scripts/gen-values-schema.js';
import {
  CHART,
  CI_VALUES,
  helm,
  helmBin,
  renderChart,
  renderNotes,
  validateObject,
  type K8sObject,
  type Rendered,
} from './helpers/helm.js';

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
    t.is(
      valid.listen.grpc,
      `0.0.0.0:${container(rendered.get(name)!).ports.find((p: any) => p.name === 'grpc').containerPort}`,
    );
  });

  test(`${name}: container ports, probes and Service target the config's listen ports`, (t) => {
    const r = rendered.get(name)!;
    const cfg = serviceConfig(r);
    const ports = Object.fromEntries(container(r).ports.map((p: any) => [p.name, p.containerPort]));
    t.deepEqual(ports, { grpc: portOf(cfg.listen.grpc), http: portOf(cfg.listen.http) });
    t.is(container(r).startupProbe.httpGet.path, '/healthz');
    t.is(container(r).livenessProbe.httpGet.path, '/healthz');
    // Kubernetes' gRPC probe has no TLS: over TLS, readiness is the HTTP port's /readyz.
    if ((cfg.tls?.grpc ?? (cfg.tls ? 'tls' : 'off')) === 'off') t.is(container(r).readinessProbe.grpc.port, ports.grpc);
    else
      t.deepEqual(
        [container(r).readinessProbe.httpGet.path, container(r).readinessProbe.httpGet.port],
        ['/readyz', 'http'],
      );
    const svc = r.get('Service')!;
    t.deepEqual(
      svc.spec.ports.map((p: any) => [p.name, p.targetPort, p.appProtocol]),
      [
        ['grpc', 'grpc', 'grpc'],
        ['http', 'http', 'http'],
      ],
    );
  });

  test(`${name}: every file the config names lies in a volume the pod mounts as a directory`, (t) => {
    const r = rendered.get(name)!;
    const cfg = serviceConfig(r);
    const mounts: { mountPath: string; subPath?: string; name: string }[] = container(r).volumeMounts;
    const upstreamFiles = (cfg.endpoints ?? []).flatMap((e: any) =>
      e.upstream
        ? [
            e.upstream.valueFile,
            e.upstream.client?.secretFile,
            e.upstream.client?.privateKeyFile,
            e.upstream.actorTokenFile,
          ]
        : [],
    );
    const files = [
      cfg.authzen?.secretFile,
      cfg.approvals?.oidc?.clientSecretFile,
      cfg.approvals?.receiptKeyFile,
      cfg.approvals?.sessionKeyFile,
      ...(cfg.endpoints ?? []).map((e: any) => e.upstream?.encryptionKeyFile),
      cfg.apiKeys?.file,
      cfg.policy?.bundle,
      cfg.tls?.certFile,
      cfg.tls?.keyFile,
      cfg.tls?.clientCaFile,
      ...upstreamFiles,
    ].filter(Boolean) as string[];
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

test('memory request and limit cover the measured RSS of the default workers with headroom; no CPU limit', (t) => {
  const results = join(CHART, '..', '..', 'bench', 'results');
  const read = (f: string) => JSON.parse(readFileSync(join(results, f), 'utf8'));
  const workers = Number(parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')).workers);
  // The throughput run the README reports, with serve's default workers (one per core).
  const latest = read('latest.json');
  t.is(latest.machine.cores, workers, 'measured with as many workers as the chart runs');
  const benchPeakMiB = Math.max(
    ...latest.runs
      .filter((r: any) => r.system === 'mcp-authz' && r.peakRssBytes)
      .map((r: any) => r.peakRssBytes / 2 ** 20),
  );
  // Every soak with the default workers, pruned raw runs included (npm run bench:history keeps their figures).
  const soaks = (
    read('history.json') as { kind: string; machine: { cores: number }; soak?: { workers: string; peakMiB: number } }[]
  ).filter((e) => e.kind === 'soak' && e.soak?.workers === 'default' && e.machine.cores === workers);
  t.true(soaks.length >= 2);
  const soakPeakMiB = Math.max(...soaks.map((e) => e.soak!.peakMiB));
  const mib = (q: string) => Number(/^(\d+)(Mi|Gi)$/.exec(q)![1]) * (q.endsWith('Gi') ? 1024 : 1);
  const { requests, limits } = container(rendered.get('default-values.yaml')!).resources;
  t.true(mib(requests.memory) >= soakPeakMiB * 1.1, `request ${requests.memory} vs soak peak ${soakPeakMiB} MiB`);
  t.true(
    mib(limits.memory) >= benchPeakMiB * 1.35,
    `limit ${limits.memory} vs benchmark peak ${benchPeakMiB.toFixed(0)} MiB`,
  );
  t.true(mib(requests.memory) < mib(limits.memory));
  t.is(limits.cpu, undefined, 'a CPU limit throttles Checks mid-flight');
  t.truthy(requests.cpu);
});

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

test('approvals, the AuthZEN API and userConnections run one worker per pod; other configs the workers value', (t) => {
  const args = (r: Rendered) => container(r).args as string[];
  const workersOf = (r: Rendered) => args(r)[args(r).indexOf('--workers') + 1];
  t.is(workersOf(rendered.get('default-values.yaml')!), '2');
  t.is(workersOf(rendered.get('secret-files-values.yaml')!), '1');
  t.is(workersOf(renderChart({ files: [defaults], set: { 'config.authzen.enabled': true } })), '1');
  t.is(workersOf(renderChart({ files: [defaults], set: { 'config.authzen.enabled': false, workers: 3 } })), '3');
});

test('a PodDisruptionBudget exists only when more than one replica runs', (t) => {
  t.is(renderChart({ files: [defaults], set: { replicaCount: 1 } }).get('PodDisruptionBudget'), undefined);
  const pdb = renderChart({ files: [defaults], set: { replicaCount: 3 } }).get('PodDisruptionBudget');
  t.is(pdb?.spec.maxUnavailable, 1);
  t.truthy(
    renderChart({ files: [defaults], set: { 'autoscaling.enabled': true, 'autoscaling.minReplicas': 2 } }).get(
      'PodDisruptionBudget',
    ),
  );
  t.is(
    renderChart({ files: [defaults], set: { 'autoscaling.enabled': true, 'autoscaling.minReplicas': 1 } }).get(
      'PodDisruptionBudget',
    ),
    undefined,
  );
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
  t.deepEqual(
    container(r).ports.map((p: any) => p.containerPort),
    [10001, 10002],
  );
  t.is(container(r).readinessProbe.grpc.port, 10001);
});

test('containerPorts.extAuthzHttp serves the HTTP authorization service: listen address, container port and Service port together; off by default', (t) => {
  const off = rendered.get('default-values.yaml')!;
  t.is(serviceConfig(off).listen.extAuthzHttp, undefined);
  t.falsy(container(off).ports.find((p: any) => p.name === 'ext-authz-http'));
  const r = renderChart({
    files: [defaults],
    set: { 'containerPorts.extAuthzHttp': 9292, 'config.clientAddress.from': 'x-forwarded-for' },
  });
  const cfg = serviceConfig(r);
  t.is(cfg.listen.extAuthzHttp, '0.0.0.0:9292');
  t.is(validateConfig(cfg, 'ConfigMap', '/etc/mcp-authz', {}).listen.extAuthzHttp, '0.0.0.0:9292');
  t.is(container(r).ports.find((p: any) => p.name === 'ext-authz-http').containerPort, 9292);
  const svc = r.get('Service')!.spec.ports.find((p: any) => p.name === 'ext-authz-http');
  t.deepEqual([svc.port, svc.targetPort, svc.appProtocol], [9292, 'ext-authz-http', 'http']);
});

test('tls.secretName mounts the Secret as a directory, fills config.tls with its files and moves readiness to /readyz; mTLS with a client CA key', async (t) => {
  const off = rendered.get('default-values.yaml')!;
  t.is(serviceConfig(off).tls, undefined);
  t.truthy(container(off).readinessProbe.grpc, 'no TLS: the gRPC probe');

  const r = renderChart({
    files: [defaults],
    set: { 'tls.secretName': 'mcp-authz-cert', 'tls.clientCaKey': 'ca.crt' },
  });
  const cfg = serviceConfig(r);
  t.deepEqual(cfg.tls, {
    certFile: '/var/lib/mcp-authz/tls/tls.crt',
    keyFile: '/var/lib/mcp-authz/tls/tls.key',
    clientCaFile: '/var/lib/mcp-authz/tls/ca.crt',
  });
  t.like(
    validateConfig(cfg, 'ConfigMap', '/etc/mcp-authz', {}).tls,
    { grpc: 'mtls', extAuthzHttp: 'mtls', http: 'off' },
    'the service reads it as the chart meant',
  );
  const volume = pod(r).spec.volumes.find((v: any) => v.name === 'tls');
  t.deepEqual(volume.secret, { secretName: 'mcp-authz-cert', defaultMode: 0o440 });
  const mount = container(r).volumeMounts.find((m: any) => m.name === 'tls');
  t.deepEqual(
    [mount.mountPath, mount.readOnly, mount.subPath],
    ['/var/lib/mcp-authz/tls', true, undefined],
    "a directory (no subPath): kubelet's swap reaches the watcher",
  );
  t.deepEqual(
    container(r).readinessProbe.httpGet,
    { path: '/readyz', port: 'http', scheme: 'HTTP' },
    'the gRPC probe has no TLS: /readyz instead',
  );
  await t.notThrowsAsync(Promise.all(r.objects.map(validateObject)));

  const https = renderChart({
    files: [defaults],
    set: { 'tls.secretName': 'mcp-authz-cert', 'config.tls.http': 'tls', 'config.tls.grpc': 'off' },
  });
  t.like(serviceConfig(https).tls, { grpc: 'off', http: 'tls' });
  t.is(container(https).livenessProbe.httpGet.scheme, 'HTTPS');
  t.is(container(https).startupProbe.httpGet.scheme, 'HTTPS');
  t.truthy(container(https).readinessProbe.grpc, 'a cleartext gRPC port keeps the gRPC probe');
});

test('the chart refuses TLS it cannot serve: config.tls without its Secret, and mTLS on the port the kubelet probes', (t) => {
  t.throws(() => renderChart({ files: [defaults], set: { 'config.tls.grpc': 'tls' } }), {
    message: /config\.tls needs its certificate from a Secret: set tls\.secretName/,
  });
  t.throws(
    () =>
      renderChart({
        files: [defaults],
        set: { 'tls.secretName': 's', 'tls.clientCaKey': 'ca.crt', 'config.tls.http': 'mtls' },
      }),
    { message: /the kubelet's probes present no client certificate/ },
  );
  t.throws(
    () => renderChart({ files: [defaults], setJson: { 'config.tls': { certFile: '/x' } } }),
    { message: /certFile/ },
    "the files are the chart's to fill in",
  );
});

test('the policy bundle comes from the image by default, else from a binaryData ConfigMap or a volume', (t) => {
  t.is(serviceConfig(rendered.get('default-values.yaml')!).policy.bundle, '/app/policies/build/bundle.tar.gz');
  t.is(
    pod(rendered.get('default-values.yaml')!).spec.volumes.find((v: any) => v.name === 'policy'),
    undefined,
  );
  const ha = rendered.get('ha-values.yaml')!;
  const cm = ha.get('ConfigMap', 'mcp-mcp-authz-policy')!;
  t.is(Buffer.from(cm.binaryData['bundle.tar.gz'], 'base64')[0], 0x1f, 'a gzip bundle');
  t.is(pod(ha).spec.volumes.find((v: any) => v.name === 'policy').configMap.name, 'mcp-mcp-authz-policy');
  const vol = rendered.get('existing-secret-values.yaml')!;
  t.is(pod(vol).spec.volumes.find((v: any) => v.name === 'policy').persistentVolumeClaim.claimName, 'rego-bundles');
  t.is(serviceConfig(vol).policy.bundle, '/var/lib/mcp-authz/policy/mcp.tar.gz');
});

test("the Redis URL reaches the pod only from a Secret (the chart's or an existing one), never the ConfigMap", (t) => {
  const url = 'rediss://:s3cret@redis-master.redis.svc.cluster.local:6380/0';
  const r = renderChart({ files: [defaults], set: { 'redis.url': url } });
  const cm = r.all('ConfigMap').find((c) => c.data?.['config.yaml'] !== undefined)!;
  t.false(JSON.stringify(r.all('ConfigMap')).includes('s3cret'), 'no ConfigMap carries the URL');
  t.is(serviceConfig(r).rateLimit?.redis?.url, undefined);
  const secret = r.get('Secret', 'mcp-mcp-authz-redis')!;
  t.is(secret.stringData['redis-url'], url);
  const env = container(r).env.find((e: any) => e.name === 'MCP_REDIS_URL');
  t.deepEqual(env.valueFrom.secretKeyRef, { name: 'mcp-mcp-authz-redis', key: 'redis-url' });
  t.false(JSON.stringify(container(r)).includes('s3cret'));
  // The service reads the variable the way the pod sets it.
  const cfg = validateConfig(parseYaml(cm.data['config.yaml']), 'configmap', '/etc/mcp-authz', { MCP_REDIS_URL: url });
  t.is(cfg.rateLimit.redis?.url, url);
  t.throws(() => validateConfig(serviceConfig(r), 'configmap', '/etc/mcp-authz', { MCP_REDIS_URL: 'http://nope' }), {
    instanceOf: ConfigError,
  });
  // A new URL rolls the pods: it is read once at start-up.
  const other = renderChart({ files: [defaults], set: { 'redis.url': 'redis://other:6379' } });
  t.not(pod(other).metadata.annotations['checksum/redis'], pod(r).metadata.annotations['checksum/redis']);

  const existing = rendered.get('existing-secret-values.yaml')!;
  t.deepEqual(container(existing).env.find((e: any) => e.name === 'MCP_REDIS_URL').valueFrom.secretKeyRef, {
    name: 'mcp-authz-redis',
    key: 'url',
  });
  t.is(existing.get('Secret', 'mcp-mcp-authz-redis'), undefined);
  t.is(container(rendered.get('default-values.yaml')!).env, undefined, 'no Redis, no variable');
});

test('the values schema refuses secrets where they would land in the ConfigMap or the Deployment', (t) => {
  const inConfig = t.throws(() =>
    renderChart({ files: [defaults], setJson: { 'config.rateLimit': { redis: { url: 'redis://:pw@r:6379' } } } }),
  );
  t.regex(inConfig!.message, /config\/rateLimit\/redis.*url/s);
  t.notThrows(
    () => renderChart({ files: [defaults], setJson: { 'config.rateLimit': { redis: { keyPrefix: 'team-a' } } } }),
    'keyPrefix stays configurable',
  );
  const keys = t.throws(() =>
    renderChart({ files: [defaults], setJson: { 'config.apiKeys': { keys: [{ id: 'a', sha256: 'a'.repeat(64) }] } } }),
  );
  t.regex(keys!.message, /config\/apiKeys.*keys/s);
  for (const name of ['MCP_API_KEYS', 'MCP_REDIS_URL']) {
    const plain = t.throws(() => renderChart({ files: [defaults], setJson: { extraEnv: [{ name, value: 'x' }] } }));
    t.regex(plain!.message, /extraEnv\/0/);
    const ref = renderChart({
      files: [defaults],
      setJson: { extraEnv: [{ name, valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] },
    });
    t.truthy(container(ref).env.find((e: any) => e.name === name).valueFrom);
  }
});

test('the values schema refuses an endpoint match that names neither a path prefix nor a host', (t) => {
  const err = t.throws(() => renderChart({ setJson: { 'config.endpoints': [{ name: 'files', match: {} }] } }));
  t.regex(err!.message, /config\/endpoints\/0\/match/);
  t.throws(
    () => validateConfig({ endpoints: [{ name: 'files', match: {} }] }, 'x', '/'),
    { instanceOf: ConfigError },
    'as the service does',
  );
  t.notThrows(() =>
    renderChart({ setJson: { 'config.endpoints': [{ name: 'files', match: { host: 'files.example.com' } }] } }),
  );
});

test('the chart refuses Kubernetes older than 1.24 (gRPC probes)', (t) => {
  const err = t.throws(() => helm(['template', 'mcp', CHART, '--kube-version', '1.23.0']));
  t.regex(err!.message, /requires kubeVersion: >=1\.24/);
  t.notThrows(() => helm(['template', 'mcp', CHART, '--kube-version', '1.24.0']));
});

test('envFrom, templated extraObjects and Istio pod annotations reach the rendered objects', async (t) => {
  const r = renderChart({
    files: [defaults],
    setJson: {
      envFrom: [{ secretRef: { name: 'mcp-authz-env' } }],
      extraObjects: ['apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra\ndata: { a: b }\n'],
    },
  });
  t.deepEqual(container(r).envFrom, [{ secretRef: { name: 'mcp-authz-env' } }]);
  t.deepEqual(r.get('ConfigMap', 'mcp-extra')?.data, { a: 'b' });
  const istio = rendered.get('istio-values.yaml')!;
  t.is(pod(istio).metadata.annotations['proxy.istio.io/config'], '{"holdApplicationUntilProxyStarts": true}');
  const callers = istio.get('AuthorizationPolicy', 'mcp-authz-callers')!;
  t.is(
    callers.spec.selector.matchLabels['app.kubernetes.io/name'],
    'mcp-authz',
    'templates inside extraObjects are expanded',
  );
  await t.notThrowsAsync(validateObject(callers));
});

test("the Istio values scrape /metrics through STRICT mTLS with Istio's certificates and relabel the target", (t) => {
  const sm = rendered.get('istio-values.yaml')!.get('ServiceMonitor')!;
  const [ep] = sm.spec.endpoints;
  t.is(ep.scheme, 'https');
  t.like(ep.tlsConfig, {
    caFile: '/etc/prom-certs/root-cert.pem',
    certFile: '/etc/prom-certs/cert-chain.pem',
    keyFile: '/etc/prom-certs/key.pem',
    insecureSkipVerify: true,
  });
  t.is(ep.relabelings[0].targetLabel, 'istio_revision');
  const plain = rendered.get('ha-values.yaml')!.get('ServiceMonitor')!.spec.endpoints[0];
  t.is(plain.scheme, undefined);
  t.is(plain.tlsConfig, undefined);
});

test("helm lint --strict passes with the chart's own defaults", (t) => {
  t.regex(helm(['lint', CHART, '--strict', '--kube-version', '1.30.0']), /1 chart\(s\) linted, 0 chart\(s\) failed/);
});

test('the values schema refuses a config the service would refuse, naming the field', (t) => {
  const err = t.throws(() =>
    renderChart({
      files: [defaults],
      set: { 'config.endpoints[0].name': 'bad name', 'config.endpoints[0].match.pathPrefix': '/x' },
    }),
  );
  t.regex(err!.message, /config\/endpoints\/0\/name/);
  const listen = t.throws(() => renderChart({ set: { 'config.listen.grpc': '127.0.0.1:1' } }));
  t.regex(listen!.message, /listen/);
  const alg = t.throws(() =>
    renderChart({
      setJson: { 'config.oauth.issuers': [{ issuer: 'https://idp.example.com', algorithms: ['HS256'] }] },
    }),
  );
  t.regex(alg!.message, /algorithms/);
});

test('a Redis Cluster through the chart: cluster and nodes in config.rateLimit.redis, the URL from the Secret as the seed', (t) => {
  const file = CI_VALUES.find((f) => basename(f) === 'redis-values.yaml')!;
  const r = renderChart({
    files: [file],
    setJson: { 'config.rateLimit.redis': { cluster: true, nodes: ['redis://redis-cluster-1.redis:6379'] } },
  });
  const env = { MCP_REDIS_URL: 'redis://:pw@redis-cluster.redis:6379' };
  const cfg = validateConfig(serviceConfig(r), 'redis cluster ConfigMap', '/etc/mcp-authz', env);
  t.like(cfg.rateLimit.redis, { url: env.MCP_REDIS_URL, cluster: true, nodes: ['redis://redis-cluster-1.redis:6379'] });
  t.throws(
    () => renderChart({ files: [file], setJson: { 'config.rateLimit.redis': { cluster: 'yes' } } }),
    undefined,
    'the values schema refuses a cluster that is not a boolean',
  );
});

test('per-tool quotas, mTLS workloads and session cookies pass through the chart into the config the service reads', (t) => {
  const read = (name: string) =>
    validateConfig(serviceConfig(rendered.get(name)!), `${name} ConfigMap`, '/etc/mcp-authz', {});
  t.deepEqual(read('redis-values.yaml').rateLimit.perTool, [
    { name: 'deletes', match: 'tools:delete_*', rps: 1, burst: 3 },
    { name: 'tools', match: 'tools:*', rps: 20, burst: 0 },
  ]);
  const istio = read('istio-values.yaml');
  const agents = istio.endpoints.find((e) => e.name === 'agents')!;
  t.like(agents.auth, { apiKey: false, mtls: true });
  t.deepEqual(agents.workloads, {
    'spiffe://cluster.local/ns/agents/sa/planner': ['tools:search', 'tools:read_*'],
    'spiffe://cluster.local/ns/agents/*': ['tools:list_files'],
  });
  const dashboard = istio.endpoints.find((e) => e.name === 'dashboard')!;
  t.is(dashboard.auth.jwtCookie, '__Host-mcp_session');
  t.deepEqual(dashboard.allowedOrigins, ['https://mcp.example.com']);
});

test('the values schema refuses a per-tool quota rule, workload grant, cookie name or origin list the service would refuse, naming the field', (t) => {
  const refused = (setJson: Record<string, unknown>, field: RegExp) =>
    t.regex(t.throws(() => renderChart({ files: [defaults], setJson }))!.message, field, JSON.stringify(setJson));
  const quota = (rule: Record<string, unknown>) => ({ 'config.rateLimit': { perTool: [rule] } });
  refused(quota({ name: 'bad name', match: 'tools:*', rps: 1 }), /config\/rateLimit\/perTool\/0\/name/);
  refused(quota({ name: 'deletes', match: 'delete_*', rps: 1 }), /config\/rateLimit\/perTool\/0\/match/);
  refused(quota({ name: 'deletes', match: 'tools:delete_*', rps: 0 }), /config\/rateLimit\/perTool\/0\/rps/);
  refused(quota({ name: 'deletes', match: 'tools:delete_*' }), /config\/rateLimit\/perTool\/0.*rps/s);
  refused(
    quota({ name: 'deletes', match: 'tools:delete_*', rps: 1, burst: 1.5 }),
    /config\/rateLimit\/perTool\/0\/burst/,
  );
  const endpoint = (e: Record<string, unknown>) => ({
    'config.endpoints': [{ name: 'a', match: { pathPrefix: '/a' }, ...e }],
  });
  refused(
    endpoint({ rateLimit: { perTool: [{ name: 'x', match: 'tools:*', rps: 1, per: 'second' }] } }),
    /config\/endpoints\/0\/rateLimit\/perTool\/0/,
  );
  refused(endpoint({ auth: { mtls: 'yes' } }), /config\/endpoints\/0\/auth\/mtls/);
  refused(
    endpoint({ auth: { mtls: true }, workloads: { 'spiffe://cluster.local/ns/a/sa/b': ['delete everything'] } }),
    /config\/endpoints\/0\/workloads/,
  );
  refused(endpoint({ auth: { jwtCookie: 'my session' } }), /config\/endpoints\/0\/auth\/jwtCookie/);
  refused(endpoint({ allowedOrigins: [] }), /config\/endpoints\/0\/allowedOrigins/);
  t.notThrows(() =>
    renderChart({
      files: [defaults],
      setJson: {
        ...quota({ name: 'deletes', match: 'tools:delete_*', rps: 0.5 }),
        ...endpoint({
          auth: { apiKey: true, mtls: true },
          workloads: { 'spiffe://cluster.local/ns/a/*': ['tools:*'] },
          rateLimit: { perTool: [] },
        }),
      },
    }),
  );
});

test('the committed values.schema.json is what npm run gen:values-schema generates', (t) => {
  t.is(
    readFileSync(VALUES_SCHEMA_FILE, 'utf8'),
    renderValuesSchema(),
    'run `npm run gen:values-schema` and commit the result',
  );
});

test('the Grafana dashboard ships as a ConfigMap labelled for the Grafana sidecar', (t) => {
  const cm = rendered.get('default-values.yaml')!.get('ConfigMap', 'mcp-mcp-authz-dashboard')!;
  t.is(cm.metadata.labels!.grafana_dashboard, '1');
  const shipped = JSON.parse(cm.data['mcp-authz.json']);
  t.deepEqual(shipped, JSON.parse(readFileSync(join(CHART, 'dashboards', 'mcp-authz.json'), 'utf8')));
  t.is(
    renderChart({ files: [defaults], set: { 'metrics.dashboard.enabled': false } }).get(
      'ConfigMap',
      'mcp-mcp-authz-dashboard',
    ),
    undefined,
  );
});

test('the HA values ship the alerts and a ServiceMonitor scraping /metrics on the HTTP port', (t) => {
  const rule = rendered.get('ha-values.yaml')!.get('PrometheusRule')! as K8sObject;
  const alerts = rule.spec.groups.flatMap((g: any) => g.rules.map((r: any) => r.alert));
  t.true(alerts.length >= 11, 'the alerts of test/alerts.test.ts');
  const sm = rendered.get('ha-values.yaml')!.get('ServiceMonitor')!;
  t.is(sm.spec.endpoints[0].port, 'http');
  t.is(sm.spec.endpoints[0].path, '/metrics');
});

test("NOTES tell how to wire Envoy and Istio to the release's gRPC address", (t) => {
  const notes = renderNotes([defaults]);
  t.regex(notes, /mcp-mcp-authz\.mcp\.svc\.cluster\.local:9191/);
  t.regex(notes, /envoy\.filters\.http\.ext_authz/);
  t.regex(notes, /envoyExtAuthzGrpc/);
  t.regex(notes, /action: CUSTOM/);
  t.regex(notes, /envoy\.filters\.http\.ext_proc/);
  t.regex(notes, /failure_mode_allow: false[\s\S]*allow_mode_override: true/);
  t.regex(
    notes,
    /outbound\|9191\|\|mcp-mcp-authz\.mcp\.svc\.cluster\.local/,
    'the EnvoyFilter cluster of this release',
  );
});

test('a bundle service replaces the local bundle, and its credentials come from a Secret mounted as a directory', (t) => {
  const config = {
    services: {
      control: {
        url: 'https://opa-control.example.com',
        credentials: { bearer: { token_path: '/var/run/mcp-authz/services/token' } },
      },
    },
    bundles: { authz: { service: 'control', signing: { keyid: 'release' } } },
    keys: { release: { algorithm: 'RS256', key: '-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n' } },
    decision_logs: { service: 'control', mask: ['/input/attributes/request/http/headers/cookie'] },
    status: { service: 'control' },
  };
  const r = renderChart({
    files: [defaults],
    setJson: { config: { endpoints: [], ...config }, bundleService: { existingSecret: 'opa-control-token' } },
  });
  const cfg = serviceConfig(r);
  t.deepEqual(cfg.bundles, config.bundles);
  t.is(cfg.policy.bundle, undefined, 'no local bundle beside the bundle service');
  t.deepEqual(cfg.decision_logs, config.decision_logs);
  const spec = pod(r).spec;
  t.is(spec.volumes.find((v: any) => v.name === 'bundle-service').secret.secretName, 'opa-control-token');
  t.is(
    spec.containers[0].volumeMounts.find((m: any) => m.name === 'bundle-service').mountPath,
    '/var/run/mcp-authz/services',
  );
  // The service's own validation accepts what the chart rendered.
  t.notThrows(() => validateConfig(cfg, 'rendered', '/etc/mcp-authz', {}));
  // A token written into the config would land in the ConfigMap: the values schema refuses it.
  const bad = {
    ...config,
    services: { control: { url: 'https://opa-control.example.com', credentials: { bearer: { token: 'abc' } } } },
  };
  t.throws(() => renderChart({ files: [defaults], setJson: { config: { endpoints: [], ...bad } } }), {
    message: /token/,
  });
});

test('pins.content becomes a ConfigMap mounted as a directory, the pins file the service loads; an existing ConfigMap instead', (t) => {
  const definition = { name: 'search', description: 'Search the docs.' };
  const content = {
    version: 1,
    endpoints: {
      docs: { mode: 'enforce', tools: { search: { sha256: definitionDigest('tools', definition), definition } } },
    },
  };
  const r = renderChart({
    files: [defaults],
    setJson: { 'pins.content': content, 'pins.configMapKey': 'reviewed.yaml' },
  });
  const cfg = validateConfig(serviceConfig(r), 'pins ConfigMap', '/etc/mcp-authz', {});
  t.is(cfg.pins?.file, '/var/lib/mcp-authz/pins/reviewed.yaml');
  const cm = r.get('ConfigMap', 'mcp-mcp-authz-pins')!;
  const pins = parsePinsFile(cm.data['reviewed.yaml'], 'reviewed.yaml');
  t.is(pins.endpoints.get('docs')?.pins.tools.get('search')?.sha256, definitionDigest('tools', definition));
  const mount = container(r).volumeMounts.find((m: any) => m.name === 'pins');
  t.is(mount.mountPath, '/var/lib/mcp-authz/pins');
  t.is(mount.subPath, undefined, 'a directory: a changed ConfigMap reaches the watcher');
  t.is(pod(r).spec.volumes.find((v: any) => v.name === 'pins').configMap.name, 'mcp-mcp-authz-pins');

  const existing = renderChart({ files: [defaults], setJson: { 'pins.existingConfigMap': 'reviewed-pins' } });
  t.is(existing.get('ConfigMap', 'mcp-mcp-authz-pins'), undefined);
  t.is(pod(existing).spec.volumes.find((v: any) => v.name === 'pins').configMap.name, 'reviewed-pins');
  t.is(serviceConfig(existing).pins.file, '/var/lib/mcp-authz/pins/pins.yaml');
  t.is(serviceConfig(rendered.get('default-values.yaml')!).pins, undefined, 'no pins by default');
});

test('the PostgreSQL store: the URL in the config, the password only from a mounted Secret the service reads as a file', (t) => {
  const r = renderChart({
    files: [defaults],
    set: {
      'config.stores.keys': 'postgres',
      'config.stores.postgres.url': 'postgres://mcp_authz@db.example.svc:5432/platform?sslmode=require',
      'postgres.passwordSecret': 'platform-db',
      'postgres.passwordSecretKey': 'mcp-authz-password',
    },
  });
  const cfg = serviceConfig(r);
  t.is(cfg.stores.postgres.passwordFile, '/var/run/mcp-authz/postgres/mcp-authz-password');
  const vol = pod(r).spec.volumes.find((v: any) => v.name === 'postgres-password');
  t.is(vol.secret.secretName, 'platform-db');
  t.deepEqual(vol.secret.items, [{ key: 'mcp-authz-password', path: 'mcp-authz-password' }]);
  const mount = container(r).volumeMounts.find((m: any) => m.name === 'postgres-password');
  t.deepEqual(mount, { name: 'postgres-password', mountPath: '/var/run/mcp-authz/postgres', readOnly: true });
  // The service accepts the rendered config as it is.
  const valid = validateConfig(cfg, 'configmap', '/etc/mcp-authz', {});
  t.is(valid.stores.keys, 'postgres');
  // A password file path in the values is refused by the values schema: the chart mounts it.
  t.throws(() =>
    renderChart({
      files: [defaults],
      set: { 'config.stores.postgres.passwordFile': '/tmp/pw', 'config.stores.keys': 'postgres' },
    }),
  );
});
