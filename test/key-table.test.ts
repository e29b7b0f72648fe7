// The column-held key table against the plain model it replaces (a Map from hash to the first
// entry with it): the same lookups, the same records, the same repeated ids and keys.
import { createHash } from 'node:crypto';
import test from 'ava';
import fc from 'fast-check';
import type { ApiKeyEntry } from '../src/config/schema.js';
import { KeyTableBuilder } from '../src/auth/key-table.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const entry: fc.Arbitrary<ApiKeyEntry> = fc
  .record(
    {
      id: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'),
      key: fc.constantFrom('k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8', 'k9'),
      upper: fc.boolean(),
      userId: fc.constantFrom('alice', 'bob'),
      role: fc.constantFrom('developer', 'tools:read_*'),
      permissions: fc.subarray(['tools:read_*', 'resources:file://docs/*', '*']),
      expiresAt: fc.constantFrom('2030-01-01T00:00:00.000Z', '2020-05-05T10:00:00.000Z'),
      disabled: fc.boolean(),
    },
    { requiredKeys: ['id', 'key', 'upper', 'permissions', 'disabled'] },
  )
  .map(({ key, upper, ...rest }) => ({ ...rest, sha256: upper ? sha(key).toUpperCase() : sha(key) }));

test('lookups, records and repeats match a Map of the first entry per key', (t) => {
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 40 }), (entries) => {
      const b = new KeyTableBuilder();
      for (const e of entries) b.add(e);
      const { table, repeats } = b.finish();

      const byHash = new Map<string, number>();
      const byId = new Map<string, number>();
      const expected: string[] = [];
      entries.forEach((e, i) => {
        const h = e.sha256.toLowerCase();
        if (byId.has(e.id)) expected.push(`${i} id ${byId.get(e.id)}`);
        else byId.set(e.id, i);
        if (byHash.has(h)) expected.push(`${i} hash ${byHash.get(h)}`);
        else byHash.set(h, i);
      });
      t.deepEqual(
        repeats.map((r) => `${r.at} ${r.kind} ${r.first}`),
        expected,
      );
      t.is(table.size, entries.length);

      for (const k of ['k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8', 'k9', 'unknown']) {
        const i = byHash.get(sha(k));
        const got = table.lookup(sha(k));
        t.is(table.lookup(sha(k).toUpperCase()), got, 'either case of hex finds the same record');
        if (i === undefined) {
          t.is(got, undefined);
          continue;
        }
        const e = entries[i]!;
        t.truthy(got);
        t.is(got!.id, e.id);
        t.is(got!.at, i);
        t.is(got!.disabled, e.disabled);
        t.is(got!.expiresAtMs, e.expiresAt !== undefined ? Date.parse(e.expiresAt) : Number.POSITIVE_INFINITY);
        const p = got!.principal;
        t.true(Object.isFrozen(p));
        t.is(p.id, e.id);
        t.is(p.keyId, e.id);
        t.is(p.method, 'api_key');
        t.deepEqual([...p.permissions], e.permissions);
        t.true(Object.isFrozen(p.permissions));
        t.deepEqual([...p.roles], e.role !== undefined ? [e.role] : []);
        t.is(p.role, e.role);
        t.is(p.userId, e.userId);
        t.is(p.keyType, e.userId !== undefined ? 'private' : 'public');
      }
    }),
    { numRuns: 300 },
  );
});

test('a lookup with something other than 64 hex digits finds nothing', (t) => {
  const b = new KeyTableBuilder();
  b.add({ id: 'a', sha256: sha('k'), permissions: [], disabled: false });
  const { table } = b.finish();
  t.truthy(table.lookup(sha('k')));
  for (const bad of ['', sha('k').slice(1), `${sha('k')}0`, `${sha('k').slice(0, 63)}g`, `${sha('k').slice(0, 63)} `])
    t.is(table.lookup(bad), undefined, JSON.stringify(bad));
});

test('a table grows past its first allocation and keeps every key', (t) => {
  const b = new KeyTableBuilder();
  const n = 5000;
  for (let i = 0; i < n; i++) b.add({ id: `key-${i}`, sha256: sha(`k${i}`), permissions: [], disabled: false });
  const { table, repeats } = b.finish();
  t.deepEqual(repeats, []);
  t.is(table.size, n);
  for (let i = 0; i < n; i += 97) t.is(table.lookup(sha(`k${i}`))?.id, `key-${i}`);
  t.is(table.lookup(sha('k-none')), undefined);
});

test('a key looked up again gets the cached record; once out of the cache, an equal one', (t) => {
  const b = new KeyTableBuilder();
  for (let i = 0; i < 20_000; i++) b.add({ id: `key-${i}`, sha256: sha(`k${i}`), permissions: [], disabled: false });
  const { table } = b.finish();
  const first = table.lookup(sha('k1'));
  t.is(table.lookup(sha('k1')), first, 'a cached record');
  for (let i = 0; i < 20_000; i++) table.lookup(sha(`k${i}`));
  const again = table.lookup(sha('k1'));
  t.deepEqual(again, first, 'rebuilt after it left the cache: equal');
});
