// userConnections' parts: the sealing of records (AES-256-GCM with key ids, additional data
// binding a record to its provider and user), the URL-elicitation answer in both protocol
// shapes, the answer a real service gives a user without a connection (2025-11-25, 2026-07-28
// with and without the client's url capability, a notification), config validation, and
// --check-config's report of missing upstream secret files.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import test from 'ava';
import fc from 'fast-check';
import { checkConfig } from '../src/cli/check-config.js';
import { loadConfigFile, validateConfig } from '../src/config/load.js';
import { canElicitUrl, urlElicitationBody } from '../src/mcp-response/url-elicitation.js';
import { KeyRing, SealError } from '../src/upstream/connections-keys.js';
import { connectionProviders } from '../src/upstream/upstream-credentials.js';
import { silentLogger } from '../src/log/logger.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  modernHeaders,
  modernRpc,
  rpc,
  startTestService,
} from './helpers/service.js';
import { keysFile, mintKey } from './e2e/api-keys.js';

const key = () => randomBytes(32).toString('base64');

test('a sealed record opens only with its own additional data, under a key in the ring', (t) => {
  const ring = KeyRing.parse(`k1 ${key()}\n`);
  const sealed = ring.seal('connection\ngithub\nalice', '{"at":"secret-token"}');
  t.regex(sealed, /^v1\.k1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
  t.false(sealed.includes('secret-token'));
  t.is(ring.open('connection\ngithub\nalice', sealed), '{"at":"secret-token"}');
  t.throws(
    () => ring.open('connection\ngithub\nbob', sealed),
    { instanceOf: SealError },
    "alice's record copied to bob does not open",
  );
  t.throws(
    () => KeyRing.parse(`k1 ${key()}\n`).open('connection\ngithub\nalice', sealed),
    { instanceOf: SealError },
    'another key of the same id',
  );
  t.throws(() => KeyRing.parse(`k9 ${key()}\n`).open('connection\ngithub\nalice', sealed), {
    instanceOf: SealError,
    message: /key k9|key k1/,
  });
});

test('any change to a sealed record is a SealError, never garbage and never a crash', (t) => {
  const ring = KeyRing.parse(`k1 ${key()}\n`);
  const sealed = ring.seal('a', 'the plaintext');
  fc.assert(
    fc.property(fc.nat({ max: sealed.length - 1 }), fc.integer({ min: 1, max: 127 }), (at, flip) => {
      const changed = sealed.slice(0, at) + String.fromCharCode(sealed.charCodeAt(at) ^ flip) + sealed.slice(at + 1);
      if (changed === sealed) return;
      let opened: string | undefined;
      try {
        opened = ring.open('a', changed);
      } catch (err) {
        if (!(err instanceof SealError)) throw err;
      }
      // base64url has a few spare bits in its last character: a change there can decode to the same bytes.
      if (opened !== undefined && opened !== 'the plaintext') throw new Error(`opened as ${opened}`);
    }),
  );
  for (const bad of ['', 'v1', 'v2.k1.a.b', 'v1.k1..', 'v1.k1.!!!.abc', `v1.k1.${'A'.repeat(16)}.AAAA`])
    t.throws(() => ring.open('a', bad), { instanceOf: SealError }, bad);
});

test('keys rotate: the first line seals, every line opens', (t) => {
  const oldKey = key();
  const before = KeyRing.parse(`old ${oldKey}\n`);
  const sealedOld = before.seal('x', 'one');
  const after = KeyRing.parse(`# new first\nnew ${key()}\nold ${oldKey}\n`);
  t.is(after.activeKeyId, 'new');
  t.is(after.open('x', sealedOld), 'one');
  t.true(after.isStale(sealedOld));
  t.false(after.isStale(after.seal('x', 'two')));
});

test('a key file that is wrong says which line and why, never the key', (t) => {
  const k = key();
  t.throws(() => KeyRing.parse(''), { message: /no key/ });
  t.throws(() => KeyRing.parse(`k1 ${randomBytes(16).toString('base64')}`), {
    message: /line 1: key k1 is not the base64 of exactly 32 bytes/,
  });
  t.throws(() => KeyRing.parse(`k1 ${k}\nk1 ${key()}`), { message: /line 2: key id k1 appears twice/ });
  t.throws(() => KeyRing.parse(`k1`), { message: /line 1: expected/ });
  const err = t.throws(() => KeyRing.parse(`bad/id ${k}`));
  t.false(err!.message.includes(k));
});

test('the URL elicitation: -32042 with data.elicitations before 2026-07-28, an input_required result in it', (t) => {
  const e = { message: 'Connect', url: 'https://gw.example/connect/github?link=x', elicitationId: 'e-1', id: 7 };
  t.deepEqual(JSON.parse(urlElicitationBody({ ...e, protocolVersion: '2025-11-25' })), {
    jsonrpc: '2.0',
    id: 7,
    error: {
      code: -32042,
      message: 'Connect',
      data: { elicitations: [{ mode: 'url', elicitationId: 'e-1', url: e.url, message: 'Connect' }] },
    },
  });
  t.is(JSON.parse(urlElicitationBody({ ...e, protocolVersion: undefined })).error.code, -32042);
  t.deepEqual(JSON.parse(urlElicitationBody({ ...e, protocolVersion: '2026-07-28' })), {
    jsonrpc: '2.0',
    id: 7,
    result: {
      resultType: 'input_required',
      inputRequests: {
        'e-1': { method: 'elicitation/create', params: { mode: 'url', message: 'Connect', url: e.url } },
      },
    },
  });
  const caps = (c: unknown) => ({ _meta: { 'io.modelcontextprotocol/clientCapabilities': c } });
  t.true(canElicitUrl('2025-11-25', 'initialize', {}));
  t.true(canElicitUrl('2026-07-28', 'tools/call', caps({ elicitation: { url: {} } })));
  t.false(canElicitUrl('2026-07-28', 'tools/call', caps({ elicitation: {} })), 'form only');
  t.false(canElicitUrl('2026-07-28', 'tools/call', caps({})));
  t.false(
    canElicitUrl('2026-07-28', 'tools/list', caps({ elicitation: { url: {} } })),
    'not a method that may be answered so',
  );
});

const alice = mintKey({ id: 'alice-key', name: 'Alice', userId: 'alice', permissions: ['*'] });
const serviceConfig = {
  publicBaseUrl: 'https://gw.example',
  apiKeys: { file: 'keys.yaml' },
  endpoints: [
    {
      name: 'tracker',
      match: { pathPrefix: '/mcp/tracker' },
      auth: { apiKey: true, oauth: false },
      upstream: {
        mode: 'userConnections',
        provider: 'tracker',
        authorizationEndpoint: 'https://as.example/authorize',
        tokenEndpoint: 'https://as.example/token',
        client: { id: 'gateway', secretFile: 'secret' },
        encryptionKeyFile: 'enc',
      },
    },
  ],
};
const serviceFiles = { 'keys.yaml': keysFile([alice]), secret: 's3cret', enc: `k1 ${key()}\n` };

test('a user without a connection: the elicitation in the shape of the request, or a 403 naming the link where none can be carried', async (t) => {
  const svc = await startTestService(serviceConfig, { files: serviceFiles });
  t.teardown(() => svc.stop());
  const base = {
    'x-api-key': alice.key,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  const call = { name: 'search', arguments: { q: 'x' } };

  const legacy = await svc.check(
    checkRequest({
      path: '/mcp/tracker',
      headers: { ...base, 'mcp-protocol-version': '2025-11-25' },
      body: rpc('tools/call', call, 'r-1'),
    }),
  );
  t.is(deniedStatus(legacy), 200, 'answered with 200 so the client reads the JSON-RPC error');
  const legacyBody = deniedBody(legacy);
  t.is(legacyBody.id, 'r-1');
  t.is(legacyBody.error.code, -32042);
  const url = legacyBody.error.data.elicitations[0].url as string;
  t.true(url.startsWith('https://gw.example/connect/tracker?link=v1.k1.'), url);

  const withUrl = JSON.parse(modernRpc('tools/call', call, 9));
  withUrl.params._meta['io.modelcontextprotocol/clientCapabilities'] = { elicitation: { url: {} } };
  const modern = await svc.check(
    checkRequest({
      path: '/mcp/tracker',
      headers: { ...base, ...modernHeaders('tools/call', 'search') },
      body: JSON.stringify(withUrl),
    }),
  );
  t.is(deniedStatus(modern), 200);
  const modernBody = deniedBody(modern);
  t.is(modernBody.result.resultType, 'input_required');
  const [request] = Object.values(modernBody.result.inputRequests) as {
    method: string;
    params: { mode: string; url: string };
  }[];
  t.is(request!.method, 'elicitation/create');
  t.is(request!.params.mode, 'url');
  t.true(request!.params.url.startsWith('https://gw.example/connect/tracker?link='));

  // 2026-07-28 without the url capability: -32042 is retired and no elicitation may be sent.
  const noCap = await svc.check(
    checkRequest({
      path: '/mcp/tracker',
      headers: { ...base, ...modernHeaders('tools/call', 'search') },
      body: modernRpc('tools/call', call, 10),
    }),
  );
  t.is(deniedStatus(noCap), 403);
  t.is(deniedBody(noCap).error, 'upstream_not_connected');
  t.true(String(deniedBody(noCap).connect_url).startsWith('https://gw.example/connect/tracker?link='));

  // Each link is new: single-use ids.
  const again = deniedBody(
    await svc.check(
      checkRequest({
        path: '/mcp/tracker',
        headers: { ...base, 'mcp-protocol-version': '2025-11-25' },
        body: rpc('tools/call', call, 'r-2'),
      }),
    ),
  );
  t.not(again.error.data.elicitations[0].url, url);
  t.not(again.error.data.elicitations[0].elicitationId, legacyBody.error.data.elicitations[0].elicitationId);

  // The connect page opens the link and names the principal; a link altered by one character does not open.
  const page = await svc.http(`/connect/tracker?${new URL(url).searchParams.toString()}`);
  t.is(page.status, 200);
  t.regex(page.text, /alice-key/);
  t.regex(page.headers.get('set-cookie') ?? '', /SameSite=Strict/);
  const link = new URL(url).searchParams.get('link')!;
  const altered = link.slice(0, -3) + (link.at(-3) === 'A' ? 'B' : 'A') + link.slice(-2);
  const bad = await svc.http(`/connect/tracker?link=${altered}`);
  t.is(bad.status, 400);
  t.false(bad.text.includes('alice-key'));
  t.is((await svc.http('/connect/unknown?link=x')).status, 404);
});

test('config: userConnections needs publicBaseUrl, one configuration per provider name, an issuer or both endpoints', (t) => {
  const endpoint = serviceConfig.endpoints[0]!;
  const v = (cfg: unknown) => () => validateConfig(cfg, 'test', '/', {});
  t.throws(v({ ...serviceConfig, publicBaseUrl: undefined }), { message: /set publicBaseUrl/ });
  t.throws(
    v({
      ...serviceConfig,
      endpoints: [
        endpoint,
        {
          ...endpoint,
          name: 'other',
          match: { pathPrefix: '/mcp/other' },
          upstream: { ...endpoint.upstream, scope: ['more'] },
        },
      ],
    }),
    { message: /provider "tracker" is configured differently/ },
  );
  t.throws(
    v({
      ...serviceConfig,
      endpoints: [{ ...endpoint, upstream: { ...endpoint.upstream, authorizationEndpoint: undefined } }],
    }),
    { message: /set issuer \(discovery\), or both authorizationEndpoint and tokenEndpoint/ },
  );
  t.throws(
    v({
      ...serviceConfig,
      endpoints: [{ ...endpoint, upstream: { ...endpoint.upstream, tokenEndpoint: 'http://as.example/token' } }],
    }),
    { message: /https, or http on a loopback address only/ },
  );
  t.notThrows(v(serviceConfig));
});

test('--check-config reports a missing or empty upstream secret file and an unusable encryption key file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-check-upstream-'));
  const file = join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({
      publicBaseUrl: 'https://gw.example',
      endpoints: [
        serviceConfig.endpoints[0],
        {
          name: 'static',
          match: { pathPrefix: '/mcp/static' },
          upstream: { mode: 'static', valueFile: 'static-value' },
        },
        {
          name: 'cc',
          match: { pathPrefix: '/mcp/cc' },
          upstream: {
            mode: 'clientCredentials',
            tokenEndpoint: 'https://as.example/token',
            client: { id: 'x', secretFile: 'cc-secret' },
            audience: 'u',
          },
        },
      ],
    }),
  );
  writeFileSync(join(dir, 'secret'), 's');
  writeFileSync(join(dir, 'enc'), 'k1 too-short\n');
  writeFileSync(join(dir, 'cc-secret'), '  \n');
  const result = await checkConfig(loadConfigFile(file, {}));
  t.false(result.ok);
  const messages = result.report.problems.filter((p) => p.part === 'upstream').map((p) => p.message);
  t.is(messages.length, 3, messages.join('\n'));
  t.true(messages.some((m) => /endpoint tracker: the encryption key file .*enc: line 1/.test(m)));
  t.true(messages.some((m) => /endpoint static: the static value file .*static-value does not exist/.test(m)));
  t.true(messages.some((m) => /endpoint cc: the client secret file .*cc-secret is empty/.test(m)));
});

test("Envoy's HTTP authorization service cannot answer with a 200 of its own: a user without a connection gets 403 upstream_not_connected with the link", async (t) => {
  const svc = await startTestService(
    {
      ...serviceConfig,
      listen: { extAuthzHttp: 'any' },
      extAuthzHttp: { upstreamHeaders: ['x-mcp-*', 'authorization'] },
      clientAddress: { from: 'x-forwarded-for', trustedHops: 1 },
    },
    { files: serviceFiles },
  );
  t.teardown(() => svc.stop());
  const res = await fetch(`http://127.0.0.1:${svc.extAuthzHttpPort}/mcp/tracker`, {
    method: 'POST',
    headers: {
      host: 'mcp.example.com',
      'x-forwarded-for': '203.0.113.7',
      'x-api-key': alice.key,
      'content-type': 'application/json',
      'mcp-protocol-version': '2025-11-25',
    },
    body: rpc('tools/call', { name: 'search', arguments: {} }),
  });
  t.is(res.status, 403);
  const body = (await res.json()) as Record<string, unknown>;
  t.is(body.error, 'upstream_not_connected');
  t.true(String(body.connect_url).startsWith('https://gw.example/connect/tracker?link='));
});

test('in-process store: concurrent calls of one user share one refresh; invalid_grant removes the connection', async (t) => {
  let refreshes = 0;
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let refuse = false;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      const form = new URLSearchParams(body);
      if (form.get('grant_type') !== 'refresh_token') return res.writeHead(400).end();
      refreshes++;
      if (refuse) return res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid_grant"}');
      await held;
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ access_token: `at-${refreshes}`, token_type: 'Bearer', expires_in: 3600 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const tokenEndpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-conn-'));
  writeFileSync(join(dir, 'secret'), 's');
  writeFileSync(join(dir, 'keys'), `k1 ${key()}\n`);
  let now = 1_000_000;
  const cfg = validateConfig(
    {
      ...serviceConfig,
      endpoints: [
        {
          ...serviceConfig.endpoints[0],
          upstream: {
            ...serviceConfig.endpoints[0]!.upstream,
            tokenEndpoint,
            client: { id: 'gateway', secretFile: join(dir, 'secret') },
            encryptionKeyFile: join(dir, 'keys'),
          },
        },
      ],
    },
    'test',
    dir,
    {},
  );
  const providers = await connectionProviders({
    endpoints: cfg.endpoints,
    publicBaseUrl: cfg.publicBaseUrl,
    logger: silentLogger(),
    events: {},
    watch: false,
    now: () => now,
  });
  const p = providers.get('tracker')!;
  t.teardown(() => p.close());
  t.is(p.store.kind, 'memory');
  await p.connect('alice-key', { accessToken: 'at-0', expiresAtMs: now + 600_000, refreshToken: 'rt-0' });
  const header = (g: unknown) => (g as { headers: { value: string }[] }).headers[0]!.value;
  t.is(header(await p.tokenFor('alice-key')), 'Bearer at-0');
  t.is(await p.tokenFor('bob-key'), 'none');

  now += 600_000;
  const all = Promise.all([1, 2, 3, 4, 5].map(() => p.tokenFor('alice-key')));
  release();
  const grants = await all;
  t.is(refreshes, 1, 'one refresh for five concurrent calls');
  t.deepEqual(grants.map(header), Array(5).fill('Bearer at-1'));

  refuse = true;
  now += 3_600_000;
  t.is(await p.tokenFor('alice-key'), 'none', 'invalid_grant: no connection any more');
  t.deepEqual(await p.store.list(), [], 'the record is removed');
});
