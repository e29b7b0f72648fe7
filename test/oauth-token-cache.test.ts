import nodeCrypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import test from 'ava';
import { createHash } from 'node:crypto';
import { ConfigSchema } from '../src/config/schema.js';
import { silentLogger } from '../src/log/logger.js';
import { createTokenVerifier } from '../src/auth/oauth/jwt-verifier.js';
import { TokenCache, tokenDigest, type VerifiedToken } from '../src/auth/oauth/token-cache.js';
import type { TokenVerifier } from '../src/auth/oauth/token-verifier.js';
import { ANONYMOUS } from '../src/contracts/principal.js';
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js';

const A = 'https://mcp.example.com/mcp/a';
const B = 'https://mcp.example.com/mcp/b';

let idp: JwksServer;
const open: TokenVerifier[] = [];

test.before(async () => {
  idp = await startJwksServer({ discovery: 'none' });
});
test.after.always(async () => {
  for (const v of open) await v.close();
  await idp?.stop();
});

function verifier(oauth: Record<string, unknown> = {}, server = idp) {
  let offsetMs = 0;
  const config = ConfigSchema.parse({
    oauth: { issuers: [{ issuer: server.issuer, jwksUri: server.jwksUri }], ...oauth },
  }).oauth;
  const v = createTokenVerifier(config, { logger: silentLogger(), now: () => Date.now() + offsetMs });
  open.push(v);
  return { v, advance: (s: number) => (offsetMs += s * 1000) };
}

const entry = (expiresAt = 1): VerifiedToken => ({ principal: ANONYMOUS, expiresAt, audiences: [] });

test('the cache key is the SHA-256 of the token, never the token', (t) => {
  const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln';
  t.is(tokenDigest(token), createHash('sha256').update(token).digest('base64url'));
  t.false(tokenDigest(token).includes('eyJ'));
});

test('the LRU keeps at most its capacity and evicts the least recently used', (t) => {
  const cache = new TokenCache(2);
  cache.set('a', entry());
  cache.set('b', entry());
  t.truthy(cache.get('a'));
  cache.set('c', entry());
  t.is(cache.size, 2);
  t.truthy(cache.get('a'));
  t.is(cache.get('b'), undefined);
  t.truthy(cache.get('c'));
});

test('a cache of size 0 keeps nothing', (t) => {
  const cache = new TokenCache(0);
  cache.set('a', entry());
  t.is(cache.get('a'), undefined);
  t.is(cache.size, 0);
});

test('a repeated token is answered from the cache, without its signing key', async (t) => {
  // Its own IdP: rotating the shared one would race the other tests.
  const own = await startJwksServer({ discovery: 'none' });
  t.teardown(() => own.stop());
  const { v, advance } = verifier({ jwksCooldownSeconds: 30 }, own);
  const token = await own.sign({ sub: 'a', aud: A });
  const first = await v.verify(token, [A]);
  t.true(first.ok);
  // Rotate the key away and let a refetch happen: only a cache hit can still succeed.
  await own.rotate('RS256');
  advance(31);
  t.false((await v.verify(await own.sign({ sub: 'x', aud: A }, { kid: 'gone' }), [A])).ok);
  t.is(own.fetches, 2);
  const again = await v.verify(token, [A]);
  t.true(again.ok);
  t.is(again.ok && again.principal, first.ok && first.principal);
  const { v: uncached } = verifier({ tokenCacheSize: 0 }, own);
  t.false((await uncached.verify(token, [A])).ok, 'without the cache the rotated-away key fails');
});

test.serial('a repeated token costs a digest and a lookup, not a signature check', async (t) => {
  const { v } = verifier();
  const { v: uncached } = verifier({ tokenCacheSize: 0 });
  const token = await idp.sign({ sub: 'a', aud: A });
  // Count the signature checks the verifier asks node:crypto for (the real verify still runs):
  // syncBuiltinESMExports carries the counting function to every module's `verify` import.
  const real = nodeCrypto.verify;
  let checks = 0;
  nodeCrypto.verify = ((...args: Parameters<typeof real>) => {
    checks++;
    return real(...args);
  }) as typeof real;
  syncBuiltinESMExports();
  t.teardown(() => {
    nodeCrypto.verify = real;
    syncBuiltinESMExports();
  });
  t.true((await v.verify(token, [A])).ok);
  t.is(checks, 1, 'the first sight of a token checks its signature');
  for (let i = 0; i < 100; i++) t.true((await v.verify(token, [A])).ok);
  t.is(checks, 1, 'a cached token is never checked again');
  for (let i = 0; i < 5; i++) t.true((await uncached.verify(token, [A])).ok);
  t.is(checks, 6, 'without the cache every verification checks the signature');
});

test('a token cached for endpoint A is refused for endpoint B', async (t) => {
  const { v } = verifier();
  const token = await idp.sign({ sub: 'a', aud: A });
  t.true((await v.verify(token, [A])).ok);
  const res = await v.verify(token, [B]);
  t.false(res.ok);
  t.regex(res.ok ? '' : res.why, /audience/);
  t.true((await v.verify(token, [A])).ok);
});

test('a cached token is refused once exp plus the clock tolerance has passed', async (t) => {
  const { v, advance } = verifier({ clockToleranceSeconds: 30 });
  const exp = Math.floor(Date.now() / 1000) + 60;
  const token = await idp.sign({ sub: 'a', aud: A, exp });
  t.true((await v.verify(token, [A])).ok);
  advance(80);
  t.true((await v.verify(token, [A])).ok, 'still within tolerance');
  advance(15);
  const res = await v.verify(token, [A]);
  t.false(res.ok);
  t.regex(res.ok ? '' : res.why, /expired/);
});

test('a cached principal is frozen, so one request cannot change it for the next', async (t) => {
  const { v } = verifier();
  const res = await v.verify(await idp.sign({ sub: 'a', aud: A, scope: 'tools:x' }), [A]);
  if (!res.ok) return t.fail(res.why);
  t.true(Object.isFrozen(res.principal));
  t.true(Object.isFrozen(res.principal.scopes));
  t.true(Object.isFrozen(res.principal.claims));
});
