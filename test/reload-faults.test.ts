// Reload faults under load, against the real `serve` over gRPC: an identity provider whose
// JWKS endpoint flaps and answers slowly, a policy bundle replaced by a half-written file, a
// keys file replaced by an invalid one. Checks keep coming throughout (test/helpers/
// check-load.ts) and every one must get the decision it would get without the fault: known
// keys keep verifying from the cache, the last good policy and keys stay in force until a good
// file is complete. The failure metrics rise, and the chart's alerts fire on them
// (test/helpers/alert-replay.ts).
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { SHIPPED_BUNDLE } from '../src/config/paths.mjs';
import { replayAlerts, type Scrape } from './helpers/alert-replay.js';
import { keysFile, makeKey } from './helpers/auth-fixtures.js';
import { CheckLoad, type Expected } from './helpers/check-load.js';
import { startJwksServer } from './helpers/jwks-server.js';
import { sample, scrapeMetrics, sumOf } from './helpers/prometheus.js';
import { checkRequest, deniedStatus, rpc } from './helpers/service.js';
import { startServe, type ServeProcess } from './helpers/subprocess-service.js';
import { waitFor } from './helpers/wait.js';

const RESOURCE = 'https://mcp.example.com/mcp/files';
/** How long a wait may take before it is a hang: a bound, not a timing claim (300 s, as the other hang guards). */
const DEADLINE_MS = 300_000;
/** A Check unanswered this long is an error, never a hang (generous: a busy machine must not fail it). */
const CHECK_DEADLINE_MS = 60_000;
/** The load sends a steady stream of refused credentials from one address: count them, never lock it out. */
const NO_LOCKOUT = { failedAuth: { maxAttempts: 1_000_000_000, windowSeconds: 60 } };

/** The service's /metrics now (taken again while the primary answers 500: test/helpers/prometheus.ts). */
function scrape(s: ServeProcess): Promise<string> {
  return scrapeMetrics(`http://127.0.0.1:${s.httpPort}/metrics`, DEADLINE_MS);
}

/** Polls /metrics until `cond` holds on it (a deadline, not a timing claim); returns that scrape. */
async function metricsUntil(s: ServeProcess, what: string, cond: (text: string) => boolean): Promise<string> {
  let text = '';
  await waitFor(what, async () => cond((text = await scrape(s))), DEADLINE_MS, 50);
  return text;
}

const tool = (name: string) => rpc('tools/call', { name, arguments: {} });

test('JWKS endpoint flapping and slow under load: known keys keep verifying from the cache, unknown kids refetch at most once per cooldown, refresh failures are counted and the JWKS alert fires', async (t) => {
  t.timeout(1_200_000, 'a service under load through several outages on a busy machine');
  const idp = await startJwksServer({ discovery: 'none' });
  t.teardown(() => idp.stop());
  const cooldownSeconds = 1;
  const s = await startServe(
    {
      oauth: {
        issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }],
        jwksCooldownSeconds: cooldownSeconds,
        jwksCacheMaxAgeSeconds: 1,
        tokenCacheSize: 0,
      },
      rateLimit: NO_LOCKOUT,
      endpoints: [
        {
          name: 'files',
          match: { pathPrefix: '/mcp/files' },
          owner: 'alice',
          auth: { apiKey: false, oauth: true },
          resource: RESOURCE,
          scopes: ['tools:search'],
        },
      ],
    },
    ['--workers', '1'],
    { clients: 4 },
  );
  t.teardown(() => s.stop());
  const started = Date.now();
  const known = await idp.sign({
    sub: 'alice',
    aud: RESOURCE,
    scope: 'tools:search',
    exp: Math.floor(Date.now() / 1000) + 7200,
  });
  const unknownKid = () => idp.sign({ sub: 'alice', aud: RESOURCE, scope: 'tools:search' }, { kid: randomUUID() });
  const forged: string[] = [];
  for (let i = 0; i < 64; i++) forged.push(await unknownKid());
  const bearer = (token: string) =>
    checkRequest({
      path: '/mcp/files',
      body: tool('search'),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
  const knownCheck: Expected = { request: bearer(known), status: 200, what: 'a token signed with a cached key' };
  t.truthy((await s.check(knownCheck.request)).ok_response, 'the first token verifies once the keys are fetched');

  // Three of every four Checks carry the known token; the fourth a kid the IdP never published.
  const load = new CheckLoad(
    (req, lane) => s.check(req, lane, { deadlineMs: CHECK_DEADLINE_MS }),
    (n) =>
      n % 4 === 3
        ? { request: bearer(forged[n % forged.length]!), status: 401, what: 'a token with an unknown kid' }
        : knownCheck,
  );
  t.teardown(() => load.stop());
  const failures = (text: string) =>
    sample(text, 'mcp_authz_jwks_refresh_total', { issuer: idp.issuer, result: 'failure' }) ?? NaN;
  const successes = (text: string) =>
    sample(text, 'mcp_authz_jwks_refresh_total', { issuer: idp.issuer, result: 'success' }) ?? NaN;

  await load.more(100);
  const baseline = await scrape(s);
  const scrapes: Scrape[] = [{ minute: 0, text: baseline }];

  // Flapping: down, up, down, up. Down, every refresh fails (the stale set is refreshed in the
  // background, unknown kids ask for one) while known tokens keep verifying.
  let last = baseline;
  for (let cycle = 0; cycle < 2; cycle++) {
    idp.setDown(true);
    const f0 = failures(last);
    last = await metricsUntil(s, 'refreshes failing while the IdP is down', (m) => failures(m) >= f0 + 2);
    t.log(`cycle ${cycle}: down, ${failures(last)} failures, ${load.answered} answered`);
    await load.more(200);
    idp.setDown(false);
    const s0 = successes(last);
    last = await metricsUntil(s, 'a refresh succeeding once the IdP is back', (m) => successes(m) > s0);
    await load.more(100);
  }

  // Slow: the IdP holds the JWKS request. Known tokens verify while it is unanswered, so no
  // Check waits for the IdP's answer.
  idp.setDelay(Infinity);
  const held = idp.fetches;
  await waitFor('a JWKS request the IdP holds', () => idp.fetches > held, DEADLINE_MS);
  const answeredByIdp = idp.jwksAnswered;
  const before = load.answered;
  await load.more(200);
  t.is(idp.jwksAnswered, answeredByIdp, `${load.answered - before} Checks answered while the IdP answered nothing`);
  // The held fetches time out: failures.
  t.log(`slow: ${load.answered} answered`);
  const f1 = failures(last);
  last = await metricsUntil(s, 'the held fetch to time out as a failure', (m) => failures(m) > f1);
  // Slow but answering: the fetch succeeds late.
  idp.setDelay(2000);
  const s1 = successes(last);
  last = await metricsUntil(s, 'a slow fetch to succeed', (m) => successes(m) > s1);
  await load.more(100);

  t.log(`slow done: ${load.answered} answered`);
  // A long outage, as the alert needs it: failures only, scraped as the failures rise. What
  // happened up to its first failure is placed at minute 1, so its own minutes hold no success.
  idp.setDelay(0);
  idp.setDown(true);
  const f2 = failures(last);
  last = await metricsUntil(s, "the outage's first failure", (m) => failures(m) > f2);
  scrapes.push({ minute: 1, text: last });
  for (let i = 0; i < 5; i++) {
    const f = failures(last);
    last = await metricsUntil(s, 'refreshes failing in the long outage', (m) => failures(m) > f);
    scrapes.push({ minute: 20 + 2 * i, text: last });
  }
  await load.more(100);
  idp.setDown(false);
  const s2 = successes(last);
  last = await metricsUntil(s, 'the IdP back', (m) => successes(m) > s2);
  scrapes.push({ minute: 30, text: last });
  await load.stop();
  const elapsedSeconds = (Date.now() - started) / 1000;

  t.deepEqual(load.errors, [], 'no Check failed at the gRPC level');
  t.deepEqual(load.wrong, [], 'every Check got the decision it gets without the fault');
  // One fetch per cooldown at most, whatever the stream of unknown kids (plus the first).
  t.true(
    idp.fetches <= Math.ceil(elapsedSeconds / cooldownSeconds) + 1,
    `${idp.fetches} JWKS fetches in ${elapsedSeconds.toFixed(0)} s with a ${cooldownSeconds} s cooldown`,
  );
  t.true(sumOf(last, 'mcp_authz_auth_failures_total', { detail: 'token_kid_unknown' }) > 0);

  const firing = [{ severity: 'warning', namespace: 'mcp', issuer: idp.issuer }];
  const replay = await replayAlerts(scrapes, [
    { minute: 10, alert: 'McpAuthzJwksRefreshFailing', firing: [] },
    { minute: 29, alert: 'McpAuthzJwksRefreshFailing', firing },
    { minute: 31, alert: 'McpAuthzJwksRefreshFailing', firing: [] },
  ]);
  t.true(
    replay.ok,
    `${replay.out}\n${scrapes.map((x) => `${x.minute}: failure ${failures(x.text)} success ${successes(x.text)}`).join('\n')}`,
  );
});

/** The shipped bundle repacked with another .manifest revision: the same policy, a new file. */
function bundleWithRevision(revision: string, out: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-bundle-'));
  execFileSync('tar', ['-xzf', SHIPPED_BUNDLE, '-C', dir]);
  const manifest = JSON.parse(readFileSync(join(dir, '.manifest'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, '.manifest'), JSON.stringify({ ...manifest, revision }));
  execFileSync('tar', ['-czf', out, '-C', dir, '.']);
  rmSync(dir, { recursive: true, force: true });
}

/** Writes `bytes` into the file in place (truncating it first), as a writer that is not done yet. */
function writeInPlace(path: string, bytes: Buffer): void {
  const fd = openSync(path, 'w');
  writeSync(fd, bytes);
  fsyncSync(fd);
  closeSync(fd);
}

function appendInPlace(path: string, bytes: Buffer): void {
  const fd = openSync(path, 'a');
  writeSync(fd, bytes);
  fsyncSync(fd);
  closeSync(fd);
}

test('a policy bundle written half, then whole, and a keys file replaced by an invalid one, under load (--workers 2): the last good stays in force, failures are counted and alerted, the good file is picked up once complete', async (t) => {
  t.timeout(1_200_000, 'a service under load through several reloads on a busy machine');
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-reload-faults-'));
  const bundle = join(dir, 'bundle.tar.gz');
  copyFileSync(SHIPPED_BUNDLE, bundle);
  const alice = makeKey({ id: 'alice-ci', userId: 'alice', permissions: ['tools:search'] });
  const bob = makeKey({ id: 'bob-ci', userId: 'bob', permissions: ['tools:search'] });
  const keys = join(dir, 'keys.yaml');
  writeFileSync(keys, keysFile([alice]), { mode: 0o600 });
  const s = await startServe(
    {
      apiKeys: { file: keys, pollIntervalMs: 1000 },
      rateLimit: NO_LOCKOUT,
      policy: { bundle },
      endpoints: [
        { name: 'files', match: { pathPrefix: '/mcp/files' }, owner: 'alice', auth: { apiKey: true, oauth: false } },
      ],
    },
    ['--workers', '2'],
    { clients: 4 },
  );
  t.teardown(() => s.stop());
  const call = (key: string, name: string) =>
    checkRequest({
      path: '/mcp/files',
      body: tool(name),
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
    });
  const expected: Expected[] = [
    { request: call(alice.key, 'search'), status: 200, what: 'alice calls a tool she is granted' },
    { request: call(alice.key, 'delete_all'), status: 403, what: 'alice calls a tool she is not granted' },
    { request: call(bob.key, 'search'), status: 401, what: 'a key not in the registry' },
  ];
  for (const e of expected) {
    const res = await s.check(e.request);
    t.is(res.ok_response ? 200 : deniedStatus(res), e.status, `${e.what}, before any fault`);
  }
  const load = new CheckLoad(
    (req, lane) => s.check(req, lane, { deadlineMs: CHECK_DEADLINE_MS }),
    (n) => expected[n % expected.length]!,
  );
  t.teardown(() => load.stop());
  const policyFailures = (m: string) => sample(m, 'mcp_authz_policy_reloads_total', { result: 'failure' }) ?? NaN;
  const keysFailures = (m: string) => sample(m, 'mcp_authz_api_keys_reloads_total', { result: 'failure' }) ?? NaN;
  const revisions = (m: string) =>
    [...m.matchAll(/^mcp_authz_policy_info\{revision="([^"]+)"\} 1$/gm)].map((x) => x[1]!);

  await load.more(100);
  const baseline = await scrape(s);
  const scrapes: Scrape[] = [{ minute: 0, text: baseline }];
  const shipped = revisions(baseline);
  t.is(shipped.length, 1);

  // The bundle file rewritten in place, half of it first: each worker sees the half file and
  // refuses it, and Checks go on under the policy in force.
  const next = join(dir, 'next.tar.gz');
  bundleWithRevision('reload-faults-2', next);
  const good = readFileSync(next);
  writeInPlace(bundle, good.subarray(0, good.length >> 1));
  let last = await metricsUntil(s, 'the half-written bundle to be refused', (m) => policyFailures(m) >= 2);
  scrapes.push({ minute: 20, text: last });
  await load.more(300);
  t.deepEqual(revisions(await scrape(s)), shipped, 'the last good policy is still in force');
  appendInPlace(bundle, good.subarray(good.length >> 1));
  last = await metricsUntil(
    s,
    'both workers to load the complete bundle',
    (m) => revisions(m).length === 1 && revisions(m)[0] === 'reload-faults-2',
  );
  scrapes.push({ minute: 21, text: last });
  await load.more(200);

  // The keys file replaced (by rename) with one that is not a keys file, then with a truncated
  // one: the registry in force stays, so alice's key keeps working and bob's stays unknown.
  for (const bad of ['keys: [ {id: broken\n', keysFile([alice, bob]).slice(0, 40)]) {
    const f0 = keysFailures(last);
    writeFileSync(`${keys}.tmp`, bad, { mode: 0o600 });
    renameSync(`${keys}.tmp`, keys);
    last = await metricsUntil(s, 'the invalid keys file to be refused', (m) => keysFailures(m) >= f0 + 2);
    await load.more(300);
  }
  scrapes.push({ minute: 22, text: last });
  await load.stop();
  t.deepEqual(load.errors, [], 'no Check failed at the gRPC level');
  t.deepEqual(load.wrong, [], 'every Check got the decision of the last good policy and keys');

  // A good keys file with bob: picked up, and bob's key works.
  writeFileSync(`${keys}.tmp`, keysFile([alice, bob]), { mode: 0o600 });
  renameSync(`${keys}.tmp`, keys);
  // Bob's key now authenticates: refused by the endpoint's owner rule (403), no longer unknown (401).
  await waitFor(
    "bob's key to be known",
    async () => deniedStatus(await s.check(expected[2]!.request)) === 403,
    DEADLINE_MS,
    50,
  );
  t.truthy((await s.check(expected[0]!.request)).ok_response);

  const replay = await replayAlerts(scrapes, [
    { minute: 10, alert: 'McpAuthzPolicyReloadFailures', firing: [] },
    {
      minute: 21,
      alert: 'McpAuthzPolicyReloadFailures',
      firing: [{ severity: 'warning', namespace: 'mcp', pod: 'mcp-a' }],
    },
    { minute: 10, alert: 'McpAuthzKeysReloadFailures', firing: [] },
    {
      minute: 23,
      alert: 'McpAuthzKeysReloadFailures',
      firing: [{ severity: 'warning', namespace: 'mcp', pod: 'mcp-a' }],
    },
  ]);
  t.true(replay.ok, replay.out);
});
