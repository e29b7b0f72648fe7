import test from 'ava';
import { LockoutTable, type LockoutMessage } from '../src/limits/lockouts.js';

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
