// The argument-constraint example (examples/arguments, docs/policies.md) through
// `mcp-authz check`: the three classic cases, which constraint denied, and never the value.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { explain } from '../src/cli/check-command.js';
import { loadConfigFile } from '../src/config/load.js';
import { ROOT, runCli } from './helpers/cli.js';

const CONFIG = join(ROOT, 'examples', 'arguments', 'config.yaml');
const AGENT = 'mcp_xUW4CC837mhtFxthPzIWD79bgYmjWpggg112keZIdDQ4OmHSh';
const ADMIN = 'mcp_PnS6ZdO2fBchmWJozXB2KGOJutPGPCC4JxBJJbZK6PO0pCZVm';

const body = (name: string, args: Record<string, unknown>) => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } });

async function check(name: string, args: Record<string, unknown>, key = AGENT): Promise<Record<string, any>> {
  return explain(loadConfigFile(CONFIG, {}), { method: 'POST', path: '/mcp/tools', host: 'mcp.example.com', headers: [['x-api-key', key], ['content-type', 'application/json']], body: body(name, args) });
}

const denials: [string, string, Record<string, unknown>, string, string][] = [
  ['a path out of /docs', 'read_file', { path: '/docs/../etc/passwd' }, 'path', 'path'],
  ['an encoded traversal', 'read_file', { path: '/docs/%2e%2e/etc/shadow' }, 'path', 'path'],
  ['one of several paths outside /docs', 'read_multiple_files', { paths: ['/docs/a.md', '/home/alice/.ssh/id_ed25519'] }, 'paths', 'items.path'],
  ['an allowed host as user information', 'http_get', { url: 'https://api.example.com@attacker.example/collect' }, 'url', 'url'],
  ['a decimal IP literal', 'http_get', { url: 'https://2852039166/latest/meta-data/' }, 'url', 'url'],
  ['a host that is not listed', 'http_get', { url: 'https://attacker.example/?to=api.example.com' }, 'url', 'url'],
  ['a method outside the enum', 'http_get', { url: 'https://api.example.com/', method: 'DELETE' }, 'method', 'enum'],
  ['a second statement', 'sql', { query: 'SELECT 1; DROP TABLE accounts' }, 'query', 'sql'],
  ['a write keyword', 'sql', { query: 'SELECT * INTO stolen FROM accounts' }, 'query', 'sql'],
  ['a limit out of range', 'sql', { query: 'SELECT 1', limit: 100000 }, 'limit', 'maximum'],
  ['an argument the rule does not list', 'sql', { query: 'SELECT 1', database: 'admin' }, 'database', 'otherArguments'],
];

for (const [what, tool, args, argument, constraint] of denials) {
  test(`check shows ${constraint} denying ${what}, naming ${tool} and ${argument} but not the value`, async (t) => {
    const out = await check(tool, args);
    t.is(out.decision, 'deny');
    t.is(out.status, 403);
    t.is(out.body.error, 'argument_denied');
    t.deepEqual(out.policy.deniedArgument, { call: 0, method: 'tools/call', name: tool, argument, constraint, item: constraint.startsWith('items.') ? 1 : -1 });
    t.true(out.body.error_description.includes(`"${argument}" of tool ${tool}`), out.body.error_description);
    for (const value of Object.values(args).flat()) {
      if (typeof value === 'string' && value.length > 4) t.false(out.body.error_description.includes(value), `the description leaks ${value}`);
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
  const res = await runCli(['check', '--config', CONFIG, '--path', '/mcp/tools', '-H', `x-api-key: ${AGENT}`, '--body', body('read_file', { path: '/docs/..\\..\\windows\\win.ini' })]);
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
  for (const params of ['{"name":"read_file","arguments":["/docs/a.md"]}', '{"name":"sql","arguments":{"query":"SELECT 1","limit":1e400}}']) {
    const out = (await explain(loadConfigFile(CONFIG, {}), {
      method: 'POST', path: '/mcp/tools', host: 'mcp.example.com', headers: [['x-api-key', AGENT]],
      body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":${params}}`,
    })) as Record<string, any>;
    t.is(out.status, 400, params);
    t.is(out.body.error, 'invalid_arguments');
    t.is(out.policy, null, 'decided before the policy');
  }
});
