// Endpoints from PostgreSQL applied live (docs/stores.md "Endpoints"): a real PostgreSQL of
// the test's own, real services over real gRPC with the shipped policy, and `serve
// --workers 2` as a real subprocess. Every wait polls a condition with a generous deadline.
import test from 'ava';
import type pg from 'pg';
import { generateApiKey, hashApiKey } from '../src/contracts/api-key.js';
import { createLogger } from '../src/log/logger.js';
import type { ServiceEvents } from '../src/metrics/hooks.js';
import { migratePostgres } from '../src/stores/open.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { checkRequest, deniedBody, deniedStatus, startTestService, type TestService } from './helpers/service.js';
import { startServe } from './helpers/subprocess-service.js';
import { keyPrincipal, regoDir } from './helpers/policy.js';
import type { AuthResult, Authenticator } from '../src/decision/phases.js';
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

const DEADLINE = 60_000;
const url = () => `postgres://postgres@127.0.0.1:${db.port}/postgres`;
// The config file's own endpoint: the rows join it.
const fileEndpoints = [{ name: 'file', match: { pathPrefix: '/mcp/file' }, auth: { apiKey: true, oauth: false } }];
const apiKeyOnly = { apiKey: true, oauth: false };

async function freshSchema(): Promise<{ schema: string; alice: string; bob: string }> {
  const schema = `le${process.pid}_${++schemas}`;
  await migratePostgres({ url: url(), schema, poolSize: 1, queryTimeoutMs: 5000, migrate: false });
  const key = async (id: string, owner: string) => {
    const k = generateApiKey();
    await admin.query(`INSERT INTO ${schema}.api_keys (id, sha256, owner, grants) VALUES ($1, $2, $3, $4)`, [
      id,
      hashApiKey(k),
      owner,
      ['*'],
    ]);
    return k;
  };
  return { schema, alice: await key('alice-key', 'alice'), bob: await key('bob-key', 'bob') };
}

const configFor = (schema: string) => ({
  stores: { keys: 'postgres', endpoints: 'postgres', postgres: { url: url(), schema, queryTimeoutMs: 3000 } },
  rateLimit: { failedAuth: { maxAttempts: 0 } },
  endpoints: fileEndpoints,
});

const call = (path: string, key: string) => checkRequest({ method: 'GET', path, headers: { 'x-api-key': key } });

/** What a Check answers, in a form two answers can be compared by. */
async function answer(svc: { check: TestService['check'] }, path: string, key: string): Promise<string> {
  const res = await svc.check(call(path, key));
  if (res.ok_response) return 'allow';
  return `${deniedStatus(res)} ${deniedBody(res).error}`;
}

interface Instance extends TestService {
  updates: string[];
  states: string[];
  lines: string[];
}

async function instance(
  schema: string,
  more: { config?: Record<string, unknown>; authenticator?: Authenticator } = {},
): Promise<Instance> {
  const updates: string[] = [];
  const states: string[] = [];
  const lines: string[] = [];
  const events: ServiceEvents = {
    endpointStoreUpdate: (r) => updates.push(r),
    endpointStore: (s) => states.push(s),
  };
  const logger = createLogger('info', {
    sink: { write: (l: string) => lines.push(l), writeDecision: () => undefined },
  });
  const svc = await startTestService(
    { ...configFor(schema), ...more.config },
    {
      runtime: { events, ...(more.authenticator ? { overrides: { authenticator: more.authenticator } } : {}) },
      logger,
    },
  );
  await waitFor('the endpoint store to listen', () => states.at(-1) === 'up', DEADLINE, 10);
  return Object.assign(svc, { updates, states, lines });
}

async function insertEndpoint(schema: string, name: string, owner: string | null, definition: object): Promise<void> {
  await admin.query(`INSERT INTO ${schema}.endpoints (name, owner, definition) VALUES ($1, $2, $3)`, [
    name,
    owner,
    definition,
  ]);
}

test.serial(
  'two instances apply an inserted endpoint, a new owner and a deletion, each told by NOTIFY; a deleted endpoint answers as no endpoint does',
  async (t) => {
    const { schema, alice, bob } = await freshSchema();
    const a = await instance(schema);
    t.teardown(() => a.stop());
    const b = await instance(schema);
    t.teardown(() => b.stop());
    const both = [a, b];
    const nowhere = await answer(a, '/nowhere', alice);
    t.is(nowhere, '404 not_found');
    for (const svc of both) t.is(await answer(svc, '/t/live/mcp', alice), nowhere, 'not there before the insert');

    await insertEndpoint(schema, 'live', null, { match: { pathPrefix: '/t/live/mcp' }, auth: apiKeyOnly });
    for (const [i, svc] of both.entries())
      await waitFor(
        `instance ${i} to allow the new public endpoint`,
        async () => (await answer(svc, '/t/live/mcp', alice)) === 'allow',
        DEADLINE,
        10,
      );
    for (const svc of both) t.is(await answer(svc, '/t/live/mcp', bob), 'allow');

    // Private: bob's now; alice is refused as on any endpoint she does not own.
    await admin.query(`UPDATE ${schema}.endpoints SET owner = 'bob' WHERE name = 'live'`);
    for (const [i, svc] of both.entries())
      await waitFor(
        `instance ${i} to make the endpoint bob's`,
        async () => (await answer(svc, '/t/live/mcp', alice)) === '403 access_denied',
        DEADLINE,
        10,
      );
    for (const svc of both) t.is(await answer(svc, '/t/live/mcp', bob), 'allow');
    // The policy's data.endpoints moved with the registry.
    for (const svc of both) {
      const rt = svc.runtime.live!.current;
      t.is(rt.endpoints.all.find((e) => e.name === 'live')?.owner, 'bob');
    }

    // A new owner.
    await admin.query(`UPDATE ${schema}.endpoints SET owner = 'alice' WHERE name = 'live'`);
    for (const [i, svc] of both.entries())
      await waitFor(
        `instance ${i} to make the endpoint alice's`,
        async () => (await answer(svc, '/t/live/mcp', alice)) === 'allow',
        DEADLINE,
        10,
      );
    for (const svc of both) t.is(await answer(svc, '/t/live/mcp', bob), '403 access_denied');

    await admin.query(`DELETE FROM ${schema}.endpoints WHERE name = 'live'`);
    for (const [i, svc] of both.entries())
      await waitFor(
        `instance ${i} to drop the endpoint`,
        async () => (await answer(svc, '/t/live/mcp', alice)) === nowhere,
        DEADLINE,
        10,
      );
    // The config file's endpoint was never touched.
    for (const svc of both) t.is(await answer(svc, '/mcp/file', bob), 'allow');
    for (const svc of both) t.false(svc.updates.includes('rejected'));
    const m = (await a.http('/metrics')).text;
    t.regex(m, /mcp_authz_endpoint_store_updates_total\{result="applied"\} [3-9]/);
    t.regex(m, /mcp_authz_endpoint_store_up\{store="postgres"\} 1/);
  },
);

test.serial(
  'a row the config rules refuse is not applied: the previous set keeps serving, the error names the row, the refusal is counted',
  async (t) => {
    const { schema, alice } = await freshSchema();
    await insertEndpoint(schema, 'kept', null, { match: { pathPrefix: '/t/kept' }, auth: apiKeyOnly });
    const svc = await instance(schema);
    t.teardown(() => svc.stop());
    t.is(await answer(svc, '/t/kept', alice), 'allow');
    const nowhere = await answer(svc, '/nowhere', alice);

    // One transaction: a good new row, the kept one made private, and a bad row. None of it applies.
    await admin.query('BEGIN');
    await insertEndpoint(schema, 'good-new', null, { match: { pathPrefix: '/t/good' }, auth: apiKeyOnly });
    await admin.query(`UPDATE ${schema}.endpoints SET owner = 'bob' WHERE name = 'kept'`);
    await insertEndpoint(schema, 'bad-row', null, { match: { pathPrefix: '/t/../escape' }, auth: apiKeyOnly });
    await admin.query('COMMIT');
    await waitFor('the change to be refused', () => svc.updates.includes('rejected'), DEADLINE, 10);
    t.false(svc.updates.includes('applied'));
    t.is(await answer(svc, '/t/kept', alice), 'allow', 'the previous set keeps serving');
    t.is(await answer(svc, '/t/good', alice), nowhere, 'nothing of the refused change is in force');
    const logged = svc.lines.find((l) => l.includes('endpoint store change refused'));
    t.truthy(logged);
    t.regex(logged!, /endpoints row \\"bad-row\\"\.match\.pathPrefix/);
    t.is(JSON.parse(logged!).level, 50, 'an error');
    t.regex((await svc.http('/metrics')).text, /mcp_authz_endpoint_store_updates_total\{result="rejected"\} 1/);

    // Fixed: the whole change applies.
    await admin.query(`DELETE FROM ${schema}.endpoints WHERE name = 'bad-row'`);
    await waitFor(
      'the fixed set to apply',
      async () => (await answer(svc, '/t/good', alice)) === 'allow',
      DEADLINE,
      10,
    );
    t.is(await answer(svc, '/t/kept', alice), '403 access_denied');
  },
);

test.serial('a row that adds an upstream credential is refused, naming the row: that needs a restart', async (t) => {
  const { schema, alice } = await freshSchema();
  const svc = await instance(schema);
  t.teardown(() => svc.stop());
  await insertEndpoint(schema, 'with-upstream', null, {
    match: { pathPrefix: '/t/up' },
    auth: apiKeyOnly,
    upstream: { mode: 'static', valueFile: 'upstream-secret' },
  });
  await waitFor('the change to be refused', () => svc.updates.includes('rejected'), DEADLINE, 10);
  t.false(svc.updates.includes('applied'));
  t.is(await answer(svc, '/t/up', alice), '404 not_found');
  t.truthy(svc.lines.find((l) => l.includes('endpoints row \\"with-upstream\\".upstream') && l.includes('restart')));
});

test.serial(
  'the listening connection killed: the last set keeps serving, and the resync on reconnect applies a change made without a notification',
  async (t) => {
    const { schema, alice } = await freshSchema();
    await insertEndpoint(schema, 'moving', null, { match: { pathPrefix: '/t/old' }, auth: apiKeyOnly });
    const svc = await instance(schema);
    t.teardown(() => svc.stop());
    t.is(await answer(svc, '/t/old', alice), 'allow');
    const nowhere = await answer(svc, '/nowhere', alice);

    // Triggers do not fire for a session in replica mode: this change sends no notification.
    await admin.query(`SET session_replication_role = replica`);
    await admin.query(`UPDATE ${schema}.endpoints SET definition = $1 WHERE name = 'moving'`, [
      { match: { pathPrefix: '/t/new' }, auth: apiKeyOnly },
    ]);
    await admin.query(`SET session_replication_role = DEFAULT`);
    t.is(await answer(svc, '/t/new', alice), nowhere, 'not notified, so not applied yet');
    t.is(await answer(svc, '/t/old', alice), 'allow');

    const ups = svc.states.filter((s) => s === 'up').length;
    const killed = await admin.query(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'mcp-authz endpoints listener'`,
    );
    t.is(killed.rows.length, 1);
    await waitFor('the channel to come back', () => svc.states.filter((s) => s === 'up').length > ups, DEADLINE, 10);
    t.true(svc.states.includes('down'));
    await waitFor(
      'the resync to apply the change',
      async () => (await answer(svc, '/t/new', alice)) === 'allow',
      DEADLINE,
      10,
    );
    t.is(await answer(svc, '/t/old', alice), nowhere);
  },
);

test.serial(
  "a Check in flight across a change finishes on the endpoint set it started with, and the policy sees that set's data.endpoints",
  async (t) => {
    const { schema } = await freshSchema();
    await insertEndpoint(schema, 'flip', 'alice', { match: { pathPrefix: '/t/flip' }, auth: apiKeyOnly });
    // Allowed only while the policy's data.endpoints agrees with the endpoint the request was matched to.
    const policy = regoDir({
      'authz.rego': [
        'package mcp.authz',
        'import rego.v1',
        'default decision := {"allow": false, "status": 403}',
        'decision := {"allow": true} if data.endpoints[input.endpoint.name].owner == input.endpoint.owner',
      ].join('\n'),
    });
    // Authentication waits for the test to let it go: the change lands while the Check is held there.
    const seen: (string | undefined)[] = [];
    let release: () => void = () => undefined;
    let hold = true;
    const authenticator: Authenticator = {
      authenticate: async (_request, endpoint): Promise<AuthResult> => {
        seen.push(endpoint?.owner);
        if (hold) await new Promise<void>((resolve) => (release = resolve));
        return {
          ok: true,
          principal: keyPrincipal('k', 'carol', ['*']),
          credentialHeaders: [],
          credentialQueryParams: [],
        };
      },
    };
    const svc = await instance(schema, { config: { policy: { rego: policy } }, authenticator });
    t.teardown(() => svc.stop());

    const inFlight = svc.check(call('/t/flip', 'any'));
    await waitFor('the Check to reach authentication', () => seen.length === 1, DEADLINE, 0);
    await admin.query(`UPDATE ${schema}.endpoints SET owner = 'bob' WHERE name = 'flip'`);
    await waitFor('the change to apply', () => svc.updates.includes('applied'), DEADLINE, 10);
    hold = false;
    release();
    const first = await inFlight;
    t.truthy(
      first.ok_response,
      `decided on the old set with the old data.endpoints: ${JSON.stringify(first.denied_response)}`,
    );
    t.truthy(
      (await svc.check(call('/t/flip', 'any'))).ok_response,
      'the next on the new set with the new data.endpoints',
    );
    t.deepEqual(seen, ['alice', 'bob']);
  },
);

test.serial('per-client rate counts outlive a change of the endpoint set', async (t) => {
  const { schema, alice } = await freshSchema();
  // One token refills every 1,000 s: nothing refills while the test runs.
  const svc = await instance(schema, {
    config: {
      endpoints: [{ ...fileEndpoints[0], rateLimit: { rps: 0.001, burst: 2 } }],
    },
  });
  t.teardown(() => svc.stop());
  t.is(await answer(svc, '/mcp/file', alice), 'allow');
  t.is(await answer(svc, '/mcp/file', alice), 'allow');
  t.is(await answer(svc, '/mcp/file', alice), '429 rate_limited');
  await insertEndpoint(schema, 'other', null, { match: { pathPrefix: '/t/other' }, auth: apiKeyOnly });
  await waitFor('the change to apply', () => svc.updates.includes('applied'), DEADLINE, 10);
  t.is(await answer(svc, '/t/other', alice), 'allow');
  t.is(await answer(svc, '/mcp/file', alice), '429 rate_limited', 'the count so far still holds');
});

test.serial(
  'serve --workers 2: a new endpoint is applied in both workers, and its discovery document on the primary',
  async (t) => {
    const { schema, alice } = await freshSchema();
    const oauth = { issuers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/certs' }] };
    const svc = await startServe({ ...configFor(schema), oauth }, ['--workers', '2'], { clients: 8 });
    t.teardown(() => svc.stop());
    const listening = () =>
      new Set(
        svc
          .logs()
          .split('\n')
          .filter((l) => l.includes('"endpoint store listening for changes"'))
          .map((l) => JSON.parse(l).worker)
          .filter((w) => w !== undefined),
      );
    await waitFor('both workers to listen', () => listening().size === 2, 180_000, 50);

    const document = '/.well-known/oauth-protected-resource/t/spread';
    t.is((await svc.http(document)).status, 404);
    await insertEndpoint(schema, 'spread', null, {
      match: { pathPrefix: '/t/spread' },
      auth: { apiKey: true, oauth: true },
      resource: 'https://mcp.example.com/t/spread',
      scopes: ['tools:search'],
    });
    const applied = () =>
      new Set(
        svc
          .logs()
          .split('\n')
          .filter((l) => l.includes('"endpoint store change applied"'))
          .map((l) => JSON.parse(l).worker ?? 'primary'),
      );
    await waitFor('both workers and the primary to apply the change', () => applied().size === 3, DEADLINE, 50).catch(
      (err: Error) => {
        throw new Error(
          `${err.message}:\n${svc
            .logs()
            .split('\n')
            .filter((l) => l.includes('endpoint store'))
            .join('\n')}`,
        );
      },
    );
    t.deepEqual([...applied()].sort(), [...listening(), 'primary'].sort());
    const served = await svc.http(document);
    t.is(served.status, 200);
    t.deepEqual(JSON.parse(served.text).scopes_supported, ['tools:search']);
    // Eight connections, spread over both workers: every one is allowed.
    const answers = await Promise.all(
      Array.from(
        { length: 8 },
        async (_, i) => (await svc.check(call('/t/spread', alice), i)).ok_response !== undefined,
      ),
    );
    t.deepEqual(answers, Array(8).fill(true));
  },
);
