// The MCP 2024-11-05 HTTP+SSE transport through ext_proc: the official SDK's SSE client and
// SSE server (SSEClientTransport, SSEServerTransport) behind the Envoy-like ext_proc filter
// (demo/envoy-stand-in/ext-proc-proxy.ts, set up as docs/ext_proc.md recommends) and the real mcp-authz.
// On that transport a list result arrives as a `message` event on the GET stream for a request
// POSTed on another stream, where mcp-authz cannot match it to its request and filter it; so
// the stream is ended at its `endpoint` event, before the client learns where to POST, and no
// list — hidden tools included — ever reaches the client.
import test from 'ava';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { startExtProcProxy, type ExtProcProxy } from '../demo/envoy-stand-in/ext-proc-proxy.js';
import { LEGACY_TOOLS, startLegacySseMcpServer, type LegacySseMcpServer } from './e2e/legacy-sse-mcp-server.js';
import { RECOMMENDED_EXT_PROC } from './e2e/stack.js';
import { sample } from './helpers/prometheus.js';
import { startTestService, type TestService } from './helpers/service.js';

const searcher = mintKey({
  id: 'searcher',
  name: 'Search only',
  userId: 'sam',
  role: 'user',
  permissions: ['tools:search'],
});

let mcp: LegacySseMcpServer;
let proxy: ExtProcProxy;
let svc: TestService;

test.before(async () => {
  mcp = await startLegacySseMcpServer();
  proxy = await startExtProcProxy(RECOMMENDED_EXT_PROC);
  svc = await startTestService(
    {
      apiKeys: { file: 'keys.yaml' },
      endpoints: [{ name: 'legacy', match: { pathPrefix: '/mcp/legacy' }, auth: { apiKey: true, oauth: false } }],
    },
    { files: { 'keys.yaml': keysFile([searcher]) } },
  );
  proxy.attach({ processor: `127.0.0.1:${svc.grpcPort}`, upstream: mcp.url });
});
test.after.always(async () => {
  await proxy?.stop();
  await Promise.all([svc?.stop(), mcp?.stop()]);
});

test.serial(
  "the SDK's SSE client never connects: the stream ends at the endpoint event, no request is POSTed and no tool is listed",
  async (t) => {
    const received: unknown[] = [];
    const transport = new SSEClientTransport(new URL('/mcp/legacy/sse', proxy.url), {
      requestInit: { headers: { 'X-API-Key': searcher.key } },
    });
    const client = new Client({ name: 'legacy-sse-client', version: '1.0.0' });
    client.fallbackNotificationHandler = async (n) => void received.push(n);
    t.teardown(() => transport.close());
    const listed = client.connect(transport).then(async () => (await client.listTools()).tools.map((x) => x.name));
    const err = await t.throwsAsync(listed);
    t.regex(String(err?.message), /SSE error/);

    t.true(mcp.streamsOpened >= 1, "the server answered the GET: the refusal is mcp-authz's, on the way back");
    t.false(
      mcp.httpRequests.some((r) => r.method === 'POST'),
      'the client never learned where to POST',
    );
    t.deepEqual(mcp.toolsRun, []);
    t.deepEqual(received, []);
    const get = proxy.exchanges.find((x) => x.method === 'GET' && x.path === '/mcp/legacy/sse')!;
    t.true(get.forwarded);
    t.true(get.reset, 'Envoy resets the client stream when the processor ends it with an error');

    const m = (await svc.http('/metrics')).text;
    t.true(sample(m, 'mcp_authz_list_withheld_total', { endpoint: 'legacy', reason: 'legacy_sse_transport' })! >= 1);
    t.true(sample(m, 'mcp_authz_ext_proc_streams_total', { result: 'failed' })! >= 1);
  },
);

test.serial('read raw, the GET stream carries no byte of the endpoint event to the client', async (t) => {
  const res = await fetch(new URL('/mcp/legacy/sse', proxy.url), {
    headers: { 'X-API-Key': searcher.key, accept: 'text/event-stream' },
  });
  t.is(res.status, 200, 'the headers went on before the first event was read');
  const reader = res.body!.getReader();
  let text = '';
  const ended = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return 'end';
      text += Buffer.from(value).toString();
    }
  })().catch(() => 'reset');
  t.is(await ended, 'reset');
  t.false(text.includes('endpoint'));
  t.false(text.includes('sessionId'));
  for (const tool of LEGACY_TOOLS) t.false(text.includes(tool));
});
