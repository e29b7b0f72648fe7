// End to end, large tool calls: a body Envoy will not buffer whole is refused by the proxy
// (413, like Envoy without allow_partial_message), and a body the service only sees part of
// (allow_partial_message) is refused by the service — either way the MCP server never sees
// the call. The endpoint is auth-off so only body handling decides.
import test from 'ava';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { connectedClient, jsonBody } from './e2e/mcp-client.js';
import { startStack, type Stack } from './e2e/stack.js';

const MAX_REQUEST_BYTES = 4096;
const config = () => ({
  endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
});
let whole: Stack;
let partial: Stack;

test.before(async () => {
  [whole, partial] = await Promise.all([
    startStack({ config, proxy: { maxRequestBytes: MAX_REQUEST_BYTES } }),
    startStack({ config, proxy: { maxRequestBytes: MAX_REQUEST_BYTES, allowPartialMessage: true } }),
  ]);
});
test.after.always(async () => Promise.all([whole?.stop(), partial?.stop()]));

const bigQuery = 'x'.repeat(MAX_REQUEST_BYTES * 2);

test('a tool call above max_request_bytes gets 413 from the proxy and neither the service nor the MCP server sees it', async (t) => {
  const s = await connectedClient(whole.url('/mcp/open'));
  t.teardown(() => s.close());
  const small = await s.client.callTool({ name: 'search', arguments: { query: 'small' } });
  t.deepEqual(small.content, [{ type: 'text', text: 'results for small' }], 'calls under the limit go through');
  const searches = whole.mcp.callsOf('search').length;

  const err = await t.throwsAsync(s.client.callTool({ name: 'search', arguments: { query: bigQuery } }));
  t.true(err instanceof StreamableHTTPError);
  t.is((err as StreamableHTTPError).code, 413);
  const last = whole.proxy.requests.at(-1)!;
  t.is(last.status, 413);
  t.false(last.checked, 'no Check call: Envoy refuses before asking');
  t.false(last.forwarded);
  t.deepEqual(largeRequestsAt(whole), []);
  t.is(whole.mcp.callsOf('search').length, searches, 'the tool handler never ran');
});

test('with allow_partial_message the service refuses a body it saw only part of, 413 body_truncated, and the MCP server sees nothing', async (t) => {
  const s = await connectedClient(partial.url('/mcp/open'));
  t.teardown(() => s.close());
  const searches = partial.mcp.callsOf('search').length;

  const err = await t.throwsAsync(s.client.callTool({ name: 'search', arguments: { query: bigQuery } }));
  t.is((err as StreamableHTTPError).code, 413);
  const seen = s.http.last(413)!;
  t.is(seen.headers.get('content-type'), 'application/json');
  const body = jsonBody(seen);
  t.is(body.error, 'body_truncated');
  t.regex(body.error_description, /max_request_bytes/, 'the error tells the operator what to raise');
  const last = partial.proxy.requests.at(-1)!;
  t.true(last.checked);
  t.false(last.forwarded);
  t.deepEqual(largeRequestsAt(partial), []);
  t.is(partial.mcp.callsOf('search').length, searches, 'the tool handler never ran');
});

/** HTTP requests that reached the MCP server with a body above the limit. */
function largeRequestsAt(stack: Stack): string[] {
  return stack.mcp.httpRequests
    .filter((r) => Number(r.headers['content-length'] ?? 0) > MAX_REQUEST_BYTES)
    .map((r) => `${r.method} ${r.url}`);
}
