import test from 'ava';
import { TestAuthenticator, admitAuthenticated } from './fixtures/test-authenticator.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  headerValue,
  startTestService,
  type TestService,
} from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

const MAX = 5;

async function start(
  config: Record<string, unknown>,
  auth = new TestAuthenticator(),
): Promise<TestService & { auth: TestAuthenticator }> {
  const svc = await startTestService(config, {
    runtime: { overrides: { authenticator: auth, authorizer: admitAuthenticated } },
  });
  return Object.assign(svc, { auth });
}

const endpoints = [
  { name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true } },
  { name: 'search', match: { pathPrefix: '/mcp/search' }, auth: { apiKey: true } },
  { name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } },
];

const fail = (source = '10.9.9.9', path = '/mcp/files', headers: Record<string, string> = {}) =>
  checkRequest({ method: 'GET', path, source, headers: { 'x-test-auth': 'fail', ...headers } });
const good = (source = '10.9.9.9', path = '/mcp/files', key = 'k1') =>
  checkRequest({ method: 'GET', path, source, headers: { 'x-test-auth': 'ok', 'x-test-key': key } });

test('after N failed authentications the client gets 429 too_many_requests with Retry-After, and its credentials are not tried', async (t) => {
  const svc = await start({ rateLimit: { failedAuth: { maxAttempts: MAX, windowSeconds: 60 } }, endpoints });
  t.teardown(() => svc.stop());
  for (let i = 0; i < MAX; i++) {
    const res = await svc.check(fail());
    t.is(deniedStatus(res), 401, `failure ${i + 1} is a 401`);
  }
  const tried = svc.auth.tried;
  const locked = await svc.check(good());
  t.is(deniedStatus(locked), 429);
  t.is(locked.status?.code, 8);
  const body = deniedBody(locked);
  t.is(body.error, 'too_many_requests');
  t.is(body.error_description, 'Too many failed authentication attempts. Please try again later.');
  const retry = Number(headerValue(locked.denied_response?.headers, 'retry-after'));
  t.true(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
  t.is(svc.auth.tried, tried, 'a valid credential from a locked-out client is not even tried');
});

test('the lockout is per client address and per endpoint', async (t) => {
  const svc = await start({ rateLimit: { failedAuth: { maxAttempts: MAX, windowSeconds: 60 } }, endpoints });
  t.teardown(() => svc.stop());
  for (let i = 0; i < MAX; i++) await svc.check(fail('10.1.1.1'));
  t.is(deniedStatus(await svc.check(fail('10.1.1.1'))), 429);
  t.truthy((await svc.check(good('10.1.1.2'))).ok_response, 'another client is unaffected');
  t.truthy((await svc.check(good('10.1.1.1', '/mcp/search'))).ok_response, 'another endpoint is unaffected');
});

test('requests without a credential are never counted as failures', async (t) => {
  const svc = await start({ rateLimit: { failedAuth: { maxAttempts: 2, windowSeconds: 60 } }, endpoints });
  t.teardown(() => svc.stop());
  for (let i = 0; i < 10; i++) {
    const res = await svc.check(checkRequest({ method: 'GET', path: '/mcp/files', source: '10.2.2.2' }));
    t.is(deniedBody(res).error, 'authentication_required');
  }
  t.truthy((await svc.check(good('10.2.2.2'))).ok_response);
});

test('200 concurrent failing requests from one client: exactly N are tried and answered 401, the rest 429', async (t) => {
  const svc = await start({ rateLimit: { failedAuth: { maxAttempts: MAX, windowSeconds: 60 } }, endpoints });
  t.teardown(() => svc.stop());
  const results = await Promise.all(Array.from({ length: 200 }, () => svc.check(fail('10.3.3.3'))));
  const statuses = results.map(deniedStatus);
  t.is(statuses.filter((s) => s === 401).length, MAX);
  t.is(statuses.filter((s) => s === 429).length, 200 - MAX);
  for (const r of results.filter((r) => deniedStatus(r) === 429)) t.is(deniedBody(r).error, 'too_many_requests');
});

test('the lockout ends with the window', async (t) => {
  // The third call is 429 only if it comes before the window ends. How fast three calls are is
  // the machine's business, so an attempt whose calls did not fit in its window proves nothing
  // and is made again with a window twice as long, on a client of its own.
  const svc = await start({ rateLimit: { failedAuth: { maxAttempts: 2, windowSeconds: 4 } }, endpoints });
  t.teardown(() => svc.stop());
  let conclusive = false;
  for (let windowSeconds = 4, attempt = 0; !conclusive && windowSeconds <= 64; windowSeconds *= 2, attempt++) {
    const one =
      attempt === 0 ? svc : await start({ rateLimit: { failedAuth: { maxAttempts: 2, windowSeconds } }, endpoints });
    if (one !== svc) t.teardown(() => one.stop());
    const client = `10.4.4.${attempt + 4}`;
    const before = Date.now();
    await one.check(fail(client));
    await one.check(fail(client));
    const third = await one.check(good(client));
    if (Date.now() - before >= windowSeconds * 1000) {
      t.log(`three calls took longer than the ${windowSeconds} s window: trying a longer one`);
      continue;
    }
    conclusive = true;
    t.is(deniedStatus(third), 429, 'locked out within the window');
    await waitFor(
      'the window to end',
      async () => (await one.check(good(client))).ok_response !== undefined,
      20_000 + windowSeconds * 1000,
      200,
    );
  }
  t.true(conclusive, 'three calls fitted in some window up to 64 s');
});

test('maxAttempts 0 switches the lockout off', async (t) => {
  const svc = await start({ rateLimit: { failedAuth: { maxAttempts: 0, windowSeconds: 60 } }, endpoints });
  t.teardown(() => svc.stop());
  for (let i = 0; i < 30; i++) t.is(deniedStatus(await svc.check(fail('10.5.5.5'))), 401);
});

test('with x-forwarded-for, a client that rotates spoofed entries stays locked out', async (t) => {
  const svc = await start({
    clientAddress: { from: 'x-forwarded-for', trustedHops: 1 },
    rateLimit: { failedAuth: { maxAttempts: MAX, windowSeconds: 60 } },
    endpoints,
  });
  t.teardown(() => svc.stop());
  for (let i = 0; i < MAX + 3; i++) {
    const res = await svc.check(fail('10.0.0.1', '/mcp/files', { 'x-forwarded-for': `6.6.6.${i}, 203.0.113.50` }));
    t.is(deniedStatus(res), i < MAX ? 401 : 429);
  }
  const other = await svc.check(
    checkRequest({
      method: 'GET',
      path: '/mcp/files',
      source: '10.0.0.1',
      headers: { 'x-test-auth': 'ok', 'x-forwarded-for': '203.0.113.50, 203.0.113.51' },
    }),
  );
  t.truthy(other.ok_response, 'a different real client behind the same proxy is not locked out');
});

test('per-client rate: burst requests pass, the next is 429 rate_limited with Retry-After', async (t) => {
  const svc = await start({ rateLimit: { perClient: { rps: 0.1, burst: 3 } }, endpoints });
  t.teardown(() => svc.stop());
  for (let i = 0; i < 3; i++) t.truthy((await svc.check(good('10.6.6.6'))).ok_response, `request ${i + 1}`);
  const limited = await svc.check(good('10.6.6.6'));
  t.is(deniedStatus(limited), 429);
  t.is(limited.status?.code, 8);
  t.is(deniedBody(limited).error, 'rate_limited');
  const retry = Number(headerValue(limited.denied_response?.headers, 'retry-after'));
  t.true(retry >= 1 && retry <= 30, `Retry-After ${retry}`);
});

test('per-client rate is keyed by API key id, not by address', async (t) => {
  const svc = await start({ rateLimit: { perClient: { rps: 0.1, burst: 1 } }, endpoints });
  t.teardown(() => svc.stop());
  t.truthy((await svc.check(good('10.7.0.1', '/mcp/files', 'alpha'))).ok_response);
  t.is(
    deniedStatus(await svc.check(good('10.7.0.2', '/mcp/files', 'alpha'))),
    429,
    'same key from another address shares the bucket',
  );
  t.truthy(
    (await svc.check(good('10.7.0.1', '/mcp/files', 'beta'))).ok_response,
    'another key from the same address has its own bucket',
  );
});

test('per-client rate is keyed by token issuer and subject', async (t) => {
  const svc = await start({ rateLimit: { perClient: { rps: 0.1, burst: 1 } }, endpoints });
  t.teardown(() => svc.stop());
  const tok = (sub: string, source: string) =>
    checkRequest({ method: 'GET', path: '/mcp/files', source, headers: { 'x-test-auth': 'token', 'x-test-sub': sub } });
  t.truthy((await svc.check(tok('alice', '10.8.0.1'))).ok_response);
  t.is(deniedStatus(await svc.check(tok('alice', '10.8.0.2'))), 429);
  t.truthy((await svc.check(tok('bob', '10.8.0.1'))).ok_response);
});

test('per-client rate on an auth-off endpoint is keyed by client address', async (t) => {
  const svc = await start({ rateLimit: { perClient: { rps: 0.1, burst: 2 } }, endpoints });
  t.teardown(() => svc.stop());
  const anon = (source: string) => checkRequest({ method: 'GET', path: '/mcp/open', source });
  t.truthy((await svc.check(anon('10.9.0.1'))).ok_response);
  t.truthy((await svc.check(anon('10.9.0.1'))).ok_response);
  t.is(deniedStatus(await svc.check(anon('10.9.0.1'))), 429);
  t.truthy((await svc.check(anon('10.9.0.2'))).ok_response);
});

test('an endpoint rateLimit overrides the global per-client rate; rps 0 switches it off', async (t) => {
  const svc = await start({
    rateLimit: { perClient: { rps: 0.1, burst: 1 } },
    endpoints: [
      { name: 'strict', match: { pathPrefix: '/mcp/strict' }, auth: { apiKey: true } },
      { name: 'roomy', match: { pathPrefix: '/mcp/roomy' }, auth: { apiKey: true }, rateLimit: { rps: 0.1, burst: 4 } },
      { name: 'free', match: { pathPrefix: '/mcp/free' }, auth: { apiKey: true }, rateLimit: { rps: 0, burst: 0 } },
    ],
  });
  t.teardown(() => svc.stop());
  t.truthy((await svc.check(good('10.10.0.1', '/mcp/strict'))).ok_response);
  t.is(deniedStatus(await svc.check(good('10.10.0.1', '/mcp/strict'))), 429);
  for (let i = 0; i < 4; i++)
    t.truthy((await svc.check(good('10.10.0.1', '/mcp/roomy'))).ok_response, `roomy ${i + 1}`);
  t.is(deniedStatus(await svc.check(good('10.10.0.1', '/mcp/roomy'))), 429);
  for (let i = 0; i < 20; i++) t.truthy((await svc.check(good('10.10.0.1', '/mcp/free'))).ok_response);
});

test('MCP_RATE_LIMIT_RPS and MCP_RATE_LIMIT_BURST set the per-client rate', async (t) => {
  const auth = new TestAuthenticator();
  const svc = await startTestService(
    { endpoints },
    {
      env: { MCP_RATE_LIMIT_RPS: '0.1', MCP_RATE_LIMIT_BURST: '2' },
      runtime: { overrides: { authenticator: auth, authorizer: admitAuthenticated } },
    },
  );
  t.teardown(() => svc.stop());
  t.truthy((await svc.check(good('10.11.0.1'))).ok_response);
  t.truthy((await svc.check(good('10.11.0.1'))).ok_response);
  t.is(deniedStatus(await svc.check(good('10.11.0.1'))), 429);
});
