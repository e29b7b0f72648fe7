// `check --check-request`: a CheckRequest captured as protobuf JSON (protojson) read into the
// bytes Envoy would have sent, and decided as a Check from Envoy is; `-` reads standard input.
import test from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import fc from 'fast-check';
import { protojsonAttributes } from '../src/envoy/attributes.js';
import { decodeCheckRequest } from '../src/ext-authz/check-codec.js';
import { checkRequestFromJson } from '../src/ext-authz/check-request-json.js';
import { authRoot, plainObject } from '../src/envoy/proto-root.js';
import { ROOT } from './helpers/cli.js';
import { checkRequest, rpc } from './helpers/service.js';

const type = () => authRoot().lookupType('envoy.service.auth.v3.CheckRequest');
const decoded = (bytes: Uint8Array) =>
  plainObject(decodeCheckRequest(bytes) as unknown as Parameters<typeof plainObject>[0]);
const encode = (obj: Record<string, unknown>) => type().encode(type().fromObject(obj)).finish();

const captured = {
  attributes: {
    source: {
      address: { socketAddress: { address: '203.0.113.7', portValue: 51234 } },
      principal: 'spiffe://cluster.local/ns/a/sa/b',
    },
    destination: { address: { socketAddress: { address: '10.0.0.1', portValue: 8080 } } },
    request: {
      time: '2026-01-02T03:04:05.123456789Z',
      http: {
        id: '9f1c',
        method: 'POST',
        headers: {
          ':authority': 'mcp.example.com',
          ':path': '/mcp/public',
          'x-api-key': 'mcp_x',
          'content-length': '46',
        },
        path: '/mcp/public',
        host: 'mcp.example.com',
        scheme: 'https',
        protocol: 'HTTP/2',
        size: '46',
        rawBody: Buffer.from(rpc('tools/list')).toString('base64'),
      },
    },
    contextExtensions: { tier: 'gold' },
    metadataContext: {
      filterMetadata: { 'envoy.filters.http.jwt_authn': { payload: { sub: 'u1', n: 2, ok: true, l: [1, 'x', null] } } },
    },
  },
};

test('a protojson CheckRequest reads into the message Envoy sends: names, int64, bytes, Timestamp, Struct, maps', (t) => {
  const m = decoded(checkRequestFromJson(JSON.stringify(captured))) as any;
  t.like(m.attributes.source, {
    address: { socket_address: { address: '203.0.113.7', port_value: 51234 } },
    principal: 'spiffe://cluster.local/ns/a/sa/b',
  });
  t.deepEqual(m.attributes.request.time, { seconds: '1767323045', nanos: 123456789 });
  t.is(Buffer.from(m.attributes.request.http.raw_body).toString(), rpc('tools/list'));
  t.is(m.attributes.request.http.size, '46');
  t.is(m.attributes.request.http.headers['x-api-key'], 'mcp_x');
  t.deepEqual(m.attributes.context_extensions, { tier: 'gold' });
  // The Struct comes back as the same JSON through the writer the policy input uses.
  t.deepEqual(
    (protojsonAttributes(m.attributes) as any).metadataContext.filterMetadata['envoy.filters.http.jwt_authn'],
    { payload: { sub: 'u1', n: 2, ok: true, l: [1, 'x', null] } },
  );
});

test('the .proto field names read the same as the lowerCamelCase ones; an offset time is converted to UTC', (t) => {
  const snake = JSON.parse(JSON.stringify(captured));
  const http = snake.attributes.request.http;
  http.raw_body = http.rawBody;
  delete http.rawBody;
  snake.attributes.context_extensions = snake.attributes.contextExtensions;
  delete snake.attributes.contextExtensions;
  snake.attributes.request.time = '2026-01-02T05:04:05.123456789+02:00';
  t.deepEqual(
    Buffer.from(checkRequestFromJson(JSON.stringify(snake))),
    Buffer.from(checkRequestFromJson(JSON.stringify(captured))),
  );
});

test('what protojson readers refuse is refused, naming where', (t) => {
  const bad: [unknown, RegExp][] = [
    [{ attributes: { request: { http: { methd: 'GET' } } } }, /attributes\.request\.http\.methd: no such field/],
    [{ attributes: { request: { http: { method: 7 } } } }, /http\.method: expected a string/],
    [{ attributes: { request: { http: { rawBody: 'YQ==', raw_body: 'YQ==' } } } }, /given twice/],
    [{ attributes: { request: { http: { rawBody: '***' } } } }, /rawBody: expected base64/],
    [{ attributes: { request: { time: '2026-02-30T00:00:00Z' } } }, /time: .* is not a valid time/],
    [{ attributes: { request: { time: 1700000000 } } }, /time: expected an RFC 3339 time/],
    [
      { attributes: { source: { address: { socketAddress: { portValue: 70000000000 } } } } },
      /portValue: .* out of range/,
    ],
    [
      { attributes: { source: { address: { socketAddress: { address: 'a' }, pipe: { path: '/p' } } } } },
      /members of one oneof/,
    ],
    [{ attributes: { request: { http: { path: '/\ud800' } } } }, /lone surrogate/],
    [
      {
        attributes: {
          metadataContext: { typedFilterMetadata: { x: { '@type': 'type.googleapis.com/no.such.Type' } } },
        },
      },
      /unknown type "no\.such\.Type"/,
    ],
    [[1, 2], /expected a JSON object/],
    [{ attributes: 5 }, /^attributes: expected a JSON object/],
  ];
  for (const [value, why] of bad)
    t.throws(() => checkRequestFromJson(JSON.stringify(value)), { message: why }, JSON.stringify(value));
  t.throws(() => checkRequestFromJson('{"attributes":'), { message: /not JSON/ });
});

test('google.protobuf.Any in typed metadata is read through its @type', (t) => {
  const json = {
    attributes: {
      metadataContext: {
        typedFilterMetadata: {
          x: { '@type': 'type.googleapis.com/envoy.config.core.v3.SocketAddress', address: '1.2.3.4', portValue: 9 },
        },
      },
    },
  };
  const m = decoded(checkRequestFromJson(JSON.stringify(json))) as any;
  const any = m.attributes.metadata_context.typed_filter_metadata.x;
  t.is(any.type_url, 'type.googleapis.com/envoy.config.core.v3.SocketAddress');
  const inner = authRoot().lookupType('envoy.config.core.v3.SocketAddress').decode(any.value).toJSON();
  t.like(inner, { address: '1.2.3.4', port_value: 9 });
});

test('property: any request the tests build, written as protojson the way the policy input writes attributes, reads back to the same message', (t) => {
  const header = fc.tuple(
    fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/),
    fc.string({ maxLength: 20 }).filter((s) => !/\p{Cs}/u.test(s)),
  );
  fc.assert(
    fc.property(
      fc.record({
        method: fc.constantFrom('GET', 'POST', 'DELETE'),
        path: fc.stringMatching(/^\/[a-z0-9/_.-]{0,30}$/),
        body: fc.option(
          fc.string({ maxLength: 60 }).filter((s) => !/\p{Cs}/u.test(s)),
          { nil: undefined },
        ),
        raw: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined }),
        headers: fc.array(header, { maxLength: 5 }),
        source: fc.ipV4(),
      }),
      (s) => {
        const obj = checkRequest({
          method: s.method,
          path: s.path,
          body: s.body,
          ...(s.raw && s.raw.length > 0 ? { rawBody: Buffer.from(s.raw) } : {}),
          headers: Object.fromEntries(s.headers),
          source: s.source,
        });
        const original = decoded(encode(obj));
        const json = JSON.stringify({ attributes: protojsonAttributes((original as any).attributes) });
        t.deepEqual(decoded(checkRequestFromJson(json)), original);
      },
    ),
    { numRuns: 200 },
  );
});

function cli(args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'bin.ts'), ...args], {
      cwd: ROOT,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

const demoKey = 'mcp_4ecesAyZIs3wgIv1Ce6D58DGsD629PCqum63ZejV3DS12LP3l';

test('check --check-request - decides a captured request from standard input as check --path does the same request', async (t) => {
  const body = rpc('tools/list');
  const req = JSON.parse(JSON.stringify(captured));
  req.attributes.request.http.headers = {
    ':authority': 'localhost',
    ':path': '/mcp/public',
    ':method': 'POST',
    'x-api-key': demoKey,
    'content-length': String(body.length),
  };
  req.attributes.request.http.host = 'localhost';
  req.attributes.request.http.rawBody = Buffer.from(body).toString('base64');
  const fromJson = await cli(['check', '--check-request', '-'], JSON.stringify(req));
  t.is(fromJson.code, 0, fromJson.stderr);
  const viaFlags = await cli(['check', '--path', '/mcp/public', '-H', `x-api-key: ${demoKey}`, '--body', '-'], body);
  t.is(viaFlags.code, 0, viaFlags.stderr);
  const a = JSON.parse(fromJson.stdout);
  const b = JSON.parse(viaFlags.stdout);
  t.is(a.decision, 'allow');
  t.deepEqual(
    [a.decision, a.status, a.endpoint, a.principal.id, a.mcp.calls],
    [b.decision, b.status, b.endpoint, b.principal.id, b.mcp.calls],
  );
  t.is(a.mcp.calls[0].method, 'tools/list');
});

test('check refuses two flags reading standard input, --check-request with request flags, and bad protojson with its place', async (t) => {
  const two = await cli(['check', '--path', '/mcp/open', '--body', '-', '--response', '-'], '{}');
  t.is(two.code, 2);
  t.regex(two.stderr, /only one flag can read standard input/);
  const mixed = await cli(['check', '--check-request', '{}', '--path', '/mcp/open']);
  t.is(mixed.code, 2);
  t.regex(mixed.stderr, /--check-request is the whole request; drop --path/);
  const badJson = await cli(['check', '--check-request', '-'], '{"attributes":{"request":{"http":{"methd":"GET"}}}}');
  t.is(badJson.code, 1);
  t.regex(badJson.stderr, /attributes\.request\.http\.methd: no such field/);
});
