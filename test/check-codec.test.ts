// The service's own Check decoder (protobufjs on the official protos, no toObject copy) reads
// every CheckRequest as the grpc-js path (proto-loader's plain object) does: the same request
// model, and the same protojson attributes for policies that read them.
import test from 'ava';
import fc from 'fast-check';
import { readCheckRequest } from '../src/ext-authz/check-codec.js';
import { authorizationService } from '../src/envoy/protos.js';
import { toRequest, type WireCheckRequest } from '../src/envoy/to-request.js';
import { RequestRejected } from '../src/contracts/request-rejected.js';
import type { Request } from '../src/contracts/request.js';
import { checkRequest, type HttpSample } from './helpers/service.js';

const check = authorizationService().Check!;
const limits = { maxBodyBytes: 4096, maxHeaderBytes: 8192, maxHeaders: 40 };

/** The request model as plain data. */
function model(r: Request): Record<string, unknown> {
  return {
    id: r.id,
    method: r.method,
    scheme: r.scheme,
    host: r.host,
    rawPath: r.rawPath,
    path: r.path,
    rawQuery: r.rawQuery,
    query: r.query,
    headers: r.headers,
    body: r.body,
    bodyBytes: r.bodyBytes,
    hasBody: r.hasBody,
    bodyInvalidUtf8: r.bodyInvalidUtf8,
    sourceAddress: r.sourceAddress,
    attributes: r.attributes,
  };
}

function both(bytes: Buffer): [Record<string, unknown> | string, Record<string, unknown> | string] {
  const read = (f: () => Request) => {
    try {
      return model(f());
    } catch (err) {
      return err instanceof RequestRejected ? `rejected ${err.code}` : `threw ${(err as Error).message}`;
    }
  };
  return [
    read(() => readCheckRequest(bytes, limits)),
    read(() => toRequest(check.requestDeserialize(bytes) as WireCheckRequest, limits)),
  ];
}

const token = fc.stringMatching(/^[a-z][a-z0-9_-]{0,12}$/);
const value = fc.string({ unit: 'binary', maxLength: 40 });
const sample: fc.Arbitrary<HttpSample> = fc.record(
  {
    method: fc.constantFrom('GET', 'POST', 'DELETE', 'post', ''),
    path: fc.oneof(
      fc.constantFrom('/mcp/files', '/mcp/files?api_key=x&b=1', '/a//b/%2e%2e/c', '/'),
      fc.string({ maxLength: 30 }).map((s) => `/${s}`),
    ),
    host: fc.constantFrom('mcp.example.com', 'MCP.Example.com:8443', ''),
    headers: fc.dictionary(token, value, { maxKeys: 6 }),
    headerList: fc.array(fc.tuple(token, value), { maxLength: 6 }),
    body: fc.string({ unit: 'binary', maxLength: 80 }),
    rawBody: fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a)),
    source: fc.constantFrom('10.1.2.3', '::1', ''),
    noContentLength: fc.boolean(),
  },
  { requiredKeys: ['path'] },
);

test('property: the own decoder and proto-loader give the same request model and attributes', (t) => {
  fc.assert(
    fc.property(sample, (s) => {
      const bytes = check.requestSerialize(checkRequest(s));
      const [own, loader] = both(bytes);
      t.deepEqual(own, loader);
    }),
    { numRuns: 300 },
  );
});

test('a CheckRequest with every field Envoy fills reads the same both ways', (t) => {
  const req = checkRequest({
    path: '/mcp/files?x=1',
    headers: { 'x-api-key': 'k', 'x-request-id': 'r-1' },
    body: '{"jsonrpc":"2.0"}',
  }) as Record<string, any>;
  req.attributes.context_extensions = { route: 'mcp' };
  req.attributes.metadata_context = {
    filter_metadata: { 'envoy.filters.http.jwt_authn': { fields: { sub: { string_value: 'alice' } } } },
  };
  req.attributes.tls_session = { sni: 'mcp.example.com' };
  const [own, loader] = both(check.requestSerialize(req));
  t.deepEqual(own, loader);
  t.is((own as any).attributes.contextExtensions.route, 'mcp');
});

test('bytes that are not a CheckRequest are a 400 invalid_check_request, not an exception', (t) => {
  const err = t.throws(() => readCheckRequest(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), limits), {
    instanceOf: RequestRejected,
  }) as RequestRejected;
  t.is(err.code, 'invalid_check_request');
});
