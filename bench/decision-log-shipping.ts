// npx tsx bench/decision-log-shipping.ts [--calls 20000] [--rounds 5]: the cost of shipping
// decision logs to a remote service (decision_logs, docs/decision-logs.md), in process.
// On the Check path: µs per Check through the real runtime (the shipped policy, an open
// endpoint, the local decision log off) without and with decision_logs, in alternating
// rounds so a busy machine weighs on both alike. Off the Check path: µs per event to build,
// mask, gzip and POST the buffered events to a receiver on loopback (same process).
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { Registry } from 'prom-client';
import { validateConfig } from '../src/config/load.js';
import { authorizationService } from '../src/envoy/protos.js';
import { decodeCheckRequest } from '../src/ext-authz/check-codec.js';
import { toRequest } from '../src/envoy/to-request.js';
import { DecisionLogShipper } from '../src/log/decision-log-shipper.js';
import { silentLogger } from '../src/log/logger.js';
import { RemoteService } from '../src/config/remote-service.js';
import { buildRuntime } from '../src/pipeline/build-runtime.js';
import { runCheck } from '../src/pipeline/pipeline.js';
import type { CheckTrace } from '../src/decision/context.js';

const { values } = parseArgs({
  options: { calls: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '5' } },
});
const calls = Number(values.calls);
const rounds = Number(values.rounds);

let received = 0;
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    received += (JSON.parse(gunzipSync(Buffer.concat(chunks)).toString('utf8')) as unknown[]).length;
    res.writeHead(204).end();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;

const base = {
  endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
  decisionLog: { enabled: false },
};
const shipping = {
  ...base,
  services: { logs: { url } },
  decision_logs: {
    service: 'logs',
    reporting: { min_delay_seconds: 1, max_delay_seconds: 1 },
    mask: ['/input/attributes/source/address'],
  },
};
const opts = { watch: true, sharedLimits: false, tracing: false } as const;
const plain = await buildRuntime(
  { config: validateConfig(base, 'bench', '/', {}), file: undefined, baseDir: '/' },
  silentLogger(),
  new Registry(),
  opts,
);
const shipped = await buildRuntime(
  { config: validateConfig(shipping, 'bench', '/', {}), file: undefined, baseDir: '/' },
  silentLogger(),
  new Registry(),
  opts,
);

const body = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'search', arguments: { query: 'quarterly report', limit: 10 } },
});
const wire = authorizationService().Check!.requestSerialize({
  attributes: {
    source: { address: { socket_address: { address: '10.1.2.3', port_value: 40000 } } },
    destination: { address: { socket_address: { address: '10.0.0.1', port_value: 8080 } } },
    request: {
      http: {
        id: '1',
        method: 'POST',
        path: '/mcp/open',
        host: 'mcp.example.com',
        scheme: 'https',
        protocol: 'HTTP/2',
        headers: {
          ':authority': 'mcp.example.com',
          ':method': 'POST',
          ':path': '/mcp/open',
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'content-length': String(body.length),
        },
        body,
        size: String(body.length),
      },
    },
  },
});
const decoded = decodeCheckRequest(wire);

async function time(rt: typeof plain, n: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    await runCheck(rt, toRequest, decoded);
    if (i % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  return Number(process.hrtime.bigint() - t0) / n / 1000;
}

await time(plain, 5000);
await time(shipped, 5000);
const without: number[] = [];
const withShipping: number[] = [];
for (let r = 0; r < rounds; r++) {
  without.push(await time(plain, calls));
  withShipping.push(await time(shipped, calls));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Off the Check path: one shipper's flush of a full buffer, per event (CPU time; the receiver runs in this process too).
const trace = (await runCheck(plain, toRequest, decoded)) as CheckTrace;
async function flushCost(mask: string[]): Promise<number> {
  const shipper = new DecisionLogShipper({
    service: new RemoteService('logs', validateConfig(shipping, 'bench', '/', {}).services.logs!),
    config: { ...validateConfig(shipping, 'bench', '/', {}).decision_logs!, mask },
    labels: { id: 'bench', version: '0' },
    path: 'mcp/authz/decision',
    bundleName: 'local',
    logger: silentLogger(),
  });
  const events = 20_000;
  const costs: number[] = [];
  for (let r = 0; r < 5; r++) {
    for (let i = 0; i < events; i++) shipper.decided({ ...trace, decisionId: `d${i}` });
    const cpu0 = process.cpuUsage();
    await shipper.flush();
    const cpu = process.cpuUsage(cpu0);
    costs.push((cpu.user + cpu.system) / events);
  }
  await shipper.close();
  return median(costs);
}
const flushUs = await flushCost([]);
const flushMaskedUs = await flushCost(['/input/attributes/source/address']);

// The Check path alone: the observer's decided() with nothing flushing meanwhile.
const quiet = new DecisionLogShipper({
  service: new RemoteService('logs', validateConfig(shipping, 'bench', '/', {}).services.logs!),
  config: {
    ...validateConfig(shipping, 'bench', '/', {}).decision_logs!,
    reporting: {
      buffer_size_limit_bytes: 1024 * 1024 * 1024,
      upload_size_limit_bytes: 64 * 1024 * 1024,
      min_delay_seconds: 86_400,
      max_delay_seconds: 86_400,
    },
  },
  labels: { id: 'bench', version: '0' },
  path: 'mcp/authz/decision',
  bundleName: 'local',
  logger: silentLogger(),
});
const pushes = 200_000;
const traces = Array.from({ length: 1000 }, (_, i) => ({ ...trace, decisionId: `d${i}` }));
for (let i = 0; i < 20_000; i++) quiet.decided(traces[i % 1000]!);
const p0 = process.hrtime.bigint();
for (let i = 0; i < pushes; i++) quiet.decided(traces[i % 1000]!);
const decidedNs = Number(process.hrtime.bigint() - p0) / pushes;
(quiet as unknown as { closed: boolean }).closed = true;
await Promise.all([plain.close(), shipped.close()]);
receiver.close();

const inputBytes = trace.policy?.input.length ?? 0;
console.log(
  JSON.stringify(
    {
      calls,
      rounds,
      checkUsWithout: Number(median(without).toFixed(2)),
      checkUsWithShipping: Number(median(withShipping).toFixed(2)),
      totalCostUsPerCheck: Number((median(withShipping) - median(without)).toFixed(2)),
      decidedNsPerCheck: Number(decidedNs.toFixed(0)),
      backgroundCpuUsPerEvent: Number(flushUs.toFixed(2)),
      backgroundCpuUsPerEventMasked: Number(flushMaskedUs.toFixed(2)),
      inputBytes,
      eventsReceived: received,
      rounds_without: without.map((x) => Number(x.toFixed(2))),
      rounds_with: withShipping.map((x) => Number(x.toFixed(2))),
    },
    null,
    1,
  ),
);
