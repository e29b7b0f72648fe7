// The WASM engine and the decision mapper on policies compiled with the real opa.
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { BundleError, loadBundle, readTar } from '../src/policy/bundle-loader.js';
import { mapResultSet } from '../src/policy/decision-mapper.js';
import { compileRego } from '../src/policy/rego-compiler.js';
import { WasmEngine } from '../src/policy/wasm-engine.js';
import { regoDir } from './helpers/policy.js';

const json = (v: unknown) => JSON.stringify(v);

async function engineFor(rego: string, opts: { maxMemoryPages?: number; entrypoint?: string } = {}) {
  const entrypoint = opts.entrypoint ?? 'mcp/authz/decision';
  const bundle = await compileRego(regoDir({ 'p.rego': rego }), entrypoint);
  return WasmEngine.create(bundle, { entrypoint, maxMemoryPages: opts.maxMemoryPages ?? 64, data: {} });
}

async function decide(rego: string, input: unknown = {}) {
  const e = await engineFor(rego);
  const ev = e.evaluate(json(input));
  if (!ev.ok) throw new Error(ev.error);
  return mapResultSet(ev.resultSet);
}

test('a policy that blows its memory bound fails the evaluation, and the engine keeps answering', async (t) => {
  const e = await engineFor('package mcp.authz\ndecision := {"allow": count(numbers.range(1, input.n)) > 0}\n', {
    maxMemoryPages: 32,
  });
  const blown = e.evaluate(json({ n: 50_000_000 }));
  t.false(blown.ok);
  t.true(e.memory.buffer.byteLength <= 32 * 65536);
  const fine = e.evaluate(json({ n: 10 }));
  t.true(fine.ok);
  t.true(mapResultSet(fine.ok ? fine.resultSet : undefined).allow);
});

test('a data document larger than the memory bound loads, and the bound still holds for evaluations above it', async (t) => {
  // About 3 MiB of data (many endpoints' views) against a 32-page (2 MiB) bound.
  const endpoints = Object.fromEntries(
    Array.from({ length: 20_000 }, (_, i) => [
      `tenant-${i}`,
      { name: `tenant-${i}`, owner: `user-${i}`, public: false },
    ]),
  );
  const bundle = await compileRego(
    regoDir({
      'p.rego':
        'package mcp.authz\ndecision := {"allow": data.endpoints[input.e].owner == input.u, "n": count(numbers.range(1, input.n))}\n',
    }),
    'mcp/authz/decision',
  );
  const e = await WasmEngine.create(bundle, {
    entrypoint: 'mcp/authz/decision',
    maxMemoryPages: 32,
    data: { endpoints },
  });
  const dataPages = e.memory.buffer.byteLength / 65536;
  t.true(dataPages > 32, `the data alone takes ${dataPages} pages`);
  const fine = e.evaluate(json({ e: 'tenant-19999', u: 'user-19999', n: 10 }));
  t.true(fine.ok && mapResultSet(fine.resultSet).allow);
  const other = e.evaluate(json({ e: 'tenant-19999', u: 'user-1', n: 10 }));
  t.true(other.ok && !mapResultSet(other.resultSet).allow);
  // An evaluation that needs far more than the bound above the data still fails, and the engine keeps answering.
  const blown = e.evaluate(json({ e: 'tenant-1', u: 'user-1', n: 50_000_000 }));
  t.false(blown.ok);
  t.true(e.memory.buffer.byteLength <= (dataPages + 32) * 65536);
  const after = e.evaluate(json({ e: 'tenant-1', u: 'user-1', n: 10 }));
  t.true(after.ok && mapResultSet(after.resultSet).allow);
});

test('inputs of any size and script are read exactly: memory grows up to its bound, and a larger input is a failed evaluation', async (t) => {
  const e = await engineFor(
    'package mcp.authz\ndecision := {"allow": true, "headers": {"x-len": sprintf("%d", [count(input.s)]), "x-name": input.name}}\n',
    { maxMemoryPages: 64 },
  );
  const headers = (ev: ReturnType<typeof e.evaluate>) => {
    const d = mapResultSet(ev.ok ? ev.resultSet : undefined);
    return d.allow ? Object.fromEntries(d.result.headers.map((h) => [h.name, h.value])) : d;
  };
  t.deepEqual(headers(e.evaluate(json({ s: 'x', name: 'é日本🙂' }))), { 'x-len': '1', 'x-name': 'é日本🙂' });
  // 1.5 MiB of input: beyond the initial 16 pages, so memory grows.
  t.deepEqual(headers(e.evaluate(json({ s: 'ü'.repeat(750_000), name: 'big' }))), {
    'x-len': '750000',
    'x-name': 'big',
  });
  t.deepEqual(
    headers(e.evaluate(json({ s: 'ab', name: 'after' }))),
    { 'x-len': '2', 'x-name': 'after' },
    'a small input after a big one',
  );
  const tooBig = e.evaluate(json({ s: 'x'.repeat(5 * 1024 * 1024), name: 'huge' }));
  t.false(tooBig.ok);
  t.regex(tooBig.ok ? '' : tooBig.error, /RangeError/);
  t.deepEqual(
    headers(e.evaluate(json({ s: 'abc', name: 'still' }))),
    { 'x-len': '3', 'x-name': 'still' },
    'the engine keeps answering',
  );
});

test('a plain boolean decision is honoured both ways', async (t) => {
  t.true((await decide('package mcp.authz\ndecision := true\n')).allow);
  const d = await decide('package mcp.authz\ndecision := false\n');
  t.false(d.allow);
  t.is(!d.allow && d.deny.status, 403);
});

test('an undefined decision is a 403 deny', async (t) => {
  const d = await decide('package mcp.authz\ndecision := true if input.never\n');
  t.false(d.allow);
  t.is(!d.allow && d.reason, 'policy_undefined');
  t.is(!d.allow && d.deny.status, 403);
});

const wrongTypes: [string, string][] = [
  ['a string', 'decision := "yes"'],
  ['a number', 'decision := 1'],
  ['an array', 'decision := [true]'],
  ['allow as a string', 'decision := {"allow": "true"}'],
  ['an object without allow', 'decision := {"permit": true}'],
  ['a deny status outside 400-599', 'decision := {"allow": false, "status": 200}'],
  ['a header value with CRLF', 'decision := {"allow": true, "headers": {"x-a": "b\\r\\nx-evil: 1"}}'],
  ['an invalid header name', 'decision := {"allow": true, "headers": {"bad name": "v"}}'],
  ['a header value with another control character', 'decision := {"allow": true, "headers": {"x-a": "b\\u0001"}}'],
  ['a header value with DEL', 'decision := {"allow": true, "headers": {"x-a": "b\\u007f"}}'],
  [
    'host set, which ext_proc ignores and ext_authz applies',
    'decision := {"allow": true, "headers": {"Host": "evil.example.com"}}',
  ],
  ['an x-envoy-* header set', 'decision := {"allow": true, "headers": {"x-envoy-original-path": "/admin"}}'],
  ['a framing header set', 'decision := {"allow": true, "headers": {"content-length": "0"}}'],
  ['a hop-by-hop header in a response', 'decision := {"allow": true, "response_headers": {"connection": "close"}}'],
  [
    'an x-envoy-* header removed',
    'decision := {"allowed": true, "request_headers_to_remove": ["X-Envoy-Expected-Rq-Timeout-Ms"]}',
  ],
  ['host removed', 'decision := {"allowed": true, "request_headers_to_remove": ["host"]}'],
  ['opa-envoy-plugin allowed as a string', 'decision := {"allowed": "yes"}'],
];
for (const [what, rule] of wrongTypes) {
  test(`a decision of the wrong type is a 503 deny, never an allow: ${what}`, async (t) => {
    const d = await decide(`package mcp.authz\n${rule}\n`);
    t.false(d.allow);
    t.is(!d.allow && d.deny.status, 503);
    t.is(!d.allow && d.deny.code, 'policy_error');
  });
}

test('a tab, spaces and non-ASCII text are header values every transport carries alike', async (t) => {
  const a = await decide('package mcp.authz\ndecision := {"allow": true, "headers": {"x-note": "a\\tb c é東"}}\n');
  t.true(a.allow);
  t.deepEqual(a.allow && a.result.headers, [{ name: 'x-note', value: 'a\tb c é東', append: false }]);
});

test('the object decision maps status, error, description and headers', async (t) => {
  const d = await decide(
    'package mcp.authz\ndecision := {"allow": false, "status": 429, "error": "slow_down", "error_description": "later", "headers": {"Retry-After": "5"}}\n',
  );
  t.false(d.allow);
  if (d.allow) return;
  t.is(d.deny.status, 429);
  t.is(d.deny.code, 'slow_down');
  t.is(d.deny.description, 'later');
  t.deepEqual(d.deny.headers, [{ name: 'retry-after', value: '5', append: false }]);
  const a = await decide(
    'package mcp.authz\ndecision := {"allow": true, "headers": {"x-tenant": "t1"}, "response_headers": {"x-seen": "1"}, "dynamic_metadata": {"k": "v"}}\n',
  );
  t.true(a.allow);
  if (!a.allow) return;
  t.deepEqual(a.result.headers, [{ name: 'x-tenant', value: 't1', append: false }]);
  t.deepEqual(a.result.responseHeaders, [{ name: 'x-seen', value: '1', append: false }]);
  t.deepEqual(a.result.dynamicMetadata, { k: 'v' });
});

test("opa-envoy-plugin's decision shape maps status, body and headers", async (t) => {
  const d = await decide(
    'package mcp.authz\ndecision := {"allowed": false, "http_status": 451, "body": "nope", "headers": {"content-type": "text/html", "x-r": "1"}}\n',
  );
  t.false(d.allow);
  if (d.allow) return;
  t.is(d.deny.status, 451);
  t.is(d.deny.rawBody, 'nope');
  t.is(d.deny.contentType, 'text/html');
  t.deepEqual(d.deny.headers, [{ name: 'x-r', value: '1', append: false }]);
});

function tarGz(files: Record<string, Buffer>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, body] of Object.entries(files)) {
    const h = Buffer.alloc(512);
    h.write(name, 0);
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(body.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

function writeTmp(name: string, content: Buffer): string {
  const p = join(mkdtempSync(join(tmpdir(), 'mcp-authz-bundle-')), name);
  writeFileSync(p, content);
  return p;
}

test('a bundle that is not a tar.gz is refused with the reason', (t) => {
  const e = t.throws(() => loadBundle(writeTmp('b.tar.gz', Buffer.from('{"not":"a bundle"}'))), {
    instanceOf: BundleError,
  });
  t.regex(e!.message, /not a \.tar\.gz/);
});

test('a tar.gz that is not a tar archive is refused', (t) => {
  t.throws(() => loadBundle(writeTmp('b.tar.gz', gzipSync(Buffer.alloc(1024, 7)))), {
    instanceOf: BundleError,
    message: /not a tar archive/,
  });
});

test('a bundle without policy.wasm is refused', (t) => {
  const p = writeTmp(
    'b.tar.gz',
    tarGz({ 'data.json': Buffer.from('{}'), '.manifest': Buffer.from('{"revision":"r1"}') }),
  );
  t.throws(() => loadBundle(p), { instanceOf: BundleError, message: /no policy\.wasm/ });
});

test('a policy.wasm without the OPA ABI is refused', async (t) => {
  // The smallest valid WebAssembly module: valid bytes, no OPA exports.
  const empty = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const bundle = loadBundle(
    writeTmp('b.tar.gz', tarGz({ '/policy.wasm': empty, '/.manifest': Buffer.from('{"revision":"r2"}') })),
  );
  t.is(bundle.revision, 'r2');
  await t.throwsAsync(WasmEngine.create(bundle, { entrypoint: 'mcp/authz/decision', maxMemoryPages: 16, data: {} }), {
    instanceOf: BundleError,
    message: /OPA WASM ABI/,
  });
});

test('policy.wasm bytes that are not WebAssembly are refused', async (t) => {
  const bundle = loadBundle(writeTmp('b.tar.gz', tarGz({ 'policy.wasm': Buffer.from('hello') })));
  await t.throwsAsync(WasmEngine.create(bundle, { entrypoint: 'mcp/authz/decision', maxMemoryPages: 16, data: {} }), {
    instanceOf: BundleError,
    message: /not a valid WebAssembly module/,
  });
});

test('a bundle without the configured entrypoint is refused', async (t) => {
  const bundle = await compileRego(regoDir({ 'p.rego': 'package other\nx := true\n' }), 'other/x');
  await t.throwsAsync(WasmEngine.create(bundle, { entrypoint: 'mcp/authz/decision', maxMemoryPages: 16, data: {} }), {
    instanceOf: BundleError,
    message: /no entrypoint mcp\/authz\/decision/,
  });
});

test("a .rego folder that does not compile is refused with opa's message", async (t) => {
  await t.throwsAsync(compileRego(regoDir({ 'p.rego': 'package mcp.authz\ndecision := {\n' }), 'mcp/authz/decision'), {
    instanceOf: BundleError,
    message: /opa build .* failed/s,
  });
});

test('a builtin the service does not provide is refused at build time, with why', async (t) => {
  await t.throwsAsync(
    compileRego(
      regoDir({
        'p.rego':
          'package mcp.authz\ndecision := {"allow": http.send({"method": "get", "url": input.u}).status_code == 200}\n',
      }),
      'mcp/authz/decision',
    ),
    { instanceOf: BundleError, message: /undefined function http\.send[\s\S]*http\.send: a network call per Check/ },
  );
});

test('the tar reader honours GNU long names and reads the shipped bundle', (t) => {
  const shipped = loadBundle(join(import.meta.dirname, '..', 'policies', 'build', 'bundle.tar.gz'));
  t.regex(shipped.revision, /^sha256-[0-9a-f]{16}$/);
  t.deepEqual(shipped.manifest.wasm?.[0]?.entrypoint, 'mcp/authz/decision');
  const long = 'x'.repeat(120);
  const h = Buffer.alloc(512);
  h.write('././@LongLink', 0);
  h.write((long.length + 1).toString(8).padStart(11, '0') + '\0', 124);
  h.write('        ', 148);
  h.write('L', 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const body = Buffer.alloc(512);
  body.write(long + '\0');
  const inner = gunzipSync(tarGz({ short: Buffer.from('v') }));
  const files = readTar(Buffer.concat([h, body, inner]), 'mem');
  t.is(files.get(long)?.toString(), 'v');
});
