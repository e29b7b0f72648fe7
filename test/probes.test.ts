// The chart's probes against a real `mcp-authz serve --workers 2` (the chart's default): a
// pod whose policy bundle has not arrived passes its startup and liveness probes, so
// Kubernetes never restarts it for that, and fails its readiness probe, so the Service sends
// it no traffic; once the bundle appears it turns ready in place, without a restart.
import test from 'ava';
import { copyFileSync, mkdtempSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SHIPPED_BUNDLE } from '../src/config/paths.mjs';
import { renderChart } from './helpers/helm.js';
import { checkRequest, deniedStatus } from './helpers/service.js';
import { startServe } from './helpers/subprocess-service.js';
import { waitFor } from './helpers/wait.js';

const deployment = renderChart({ files: [] }).get('Deployment')!;
const container = deployment.spec.template.spec.containers[0];
const workers = Number(container.args[container.args.indexOf('--workers') + 1]);
const portName = (p: { port: string | number }) =>
  typeof p.port === 'string' ? p.port : container.ports.find((c: any) => c.containerPort === p.port)?.name;

test('startup and liveness probe /healthz; readiness probes gRPC health on the gRPC port', (t) => {
  t.deepEqual([container.startupProbe.httpGet.path, portName(container.startupProbe.httpGet)], ['/healthz', 'http']);
  t.deepEqual([container.livenessProbe.httpGet.path, portName(container.livenessProbe.httpGet)], ['/healthz', 'http']);
  t.is(portName(container.readinessProbe.grpc), 'grpc');
  t.is(container.readinessProbe.grpc.service, undefined, 'the overall health ("" service)');
});

test('a pod waiting for its policy passes startup and liveness, stays NotReady, and turns ready in place when the bundle arrives', async (t) => {
  t.is(workers, 2, 'the chart default this test mirrors');
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-probes-'));
  const bundle = join(dir, 'bundle.tar.gz');
  const srv = await startServe(
    {
      endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
      policy: { bundle },
    },
    ['--workers', String(workers)],
  );
  t.teardown(() => srv.stop());
  const pid = srv.proc.pid;

  // Startup and liveness: the rendered probe's path answers 200 although no policy is loaded.
  t.is((await srv.http(container.startupProbe.httpGet.path)).status, 200);
  t.is((await srv.http(container.livenessProbe.httpGet.path)).status, 200);
  // Readiness: gRPC health of the process answering Checks is NOT_SERVING.
  t.is(await srv.health(), 'NOT_SERVING');
  const denied = await srv.check(checkRequest({ method: 'GET', path: '/mcp/open', host: 'h' }));
  t.is(deniedStatus(denied), 503, 'no policy: every Check is a 503 deny');
  t.is((await srv.http('/readyz')).status, 503, '/readyz agrees');

  // The bundle arrives the way kubelet or an operator writes it: whole, by rename.
  copyFileSync(SHIPPED_BUNDLE, `${bundle}.tmp`);
  renameSync(`${bundle}.tmp`, bundle);
  await waitFor('gRPC health to turn SERVING', async () => (await srv.health()) === 'SERVING', 30_000, 100);
  await waitFor('/readyz to turn 200', async () => (await srv.http('/readyz')).status === 200, 30_000, 100);
  const allowed = await srv.check(checkRequest({ method: 'GET', path: '/mcp/open', host: 'h' }));
  t.truthy(allowed.ok_response, 'the policy decides now');
  t.is(srv.proc.pid, pid);
  t.is(srv.proc.exitCode, null, 'never restarted');
});
