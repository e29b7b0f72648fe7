import nodeCrypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import test from 'ava';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { ConfigSchema } from '../src/config/schema.js';
import { silentLogger } from '../src/log/logger.js';
import { createTokenVerifier } from '../src/auth/oauth/jwt-verifier.js';
import { ENTRY_BYTES, TokenCache, tokenDigest } from '../src/auth/oauth/token-cache.js';
import type { TokenVerifier } from '../src/auth/oauth/token-verifier.js';
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

interface Rec {
  key: string;
  bytes: number;
}
const rec = (key = 'r', bytes = 100): Rec => ({ key, bytes });
const d = (i: number | string) => tokenDigest(`token-${i}`);
const FAR = 2 ** 40;

test('the cache key is the SHA-256 of the whole token, never the token', (t) => {
  const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln';
  t.deepEqual(tokenDigest(token), createHash('sha256').update(token).digest());
  t.false(tokenDigest(token).toString('latin1').includes('eyJ'));
  // One byte more or less is another entry.
  const cache = new TokenCache<Rec>(10, 1 << 20);
  cache.set(tokenDigest(token), FAR, rec(), 0);
  t.true(cache.find(tokenDigest(token)) >= 0);
  t.is(cache.find(tokenDigest(token.slice(0, -1))), -1);
  t.is(cache.find(tokenDigest(`${token}A`)), -1);
});

test('the cache keeps at most its entry count, and CLOCK gives a recently used entry a second chance', (t) => {
  const cache = new TokenCache<Rec>(2, 1 << 20);
  cache.set(d('a'), FAR, rec(), 0);
  cache.set(d('b'), FAR, rec(), 0);
  t.true(cache.find(d('a')) >= 0);
  cache.set(d('c'), FAR, rec(), 0);
  t.is(cache.size, 2);
  t.true(cache.find(d('a')) >= 0, 'a was used since it was cached');
  t.is(cache.find(d('b')), -1, 'b was not');
  t.true(cache.find(d('c')) >= 0);
});

test('an expired entry gets no second chance', (t) => {
  const cache = new TokenCache<Rec>(2, 1 << 20);
  cache.set(d('live'), 1000, rec(), 0);
  cache.set(d('expired'), 500, rec(), 0);
  // Both used since they were cached: the hand passes over the live one, not the expired one.
  t.true(cache.find(d('live')) >= 0);
  t.true(cache.find(d('expired')) >= 0);
  cache.set(d('new'), 1000, rec(), 600);
  t.is(cache.find(d('expired')), -1);
  t.true(cache.find(d('live')) >= 0);
  t.true(cache.find(d('new')) >= 0);
});

test('a cache of size 0 or no bytes keeps nothing', (t) => {
  for (const cache of [new TokenCache<Rec>(0, 1 << 20), new TokenCache<Rec>(10, 0)]) {
    cache.set(d('a'), FAR, rec(), 0);
    t.is(cache.find(d('a')), -1);
    t.is(cache.size, 0);
  }
});

test('tokens of one identity share one record, freed with the last of them', (t) => {
  const cache = new TokenCache<Rec>(100, 1 << 20);
  for (let i = 0; i < 50; i++) cache.set(d(i), FAR, rec(i < 40 ? 'alice' : 'bob'), 0);
  t.is(cache.size, 50);
  t.is(cache.recordCount, 2);
  const alice = cache.record(cache.find(d(0)));
  t.is(cache.record(cache.find(d(39))), alice);
  t.is(cache.record(cache.find(d(40))).key, 'bob');
  for (let i = 40; i < 50; i++) cache.delete(cache.find(d(i)));
  t.is(cache.recordCount, 1);
  t.is(cache.bytes, 100 * ENTRY_BYTES + 100, 'the 100 slots and one record');
});

test('the byte budget bounds entries and records together', (t) => {
  const budget = 4096 * ENTRY_BYTES;
  const cache = new TokenCache<Rec>(1_000_000, budget);
  t.is(cache.maxEntries, 4096);
  // Every token its own large record: the records' bytes evict entries long before 4,096.
  for (let i = 0; i < 5000; i++) {
    cache.set(d(i), FAR, rec(`r${i}`, 1000), 0);
    t.true(cache.bytes <= budget);
  }
  t.true(cache.size < 200);
  t.true(cache.find(d(4999)) >= 0, 'the newest entry is always held');
});

test('a million tokens of one identity fit the default budget', (t) => {
  const { tokenCacheSize, tokenCacheMaxBytes } = ConfigSchema.parse({}).oauth;
  const cache = new TokenCache<Rec>(tokenCacheSize, tokenCacheMaxBytes);
  const record = rec('alice', 300);
  for (let i = 0; i < 1_000_000; i++) cache.set(d(i), FAR, record, 0);
  t.is(cache.size, 1_000_000);
  t.true(cache.bytes <= 1_000_000 * ENTRY_BYTES + 300, `${cache.bytes} bytes`);
  for (let i = 0; i < 1_000_000; i += 997) t.true(cache.find(d(i)) >= 0);
});

test('property: the cache agrees with a model map under inserts, deletes and evictions, colliding hashes included', (t) => {
  // Digests sharing their first word land on one probe chain: backward-shift deletion is exercised.
  const digestOf = (hashWord: number, n: number) => {
    const b = Buffer.alloc(32);
    b.writeInt32LE(hashWord, 0);
    b.writeUInt32LE(n, 4);
    return b;
  };
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.array(
        fc.tuple(
          fc.constantFrom('set', 'set', 'delete', 'find'),
          fc.integer({ min: 0, max: 7 }),
          fc.integer({ min: 0, max: 60 }),
        ),
        {
          maxLength: 300,
        },
      ),
      (max, ops) => {
        const cache = new TokenCache<Rec>(max, 1 << 30);
        const model = new Map<string, number>();
        let clock = 0;
        for (const [op, h, n] of ops) {
          const digest = digestOf(h * 1024, n);
          const id = digest.toString('hex');
          if (op === 'set') {
            clock++;
            cache.set(digest, clock, rec(`r${n % 3}`), 0);
            model.set(id, clock);
          } else if (op === 'delete') {
            const s = cache.find(digest);
            if (s >= 0) cache.delete(s);
            model.delete(id);
          }
          const s = cache.find(digest);
          if (op === 'set') {
            if (s < 0 || cache.expiresAt(s) !== clock || cache.record(s).key !== `r${n % 3}`) return false;
          } else if (op === 'delete' && s >= 0) return false;
          if (cache.size > max) return false;
          // Whatever is held is what was last set for that digest; evictions only remove.
          let held = 0;
          for (const [key, exp] of model) {
            const slot = cache.find(Buffer.from(key, 'hex'));
            if (slot >= 0) {
              held++;
              if (cache.expiresAt(slot) !== exp) return false;
            }
          }
          if (held !== cache.size) return false;
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
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
  t.deepEqual(again.ok && again.principal, first.ok && first.principal);
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

test('property: a cached verifier decides every token as an uncached one does, as the clock moves', async (t) => {
  const base = Date.now();
  const s = Math.floor(base / 1000);
  const tokens = await Promise.all([
    idp.sign({ sub: 'alice', aud: A, exp: s + 60, jti: '1' }),
    idp.sign({ sub: 'alice', aud: A, exp: s + 3600, jti: '2' }),
    idp.sign({ sub: 'bob', aud: [A, B], exp: s + 200, scope: 'tools:a tools:b' }),
    idp.sign({ sub: 'carol', aud: B, exp: s + 100, roles: ['admin'] }),
    idp.sign({ sub: 'dave', aud: A, nbf: s + 50, exp: s + 400 }),
    idp.sign({ sub: 'erin', aud: A, iat: s + 100 }),
    idp.sign({ sub: 'frank', aud: A, exp: s - 100 }),
    idp.sign({ aud: A, exp: s + 100 }),
    idp.sign({ sub: 'gina', aud: A, exp: s + 30 }, { alg: 'ES256' }),
  ]);
  // A valid token with one signature byte changed (a middle character: the spelling stays canonical).
  const good = tokens[1]!;
  const at = good.lastIndexOf('.') + 10;
  tokens.push(good.slice(0, at) + (good[at] === 'A' ? 'B' : 'A') + good.slice(at + 1));
  const audienceSets = [[A], [B], [A, B]];
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.tuple(
          fc.integer({ min: 0, max: tokens.length - 1 }),
          fc.integer({ min: 0, max: 2 }),
          fc.integer({ min: 0, max: 40 }),
        ),
        { minLength: 1, maxLength: 40 },
      ),
      async (steps) => {
        let offsetMs = 0;
        const make = (tokenCacheSize: number) => {
          const config = ConfigSchema.parse({
            oauth: {
              issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, algorithms: ['RS256', 'ES256'] }],
              tokenCacheSize,
            },
          }).oauth;
          return createTokenVerifier(config, { logger: silentLogger(), now: () => base + offsetMs });
        };
        const [uncached, small, large] = [make(0), make(2), make(1000)];
        try {
          for (const [i, a, advance] of steps) {
            offsetMs += advance * 1000;
            const want = await uncached.verify(tokens[i]!, audienceSets[a]!);
            for (const v of [small, large]) {
              const got = await v.verify(tokens[i]!, audienceSets[a]!);
              if (!isDeepStrictEqual(got, want)) return false;
            }
          }
          return true;
        } finally {
          for (const v of [uncached, small, large]) await v.close();
        }
      },
    ),
    { numRuns: 100 },
  );
  t.pass();
});
