import test from 'ava';
import { randomUUID } from 'node:crypto';
import { ConfigSchema } from '../src/config/schema.js';
import { silentLogger } from '../src/log/logger.js';
import { createTokenVerifier, type TokenVerifierOptions } from '../src/auth/oauth/jwt-verifier.js';
import { discoveryUrls } from '../src/auth/oauth/issuer-discovery.js';
import type { TokenVerifier } from '../src/auth/oauth/token-verifier.js';
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js';
import { waitFor } from './helpers/wait.js';

const RESOURCE = 'https://mcp.example.com/mcp/files';

interface Harness {
  idp: JwksServer;
  verifier: TokenVerifier;
  events: Array<[string, string]>;
  /** Moves the verifier's clock forward. */
  advance(seconds: number): void;
}

const open: Array<() => Promise<void>> = [];
test.after.always(async () => {
  for (const close of open) await close();
});

async function harness(
  opts: {
    discovery?: 'openid' | 'oauth' | 'none';
    issuerPath?: string;
    issuer?: (idp: JwksServer) => Record<string, unknown>;
  } = {},
  oauth: Record<string, unknown> = {},
  verifierOpts: Partial<TokenVerifierOptions> = {},
): Promise<Harness> {
  const idp = await startJwksServer({ discovery: opts.discovery ?? 'none', issuerPath: opts.issuerPath });
  const issuer = opts.issuer?.(idp) ?? { issuer: idp.issuer, jwksUri: idp.jwksUri };
  const config = ConfigSchema.parse({ oauth: { issuers: [issuer], tokenCacheSize: 0, ...oauth } }).oauth;
  let offsetMs = 0;
  const events: Array<[string, string]> = [];
  const verifier = createTokenVerifier(config, {
    logger: silentLogger(),
    events: { jwksRefresh: (iss, result) => events.push([iss, result]) },
    now: () => Date.now() + offsetMs,
    ...verifierOpts,
  });
  open.push(async () => {
    await verifier.close();
    await idp.stop();
  });
  return { idp, verifier, events, advance: (s) => (offsetMs += s * 1000) };
}

test('discovery URLs: OIDC appended, then RFC 8414 inserted before the issuer path, then appended', (t) => {
  t.deepEqual(discoveryUrls('https://idp.example.com/realms/acme/'), [
    'https://idp.example.com/realms/acme/.well-known/openid-configuration',
    'https://idp.example.com/.well-known/oauth-authorization-server/realms/acme',
    'https://idp.example.com/realms/acme/.well-known/oauth-authorization-server',
  ]);
  t.deepEqual(discoveryUrls('https://idp.example.com'), [
    'https://idp.example.com/.well-known/openid-configuration',
    'https://idp.example.com/.well-known/oauth-authorization-server',
  ]);
});

test('without jwksUri the keys are found through openid-configuration', async (t) => {
  const h = await harness({
    discovery: 'openid',
    issuerPath: '/realms/acme',
    issuer: (idp) => ({ issuer: idp.issuer }),
  });
  const res = await h.verifier.verify(await h.idp.sign({ sub: 'a', aud: RESOURCE }), [RESOURCE]);
  t.true(res.ok);
  t.is(h.idp.discoveryFetches, 1);
  t.is(h.idp.fetches, 1);
});

test('without OIDC discovery the keys are found through RFC 8414 metadata at the inserted path', async (t) => {
  const h = await harness({ discovery: 'oauth', issuerPath: '/tenant/a', issuer: (idp) => ({ issuer: idp.issuer }) });
  const res = await h.verifier.verify(await h.idp.sign({ sub: 'a', aud: RESOURCE }), [RESOURCE]);
  t.true(res.ok, res.ok ? '' : res.why);
  t.is(h.idp.discoveryFetches, 2);
  t.is(h.idp.fetches, 1);
});

test('metadata that names another issuer is refused and its JWKS never fetched', async (t) => {
  // Same server under another host name: its metadata says 127.0.0.1, not localhost.
  const h = await harness({
    discovery: 'openid',
    issuer: (idp) => ({ issuer: idp.issuer.replace('127.0.0.1', 'localhost') }),
  });
  const iss = h.idp.issuer.replace('127.0.0.1', 'localhost');
  const res = await h.verifier.verify(await h.idp.sign({ sub: 'a', aud: RESOURCE, iss }), [RESOURCE]);
  t.false(res.ok);
  t.regex(res.ok ? '' : res.why, /signing keys .* unavailable/);
  t.is(h.idp.fetches, 0);
  t.deepEqual(h.events, [[iss, 'failure']]);
});

test('1,000 tokens with random kids cause at most one JWKS fetch per cooldown', async (t) => {
  const h = await harness({}, { jwksCooldownSeconds: 30 });
  t.true((await h.verifier.verify(await h.idp.sign({ sub: 'a', aud: RESOURCE }), [RESOURCE])).ok);
  t.is(h.idp.fetches, 1);
  const randomKids = () =>
    Promise.all(Array.from({ length: 1000 }, () => h.idp.sign({ sub: 'a', aud: RESOURCE }, { kid: randomUUID() })));
  // One after another, so deduplicating concurrent fetches alone could not pass this.
  for (const token of await randomKids()) t.false((await h.verifier.verify(token, [RESOURCE])).ok);
  t.true(h.idp.fetches <= 2, `${h.idp.fetches} fetches`);
  // Once the cooldown has passed, one more flood costs exactly one more fetch.
  const before = h.idp.fetches;
  h.advance(31);
  for (const token of await randomKids()) await h.verifier.verify(token, [RESOURCE]);
  t.is(h.idp.fetches, before + 1);
});

test('key rotation: a new kid is accepted after one refetch and the dropped key stops verifying', async (t) => {
  const h = await harness({}, { jwksCooldownSeconds: 30 });
  t.true((await h.verifier.verify(await h.idp.sign({ sub: 'a', aud: RESOURCE }), [RESOURCE])).ok);
  const oldToken = await h.idp.sign({ sub: 'old', aud: RESOURCE });
  await h.idp.rotate('RS256');
  h.advance(31);
  const res = await h.verifier.verify(await h.idp.sign({ sub: 'b', aud: RESOURCE }), [RESOURCE]);
  t.true(res.ok, res.ok ? '' : res.why);
  t.is(h.idp.fetches, 2);
  const old = await h.verifier.verify(oldToken, [RESOURCE]);
  t.false(old.ok);
  t.regex(old.ok ? '' : old.why, /no signing key/);
});

test('a rotated key within the cooldown is refused without a fetch', async (t) => {
  const h = await harness({}, { jwksCooldownSeconds: 30 });
  t.true((await h.verifier.verify(await h.idp.sign({ sub: 'a', aud: RESOURCE }), [RESOURCE])).ok);
  await h.idp.rotate('ES256');
  const res = await h.verifier.verify(await h.idp.sign({ sub: 'b', aud: RESOURCE }, { alg: 'ES256' }), [RESOURCE]);
  t.false(res.ok);
  t.is(h.idp.fetches, 1);
});

test('IdP down after the first fetch: cached keys keep verifying, also past cacheMaxAge', async (t) => {
  const h = await harness({}, { jwksCooldownSeconds: 5, jwksCacheMaxAgeSeconds: 60 });
  const sign = () => h.idp.sign({ sub: 'a', aud: RESOURCE, exp: Math.floor(Date.now() / 1000) + 7200 });
  t.true((await h.verifier.verify(await sign(), [RESOURCE])).ok);
  h.idp.setDown(true);
  t.true((await h.verifier.verify(await sign(), [RESOURCE])).ok);
  h.advance(120);
  t.true((await h.verifier.verify(await sign(), [RESOURCE])).ok);
  await waitFor('the failed background refresh', () => h.events.length === 2, 5000, 0);
  t.deepEqual(
    h.events.map(([, r]) => r),
    ['success', 'failure'],
  );
  t.true((await h.verifier.verify(await sign(), [RESOURCE])).ok, 'a failed refresh must not drop the keys');
  // Back up: the next stale read refreshes in the background and succeeds.
  h.idp.setDown(false);
  h.advance(10);
  t.true((await h.verifier.verify(await sign(), [RESOURCE])).ok);
  await waitFor('the successful refresh', () => h.events.length === 3, 5000, 0);
  t.deepEqual(
    h.events.map(([, r]) => r),
    ['success', 'failure', 'success'],
  );
  t.true(h.events.every(([iss]) => iss === h.idp.issuer));
});

test('a stale key set is refreshed in the background: verification does not wait for the IdP', async (t) => {
  const h = await harness({}, { jwksCacheMaxAgeSeconds: 60 }, { fetchTimeoutMs: 60_000 });
  t.true((await h.verifier.verify(await h.idp.sign({ sub: 'a', aud: RESOURCE }), [RESOURCE])).ok);
  h.idp.setDelay(Infinity);
  h.advance(61);
  const token = await h.idp.sign({ sub: 'b', aud: RESOURCE });
  t.true((await h.verifier.verify(token, [RESOURCE])).ok);
  await waitFor('the background JWKS request', () => h.idp.fetches === 2, 5000, 0);
  t.is(h.idp.jwksAnswered, 1, 'verified while the refresh is still unanswered: it never waited for the IdP');
});

test('IdP down from the start: tokens are invalid because keys are unavailable', async (t) => {
  const h = await harness();
  h.idp.setDown(true);
  const res = await h.verifier.verify(await h.idp.sign({ sub: 'a', aud: RESOURCE }), [RESOURCE]);
  t.false(res.ok);
  t.regex(res.ok ? '' : res.why, /unavailable/);
  t.deepEqual(
    h.events.map(([, r]) => r),
    ['failure'],
  );
});

test('a JWKS endpoint slower than the timeout fails the fetch instead of blocking', async (t) => {
  const h = await harness({}, {}, { fetchTimeoutMs: 200 });
  h.idp.setDelay(Infinity);
  const token = await h.idp.sign({ sub: 'a', aud: RESOURCE });
  const res = await h.verifier.verify(token, [RESOURCE]);
  t.false(res.ok);
  t.is(h.idp.jwksAnswered, 0, 'the verification ended while the IdP never answered');
  t.deepEqual(
    h.events.map(([, r]) => r),
    ['failure'],
  );
});

test('close aborts a fetch in flight and the pending verification resolves invalid', async (t) => {
  const h = await harness({}, {}, { fetchTimeoutMs: 60_000 });
  h.idp.setDelay(Infinity);
  const pending = h.verifier.verify(await h.idp.sign({ sub: 'a', aud: RESOURCE }), [RESOURCE]);
  await waitFor('the JWKS request', () => h.idp.fetches === 1, 5000, 0);
  await h.verifier.close();
  const res = await pending;
  t.false(res.ok);
  t.is(h.idp.jwksAnswered, 0, 'resolved by the close, not by an answer');
  t.deepEqual(h.events, [], 'a closed verifier reports no refresh');
});
