import test from 'ava';
import type { CheckContext } from '../src/decision/context.js';
import { validateConfig } from '../src/config/load.js';
import { EndpointRegistry } from '../src/endpoints/registry.js';
import { LocalFailureCounter } from '../src/limits/failure-counter.js';
import { LockoutTable, type LockoutMessage } from '../src/limits/lockouts.js';
import { RateLimits } from '../src/limits/rate-limits.js';
import { silentLogger } from '../src/log/logger.js';

test('a lockout lasts until its time, then the client is free and forgotten', (t) => {
  const table = new LockoutTable();
  table.lock('files|10.0.0.1', 11_000, false, 1_000);
  t.is(table.remainingMs('files|10.0.0.1', 1_000), 10_000);
  t.is(table.remainingMs('files|10.0.0.1', 10_999), 1);
  t.is(table.remainingMs('files|10.0.0.2', 1_000), 0, 'another client is not locked out');
  t.is(table.remainingMs('files|10.0.0.1', 11_000), 0);
  t.is(table.size, 0);
});

test('lockouts recorded here are published; lockouts heard from a sibling are not sent back', (t) => {
  const sent: LockoutMessage[] = [];
  const table = new LockoutTable((m) => sent.push(m));
  table.lock('files|10.0.0.1', 5_000, false, 0);
  table.lock('files|10.0.0.2', 5_000, true, 0);
  t.deepEqual(sent, [{ type: 'mcp-authz:lockout', key: 'files|10.0.0.1', until: 5_000 }]);
  t.is(table.remainingMs('files|10.0.0.2', 0), 5_000);
});

test('an earlier or already ended lockout never shortens or adds one', (t) => {
  const sent: LockoutMessage[] = [];
  const table = new LockoutTable((m) => sent.push(m));
  table.lock('k', 9_000, false, 0);
  table.lock('k', 4_000, false, 0);
  table.lock('old', 500, false, 1_000);
  t.is(table.remainingMs('k', 0), 9_000);
  t.is(table.remainingMs('old', 1_000), 0);
  t.is(sent.length, 1);
});

test('the snapshot holds the running lockouts, for a worker that starts later', (t) => {
  const table = new LockoutTable();
  table.lock('a', 2_000, true, 0);
  table.lock('b', 9_000, true, 0);
  t.deepEqual(
    table.snapshot(5_000).map((m) => m.key),
    ['b'],
  );
});

test('beyond its bound the table drops the oldest and says it is incomplete until their windows end', (t) => {
  const table = new LockoutTable(undefined, 10);
  for (let i = 0; i < 10; i++) table.lock(`k${i}`, 60_000 + i, true, 0);
  t.false(table.incomplete(0));
  table.lock('k10', 70_000, true, 0);
  t.true(table.size <= 10);
  t.is(table.remainingMs('k0', 0), 0, 'the oldest was dropped');
  t.is(table.remainingMs('k10', 0), 70_000);
  t.true(table.incomplete(0), 'a dropped lockout may still run: the store has to be asked');
  t.false(table.incomplete(60_010), 'every dropped window has ended');
});

test('a table that starts without the running lockouts is incomplete until they have all arrived', (t) => {
  const table = new LockoutTable(undefined, 100, true);
  t.true(table.incomplete(0), 'absence proves nothing yet: the store has to be asked');
  table.lock('k', 9_000, true, 0);
  t.true(table.incomplete(0));
  table.markSynced();
  t.false(table.incomplete(0));
  t.is(table.remainingMs('k', 0), 9_000);
});

test('a lock says whether it added anything', (t) => {
  const table = new LockoutTable();
  t.true(table.lock('k', 9_000, true, 0));
  t.false(table.lock('k', 9_000, true, 0), 'known until as late');
  t.false(table.lock('k', 5_000, true, 0), 'known until later');
  t.true(table.lock('k', 12_000, true, 0), 'a later end');
  t.false(table.lock('old', 500, true, 1_000), 'ended');
});

test('before the running lockouts have arrived, the check before authentication asks the counter', async (t) => {
  const config = validateConfig(
    {
      rateLimit: { failedAuth: { maxAttempts: 2, windowSeconds: 60 } },
      endpoints: [{ name: 'files', match: { pathPrefix: '/f' }, auth: { apiKey: true } }],
    },
    'test',
    '/',
    {},
  );
  const endpoints = new EndpointRegistry(config.endpoints);
  // The counter (the primary's ledger, in a worker) already has the client at its limit.
  const counter = new LocalFailureCounter(2, 60);
  counter.count('files|10.0.0.1');
  counter.count('files|10.0.0.1');
  const table = new LockoutTable(undefined, 100, true);
  const limits = new RateLimits(
    config,
    endpoints.all,
    { local: 'memory', logger: silentLogger() },
    table,
    {},
    () => counter,
  );
  const ctx = { endpoint: endpoints.all[0], clientAddress: '10.0.0.1' } as CheckContext;
  const refused = await limits.beforeAuth(ctx);
  t.is(refused?.code, 'too_many_requests', 'locked out, though this table has not heard of it');
  t.true(table.remainingMs('files|10.0.0.1') > 0, 'and now it has');
  t.is(await limits.beforeAuth({ ...ctx, clientAddress: '10.0.0.2' }), undefined, 'another client is tried');
});
