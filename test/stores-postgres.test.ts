// API keys from a real PostgreSQL (docs/stores.md): the shipped migrations on an empty
// database, two service instances told of a revocation by LISTEN/NOTIFY, the database
// stopped and restarted and its connections killed while Checks go on, fail-static for the
// keys seen and key_store_unavailable for the others, and SQL-shaped input kept as data.
// Every test works in a schema of its own; all share one server.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { checkConfig } from '../src/cli/check-config.js';
import { loadConfigFile } from '../src/config/load.js';
import { freePort } from './helpers/redis.js';
import type pg from 'pg';
import { keysStoreCommand, dbCommand } from '../src/cli/store-command.js';
import { generateApiKey, hashApiKey } from '../src/contracts/api-key.js';
import type { ServiceEvents } from '../src/metrics/hooks.js';
import { silentLogger } from '../src/log/logger.js';
import { migratePostgres } from '../src/stores/open.js';
import { PostgresKeyStore } from '../src/stores/postgres-keys.js';
import { admitAuthenticatedOn } from './helpers/auth-fixtures.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import {
  checkRequest,
  deniedBody,
  deniedStatus,
  headerValue,
  startTestService,
  type TestService,
} from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

let db: TestPostgres;
let admin: pg.Client;
let schemas = 0;

test.before(async () => {
  db = await startPostgres();
  admin = await db.connect();
});
test.after.always(async () => {
  await admin?.end().catch(() => undefined);
  await db?.stop();
});

const url = () => `postgres://postgres@127.0.0.1:${db.port}/postgres`;
const endpoints = [{ name: 'keys', match: { pathPrefix: '/mcp/keys' }, auth: { apiKey: true, oauth: false } }];
const withKey = (key: string) => checkRequest({ method: 'GET', path: '/mcp/keys', headers: { 'x-api-key': key } });

async function freshSchema(): Promise<string> {
  const schema = `t${process.pid}_${++schemas}`;
  await migratePostgres({ url: url(), schema, poolSize: 1, queryTimeoutMs: 5000, migrate: false });
  return schema;
}

async function insertKey(schema: string, id: string, o: { owner?: string; grants?: string[] } = {}): Promise<string> {
  const key = generateApiKey();
  await admin.query(`INSERT INTO ${schema}.api_keys (id, sha256, owner, grants) VALUES ($1, $2, $3, $4)`, [
    id,
    hashApiKey(key),
    o.owner ?? 'alice',
    o.grants ?? ['*'],
  ]);
  return key;
}

interface Observed {
  states: string[];
  answers: Record<string, number>;
}

async function startInstance(
  schema: string,
  cache: Record<string, number> = {},
): Promise<TestService & { seen: Observed }> {
  const seen: Observed = { states: [], answers: {} };
  const events: ServiceEvents = {
    keyStore: (s) => seen.states.push(s),
    keyStoreAnswer: (src) => (seen.answers[src] = (seen.answers[src] ?? 0) + 1),
  };
  const svc = await startTestService(
    {
      stores: { keys: 'postgres', postgres: { url: url(), schema, queryTimeoutMs: 3000 }, keyCache: cache },
      rateLimit: { failedAuth: { maxAttempts: 0 } },
      endpoints,
    },
    { runtime: { events } },
  );
  admitAuthenticatedOn(svc);
  // Start-up waits for the store only so long: a loaded machine may need longer.
  await waitFor('the key store to be up', () => seen.states.at(-1) === 'up', 60_000, 10);
  return Object.assign(svc, { seen });
}

const allowed = async (svc: TestService, key: string) => (await svc.check(withKey(key))).ok_response !== undefined;

test.serial(
  'the migrations create the tables in an empty database, once, and a second run changes nothing',
  async (t) => {
    const schema = `m${process.pid}`;
    const before = await admin.query(`SELECT 1 FROM information_schema.schemata WHERE schema_name = $1`, [schema]);
    t.is(before.rowCount, 0);
    const lines: string[] = [];
    // Two at once, as two replicas starting together with migrate: true: the advisory lock lets one apply them.
    const [a, b] = await Promise.all([
      migratePostgres({ url: url(), schema, poolSize: 1, queryTimeoutMs: 5000, migrate: false }),
      migratePostgres({ url: url(), schema, poolSize: 1, queryTimeoutMs: 5000, migrate: false }),
    ]);
    t.deepEqual([...a.applied, ...b.applied], ['0001_keys_and_endpoints']);
    t.is(a.current, 1);
    t.is(b.current, 1);
    t.is(await dbCommand(['migrate', '--database-url', url(), '--schema', schema], (s) => lines.push(s)), 0);
    t.regex(lines.join(''), /Up to date \(version 1\)/);
    const tables = await admin.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
      [schema],
    );
    t.deepEqual(
      tables.rows.map((r) => r.table_name),
      ['api_keys', 'endpoints', 'schema_migrations'],
    );
    const recorded = await admin.query(`SELECT version, name FROM ${schema}.schema_migrations`);
    t.deepEqual(recorded.rows, [{ version: 1, name: 'keys_and_endpoints' }]);
  },
);

test('a key in the database is accepted; a revocation is refused by both instances, told by NOTIFY', async (t) => {
  const schema = await freshSchema();
  const key = await insertKey(schema, 'shared-key');
  const [a, b] = await Promise.all([startInstance(schema), startInstance(schema)]);
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  for (const svc of [a, b]) {
    const res = await svc.check(withKey(key));
    t.is(headerValue(res.ok_response?.headers, 'x-mcp-key-id'), 'shared-key');
    t.truthy(await allowed(svc, key));
  }
  // The second Check on each came from the cache: no query per Check.
  t.true((a.seen.answers.cache ?? 0) >= 1 && (b.seen.answers.cache ?? 0) >= 1);
  const out: string[] = [];
  t.is(
    await keysStoreCommand(
      ['revoke', '--store', 'postgres', '--database-url', url(), '--schema', schema, '--id', 'shared-key'],
      (s) => out.push(s),
    ),
    0,
  );
  // Long TTLs: only the notification can have told them.
  for (const svc of [a, b]) {
    await waitFor(
      'the revoked key to be refused',
      async () => deniedStatus(await svc.check(withKey(key))) === 401,
      60_000,
      10,
    );
    t.is(deniedBody(await svc.check(withKey(key))).error, 'invalid_api_key');
  }
  const m = await (await a.http('/metrics')).text;
  t.regex(m, /mcp_authz_auth_failures_total\{[^}]*detail="key_revoked"[^}]*\} [1-9]/);
  t.regex(m, /mcp_authz_key_store_notifications_total [1-9]/);
});

test('a key created with keys create --store postgres is accepted without a restart, after being unknown', async (t) => {
  const schema = await freshSchema();
  const svc = await startInstance(schema, { negativeTtlSeconds: 3600 });
  t.teardown(() => svc.stop());
  const out: string[] = [];
  t.is(
    await keysStoreCommand(
      [
        'create',
        '--store',
        'postgres',
        '--database-url',
        url(),
        '--schema',
        schema,
        '--name',
        'ci bot',
        '--id',
        'ci-bot',
        '--user',
        'bob',
        '--json',
      ],
      (s) => out.push(s),
    ),
    0,
  );
  const { key, entry } = JSON.parse(out.join('')) as { key: string; entry: { sha256: string } };
  t.is(entry.sha256, hashApiKey(key));
  const stored = await admin.query(`SELECT id, owner, sha256 FROM ${schema}.api_keys`);
  t.deepEqual(stored.rows, [{ id: 'ci-bot', owner: 'bob', sha256: hashApiKey(key) }]);
  t.false(JSON.stringify(stored.rows).includes(key), 'only the hash is stored');
  t.truthy(await allowed(svc, key));
  // An unknown key is cached as unknown (an hour here); its insertion is announced and drops that.
  const later = generateApiKey();
  t.is(deniedStatus(await svc.check(withKey(later))), 401);
  await admin.query(`INSERT INTO ${schema}.api_keys (id, sha256) VALUES ('later', $1)`, [hashApiKey(later)]);
  await waitFor('the new key to be accepted', () => allowed(svc, later), 60_000, 10);
  t.pass();
});

test.serial(
  'database down: seen keys keep working (fail-static), unknown keys get key_store_unavailable, a key revoked before stays refused; back up: new keys work',
  async (t) => {
    const schema = await freshSchema();
    const seenKey = await insertKey(schema, 'seen');
    const revokedKey = await insertKey(schema, 'revoked-before');
    const neverSeen = await insertKey(schema, 'never-seen');
    const svc = await startInstance(schema);
    t.teardown(() => svc.stop());
    t.truthy(await allowed(svc, seenKey));
    t.truthy(await allowed(svc, revokedKey));
    await admin.query(`UPDATE ${schema}.api_keys SET revoked_at = now() WHERE id = 'revoked-before'`);
    await waitFor(
      'the revocation to arrive',
      async () => deniedStatus(await svc.check(withKey(revokedKey))) === 401,
      60_000,
      10,
    );

    await admin.end();
    await db.halt();
    try {
      await waitFor('the store to see the database gone', () => svc.seen.states.at(-1) === 'down', 60_000, 10);
      for (let i = 0; i < 5; i++) {
        t.truthy(await allowed(svc, seenKey), 'a key seen before is answered from the cache');
        const revoked = await svc.check(withKey(revokedKey));
        t.is(revoked.ok_response, undefined, 'a key revoked before the outage is never allowed');
        const unknown = await svc.check(withKey(neverSeen));
        t.is(deniedStatus(unknown), 503);
        t.is(deniedBody(unknown).error, 'key_store_unavailable');
      }
      const m = await (await svc.http('/metrics')).text;
      t.regex(m, /mcp_authz_key_store_up\{store="postgres"\} 0/);
      t.regex(m, /mcp_authz_key_store_answers_total\{source="unavailable"\} [1-9]/);
      t.regex(m, /mcp_authz_key_store_answers_total\{source="stale_cache"\} [1-9]/);
      // Not counted as failed authentications: a caller is not locked out for the database's outage.
      t.notRegex(m, /mcp_authz_lockouts_total\{[^}]*\} [1-9]/);
    } finally {
      await db.restart();
      admin = await db.connect();
    }
    await waitFor('the store to reconnect', () => svc.seen.states.at(-1) === 'up', 60_000, 10);
    t.truthy(await allowed(svc, neverSeen));
    t.is((await svc.check(withKey(revokedKey))).ok_response, undefined);
    const fresh = await insertKey(schema, 'after-restart');
    await waitFor('a key made after the restart to be accepted', () => allowed(svc, fresh), 60_000, 10);
    t.pass();
  },
);

test.serial('maxStaleSeconds: 0 refuses even the keys seen before once the database is gone', async (t) => {
  const schema = await freshSchema();
  const key = await insertKey(schema, 'seen');
  const svc = await startInstance(schema, { maxStaleSeconds: 0 });
  t.teardown(() => svc.stop());
  t.truthy(await allowed(svc, key));
  await admin.end();
  await db.halt();
  try {
    await waitFor('the store to see the database gone', () => svc.seen.states.at(-1) === 'down', 60_000, 10);
    const res = await svc.check(withKey(key));
    t.is(deniedBody(res).error, 'key_store_unavailable');
  } finally {
    await db.restart();
    admin = await db.connect();
  }
  await waitFor('the key to work again', () => allowed(svc, key), 60_000, 10);
});

test.serial(
  'connections killed (pg_terminate_backend) under load: no refusal of a good key, a resync, and revocations still arrive',
  async (t) => {
    const schema = await freshSchema();
    const good = await insertKey(schema, 'good');
    const victim = await insertKey(schema, 'victim');
    const svc = await startInstance(schema);
    t.teardown(() => svc.stop());
    t.truthy(await allowed(svc, good));
    t.truthy(await allowed(svc, victim));
    const before = svc.seen.states.filter((s) => s === 'up').length;
    let stop = false;
    const results = { allowed: 0, refused: [] as string[] };
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!stop) {
          const res = await svc.check(withKey(good));
          if (res.ok_response) results.allowed++;
          else results.refused.push(String(deniedBody(res).error));
        }
      }),
    );
    const killed = await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'mcp-authz%'`,
    );
    t.true(killed.rowCount! >= 1);
    // The victim is revoked right after: its notification may reach the old connection (gone) or the new one; the resync catches the first case.
    await admin.query(`UPDATE ${schema}.api_keys SET revoked_at = now() WHERE id = 'victim'`);
    await waitFor(
      'the channel to come back',
      () => svc.seen.states.filter((s) => s === 'up').length > before,
      60_000,
      10,
    );
    await waitFor(
      'the victim to be refused',
      async () => deniedStatus(await svc.check(withKey(victim))) === 401,
      60_000,
      10,
    );
    stop = true;
    await load;
    t.deepEqual(results.refused, [], 'the good key is never refused');
    t.true(results.allowed > 0);
    t.regex(await (await svc.http('/metrics')).text, /mcp_authz_key_store_resyncs_total [2-9]/);
  },
);

test('SQL-shaped key values, names and ids are data', async (t) => {
  const schema = await freshSchema();
  const good = await insertKey(schema, 'good');
  const svc = await startInstance(schema);
  t.teardown(() => svc.stop());
  for (const shaped of ["' OR '1'='1", "x'; DROP TABLE api_keys; --", '$1', "mcp_' UNION SELECT * FROM api_keys --"]) {
    const res = await svc.check(withKey(shaped));
    t.is(deniedStatus(res), 401, shaped);
  }
  const out: string[] = [];
  const name = "Robert'); DROP TABLE api_keys; --";
  t.is(
    await keysStoreCommand(
      [
        'create',
        '--store',
        'postgres',
        '--database-url',
        url(),
        '--schema',
        schema,
        '--name',
        name,
        '--id',
        'bobby',
        '--json',
      ],
      (s) => out.push(s),
    ),
    0,
  );
  const stored = await admin.query(`SELECT name FROM ${schema}.api_keys WHERE id = 'bobby'`);
  t.is(stored.rows[0].name, name);
  await t.throwsAsync(
    keysStoreCommand(
      ['revoke', '--store', 'postgres', '--database-url', url(), '--schema', schema, '--id', "good' OR '1'='1"],
      () => undefined,
    ),
    { message: /no key with id/ },
  );
  // The schema name is an identifier, checked before any SQL is built.
  await t.throwsAsync(
    keysStoreCommand(
      ['revoke', '--store', 'postgres', '--database-url', url(), '--schema', 'x; DROP SCHEMA public', '--id', 'good'],
      () => undefined,
    ),
    { message: /schema/ },
  );
  t.truthy(await allowed(svc, good));
  const count = await admin.query(
    `SELECT count(*)::int AS n, count(revoked_at)::int AS revoked FROM ${schema}.api_keys`,
  );
  t.deepEqual(count.rows[0], { n: 2, revoked: 0 });
});

test("endpoints from PostgreSQL join the config file's at start, are chosen like them, and a bad row stops start-up naming it", async (t) => {
  const schema = await freshSchema();
  const key = await insertKey(schema, 'k');
  await admin.query(`INSERT INTO ${schema}.endpoints (name, owner, definition) VALUES ($1, $2, $3), ($4, NULL, $5)`, [
    'tenant-7',
    'alice',
    { match: { pathPrefix: '/t/7/mcp' }, auth: { apiKey: true, oauth: false } },
    'open-docs',
    { match: { host: 'docs.example.com' }, auth: { apiKey: false, oauth: false } },
  ]);
  const svc = await startTestService({
    stores: { keys: 'postgres', endpoints: 'postgres', postgres: { url: url(), schema } },
    endpoints,
  });
  t.teardown(() => svc.stop());
  admitAuthenticatedOn(svc);
  t.deepEqual(
    svc.runtime.endpoints.all.map((e) => [e.name, e.owner]),
    [
      ['keys', undefined],
      ['open-docs', undefined],
      ['tenant-7', 'alice'],
    ],
  );
  const res = await svc.check(checkRequest({ method: 'GET', path: '/t/7/mcp/sse', headers: { 'x-api-key': key } }));
  t.truthy(res.ok_response);
  t.is(deniedStatus(await svc.check(checkRequest({ method: 'GET', path: '/t/7/mcp' }))), 401);
  t.truthy((await svc.check(checkRequest({ method: 'GET', path: '/anything', host: 'docs.example.com' }))).ok_response);

  // A row the config schema refuses (an SQL-shaped path prefix with "..") stops start-up, named.
  await admin.query(`INSERT INTO ${schema}.endpoints (name, definition) VALUES ('bad-row', $1)`, [
    { match: { pathPrefix: "/x/../'; DROP TABLE endpoints; --" } },
  ]);
  await t.throwsAsync(
    startTestService({
      stores: { keys: 'postgres', endpoints: 'postgres', postgres: { url: url(), schema } },
      endpoints,
    }),
    { message: /endpoints row "bad-row"\.match\.pathPrefix/ },
  );
  t.is((await admin.query(`SELECT count(*)::int AS n FROM ${schema}.endpoints`)).rows[0].n, 3);
});

test('serve --check-config says whether the key store answers; a keys file beside stores.keys: postgres is refused', async (t) => {
  const schema = await freshSchema();
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-pg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, cfg: Record<string, unknown>) => {
    writeFileSync(join(dir, name), stringify(cfg));
    return join(dir, name);
  };
  const good = await checkConfig(
    loadConfigFile(
      write('good.yaml', { stores: { keys: 'postgres', postgres: { url: url(), schema } }, endpoints }),
      {},
    ),
  );
  t.true(good.ok, good.lines.join('\n'));
  t.true(good.lines.some((l) => /API keys: from PostgreSQL .* connected/.test(l)));
  const closedPort = await freePort();
  const bad = await checkConfig(
    loadConfigFile(
      write('bad.yaml', {
        stores: {
          keys: 'postgres',
          postgres: { url: `postgres://postgres@127.0.0.1:${closedPort}/postgres`, schema, queryTimeoutMs: 200 },
        },
        endpoints,
      }),
      {},
    ),
  );
  t.false(bad.ok);
  t.deepEqual(
    bad.report.problems.map((p) => p.part),
    ['apiKeys'],
  );
  t.throws(
    () =>
      loadConfigFile(
        write('both.yaml', { apiKeys: { file: 'keys.yaml' }, stores: { keys: 'postgres', postgres: {} }, endpoints }),
        {},
      ),
    { message: /apiKeys\.file: stores\.keys is "postgres"/ },
  );
});

test.serial(
  'fail-static is bounded: a seen key is answered until maxStaleSeconds after the connection was lost, then refused (a fake clock)',
  async (t) => {
    const schema = await freshSchema();
    const key = await insertKey(schema, 'seen');
    let clock = 1_000_000;
    const states: string[] = [];
    const store = new PostgresKeyStore({
      postgres: { url: url(), schema, poolSize: 1, queryTimeoutMs: 3000, migrate: false },
      cache: { maxEntries: 10, ttlSeconds: 3600, negativeTtlSeconds: 3600, maxStaleSeconds: 60 },
      logger: silentLogger(),
      events: { keyStore: (s) => states.push(s) },
      now: () => clock,
    });
    t.teardown(() => store.close());
    await store.start();
    const hash = hashApiKey(key);
    const first = await store.lookup(hash);
    t.is(typeof first === 'object' && first.id, 'seen');
    await admin.end();
    await db.halt();
    try {
      await waitFor('the store to see the database gone', () => states.at(-1) === 'down', 60_000, 10);
      clock += 59_000;
      const within = await store.lookup(hash);
      t.is(typeof within === 'object' && within.id, 'seen', 'within maxStaleSeconds: the cached answer');
      clock += 2_000;
      t.is(await store.lookup(hash), 'unavailable', 'past maxStaleSeconds: refused');
      t.is(await store.lookup(hashApiKey(generateApiKey())), 'unavailable', 'never seen: refused');
    } finally {
      await db.restart();
      admin = await db.connect();
    }
    await waitFor('the store to reconnect', () => states.at(-1) === 'up', 60_000, 10);
    const back = await store.lookup(hash);
    t.is(typeof back === 'object' && back.id, 'seen');
  },
);

test('an answer read across a notification for its key is returned but not cached', async (t) => {
  const schema = await freshSchema();
  const key = await insertKey(schema, 'racy');
  const hash = hashApiKey(key);
  const sources: string[] = [];
  let notifications = 0;
  const store = new PostgresKeyStore({
    postgres: { url: url(), schema, poolSize: 1, queryTimeoutMs: 30_000, migrate: false },
    cache: { maxEntries: 10, ttlSeconds: 3600, negativeTtlSeconds: 3600, maxStaleSeconds: 60 },
    logger: silentLogger(),
    events: { keyStoreAnswer: (s) => sources.push(s), keyStoreNotification: () => notifications++ },
  });
  t.teardown(() => store.close());
  await store.start();
  // The lookup's query waits behind a lock; a notification for its hash arrives meanwhile.
  const locker = await db.connect();
  t.teardown(() => locker.end().catch(() => undefined));
  await locker.query('BEGIN');
  await locker.query(`LOCK TABLE ${schema}.api_keys IN ACCESS EXCLUSIVE MODE`);
  const pending = store.lookup(hash);
  t.true(pending instanceof Promise);
  await waitFor(
    'the lookup to wait for the lock',
    async () =>
      (
        await admin.query(
          `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = 'mcp-authz keys'`,
        )
      ).rowCount! > 0,
    60_000,
    10,
  );
  await admin.query('SELECT pg_notify($1, $2)', ['mcp_authz_keys', hash]);
  await waitFor('the notification to arrive', () => notifications > 0, 60_000, 0);
  await locker.query('COMMIT');
  const answer = await pending;
  t.is(typeof answer === 'object' && answer.id, 'racy', 'the lookup is answered');
  // Not cached: the next lookup asks the database again; the one after is cached.
  t.true(store.lookup(hash) instanceof Promise);
  await store.lookup(hash);
  t.false(store.lookup(hash) instanceof Promise);
  t.deepEqual(sources, ['database', 'database', 'cache']);
});
