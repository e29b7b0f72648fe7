// The benchmark's simulated fleet (`npm run bench -- --fleet`, bench/lib/fleet.ts) in a tiny
// configuration: two `serve` instances sharing a real redis-server and a real PostgreSQL. What
// it proves is that the harness observes what it reports — every revocation seen refused on
// every instance, quota and lockout counts exact across the instances, one instance killed
// without losing a shared count — never how fast: no figure it measures is asserted. The
// Redis command and database query timeouts are raised so that a slow answer on a loaded
// machine is not turned into a local count or a 503 (the benchmark runs with the product's
// defaults and reports what happens).
import test from 'ava';
import { runFleet } from '../bench/lib/fleet.js';

test('the fleet harness sees each revocation on every instance and counts quotas and lockouts exactly across them', async (t) => {
  const lines: string[] = [];
  const r = await runFleet({
    instances: 2,
    revocations: 3,
    rpsPerInstance: 20,
    inFlightPerInstance: 2,
    quota: 12,
    lockoutAttempts: 10,
    lossWindowSec: 1,
    deadlineMs: 120_000,
    redisCommandTimeoutMs: 30_000,
    postgresQueryTimeoutMs: 30_000,
    log: (m) => lines.push(m),
  });
  t.log(lines.join('\n'));

  t.is(r.revocation.rounds.length, 3);
  for (const round of r.revocation.rounds) {
    t.is(round.refusedAfterMs.length, 2, `${round.key}: one figure per instance`);
    for (const ms of round.refusedAfterMs) t.true(Number.isFinite(ms), `${round.key}: refused on every instance`);
    t.deepEqual(round.other, {}, `${round.key}: allowed, then refused as revoked, nothing else`);
  }
  t.true(r.revocation.observedEverywhere);

  t.is(r.quota.allowed, 12, JSON.stringify(r.quota));
  t.is(r.quota.allowed + r.quota.exceeded, r.quota.sent, 'every quota call answered allowed or quota_exceeded');
  t.deepEqual(r.quota.other, {});
  t.is(
    r.quota.perInstanceAllowed.reduce((a, b) => a + b, 0),
    12,
  );

  t.is(r.lockout.tried, 10, JSON.stringify(r.lockout));
  t.is(r.lockout.tried + r.lockout.lockedOut, r.lockout.sent);
  t.true(r.lockout.heldEverywhere);
  t.is(r.limiterLocalAnswers, 0, 'every count was Redis’s');

  const loss = r.loss!;
  t.is(loss.killed, 1);
  t.is(loss.survivorErrors, 0);
  t.deepEqual(loss.survivorUnexpected, {});
  t.true(loss.quota.allowed <= loss.quota.configured + loss.quota.refill, JSON.stringify(loss.quota));
  t.true(loss.quota.allowed + loss.quota.unanswered >= loss.quota.configured, JSON.stringify(loss.quota));
  t.true(r.passed);
});
