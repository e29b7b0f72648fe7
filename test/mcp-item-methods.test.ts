// Every MCP method that names an item is grant-checked as that item. The methods and their
// params come from the official SDKs' schemas (@modelcontextprotocol/core: the 2026-07-28
// revision; @modelcontextprotocol/sdk: 2025-11-25 and the Tasks extension), client and server
// messages alike: every params member, at any depth, whose key speaks of a name, URI, ref or
// subscription must be classified below — as an item, with the grant it needs, or as naming no
// item, with why. A new SDK method or member fails this test until it is classified. Then,
// through the real server: each item is refused to a key granted only something else and
// allowed to a key granted exactly it; a member the service cannot classify (a method it does
// not know carrying params.name, params.uri or params.ref) needs "*".
import test from 'ava';
import * as core from '@modelcontextprotocol/core';
import * as sdk from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { ITEM_METHODS } from '../src/contracts/request.js';
import { keysFile, makeKey } from './helpers/auth-fixtures.js';
import { runCli } from './helpers/cli.js';
import { checkRequest, deniedBody, deniedStatus, startTestService, type TestService } from './helpers/service.js';

/** An item: the params that name `value`, the grant that item needs (as a denial names it), and one that grants it. */
interface Item {
  item: true;
  params(value: string): Record<string, unknown>;
  grant(value: string): string;
  grantedBy?: string;
  value: string;
}
/** A member that names no item a server serves, and why. */
interface NotItem {
  item: false;
  why: string;
}
/** Named by a message a client has no business sending: the service cannot tell what it names, so only "*" passes it. */
interface Unknown {
  item: 'unknown';
  params: Record<string, unknown>;
}

const argument = { name: 'a', value: '' };
const CLASSIFIED: Record<string, Item | NotItem | Unknown> = {
  'tools/call params.name': {
    item: true,
    params: (v) => ({ name: v }),
    grant: (v) => `tools:${v}`,
    value: 'delete_repo',
  },
  'prompts/get params.name': {
    item: true,
    params: (v) => ({ name: v }),
    grant: (v) => `prompts:${v}`,
    value: 'payroll_lookup',
  },
  'resources/read params.uri': {
    item: true,
    params: (v) => ({ uri: v }),
    grant: (v) => `resources:${v}`,
    value: 'file:///hr/salaries.csv',
  },
  'resources/subscribe params.uri': {
    item: true,
    params: (v) => ({ uri: v }),
    grant: (v) => `resources:${v}`,
    value: 'file:///hr/salaries.csv',
  },
  'resources/unsubscribe params.uri': {
    item: true,
    params: (v) => ({ uri: v }),
    grant: (v) => `resources:${v}`,
    value: 'file:///hr/salaries.csv',
  },
  'completion/complete params.ref.name': {
    item: true,
    params: (v) => ({ ref: { type: 'ref/prompt', name: v }, argument }),
    grant: (v) => `prompts:${v}`,
    value: 'payroll_lookup',
  },
  'completion/complete params.ref.uri': {
    item: true,
    params: (v) => ({ ref: { type: 'ref/resource', uri: v }, argument }),
    grant: (v) => `resources:${v}`,
    grantedBy: 'resources:file:///hr/*',
    value: 'file:///hr/{employee}',
  },
  'completion/complete params.ref': {
    item: false,
    why: 'the ref itself: its name (ref/prompt) and uri (ref/resource) are the items, above',
  },
  'completion/complete params.argument.name': {
    item: false,
    why: 'the argument of the prompt or template the ref names, not an item',
  },
  'subscriptions/listen params.notifications.resourceSubscriptions': {
    item: true,
    params: (v) => ({ notifications: { resourceSubscriptions: ['file:///public/a.md', v] } }),
    grant: (v) => `resources:${v}`,
    value: 'file:///hr/salaries.csv',
  },
  'initialize params.clientInfo.name': { item: false, why: "the client's own name" },
  // Server-to-client messages: an MCP server does not act on a client's copy.
  'notifications/resources/updated params.uri': { item: 'unknown', params: { uri: 'file:///hr/salaries.csv' } },
  'notifications/subscriptions/acknowledged params.notifications.resourceSubscriptions': {
    item: false,
    why: "the server's acknowledgement of a subscription; no top-level name, uri or ref",
  },
  'sampling/createMessage params.messages': {
    item: false,
    why: "a conversation the server asks the client's model to continue: names inside it are content",
  },
  'sampling/createMessage params.modelPreferences': { item: false, why: 'model hints for the client' },
  'sampling/createMessage params.tools': { item: false, why: "tools the client's model may use during sampling" },
};

const ITEM_KEY = /name|uri|ref|subscri/i;

/** Every params member, at any depth, whose key speaks of a name, URI, ref or subscription. */
function memberPaths(schema: any, path: string, out: Set<string>, depth = 0): void {
  if (!schema || typeof schema !== 'object' || depth > 10) return;
  for (const k of ['anyOf', 'oneOf', 'allOf'])
    if (Array.isArray(schema[k])) for (const s of schema[k]) memberPaths(s, path, out, depth + 1);
  if (schema.items) memberPaths(schema.items, path, out, depth + 1);
  for (const [key, sub] of Object.entries<any>(schema.properties ?? {})) {
    if (key === '_meta') continue;
    const p = `${path}.${key}`;
    if (ITEM_KEY.test(key)) out.add(p);
    memberPaths(sub, p, out, depth + 1);
  }
}

interface SpecMethod {
  method: string;
  from: 'client' | 'server';
  members: Set<string>;
}

function specMethods(): SpecMethod[] {
  const byMethod = new Map<string, SpecMethod>();
  for (const lib of [core, sdk] as Record<string, any>[]) {
    for (const [union, from] of [
      ['ClientRequestSchema', 'client'],
      ['ClientNotificationSchema', 'client'],
      ['ServerRequestSchema', 'server'],
      ['ServerNotificationSchema', 'server'],
    ] as const) {
      for (const option of lib[union].options) {
        const json = z.toJSONSchema(option, { unrepresentable: 'any', io: 'input' }) as any;
        const method = json.properties.method.const as string;
        const entry = byMethod.get(method) ?? { method, from, members: new Set<string>() };
        if (from === 'client') entry.from = 'client';
        memberPaths(json.properties.params, 'params', entry.members);
        byMethod.set(method, entry);
      }
    }
  }
  return [...byMethod.values()];
}

const methods = specMethods();

/** The classification of a member: itself, or the entry for a path it lies under. */
function classification(method: string, path: string): Item | NotItem | Unknown | undefined {
  for (let p = path; p.includes('.'); p = p.slice(0, p.lastIndexOf('.'))) {
    const c = CLASSIFIED[`${method} ${p}`];
    if (c) return c;
  }
  return undefined;
}

test("the SDKs' schemas are read: every revision's methods that name items are there", (t) => {
  const names = methods.map((m) => m.method);
  for (const m of [
    'tools/call',
    'prompts/get',
    'resources/read',
    'resources/subscribe',
    'completion/complete',
    'subscriptions/listen',
    'server/discover',
    'tasks/get',
  ])
    t.true(names.includes(m), m);
  t.true(methods.length >= 30, `${methods.length} methods`);
});

test('every member of every MCP method that speaks of a name, URI, ref or subscription is classified: an item and its grant, or why it names none', (t) => {
  const unclassified = methods.flatMap((m) =>
    [...m.members].filter((p) => classification(m.method, p) === undefined).map((p) => `${m.method} ${p}`),
  );
  t.deepEqual(unclassified, [], 'classify each: is it an item (grant-check it) or not (say why)?');
});

test('the service grant-checks exactly the client methods whose members are items (ITEM_METHODS)', (t) => {
  const itemMethods = new Set(
    methods
      .filter((m) => m.from === 'client' && [...m.members].some((p) => classification(m.method, p)?.item === true))
      .map((m) => m.method),
  );
  t.deepEqual([...ITEM_METHODS.keys()].sort(), [...itemMethods].sort());
});

const keys = {
  other: makeKey({ id: 'other', permissions: ['tools:search', 'prompts:summarize', 'resources:file:///public/*'] }),
  star: makeKey({ id: 'star', permissions: ['*'] }),
};
const exactKeys = new Map<string, ReturnType<typeof makeKey>>();
const items = Object.entries(CLASSIFIED).filter((e): e is [string, Item] => e[1].item === true);
for (const [where, item] of items) {
  exactKeys.set(
    where,
    makeKey({
      id: `exact-${exactKeys.size}`,
      permissions: [item.grantedBy ?? item.grant(item.value), 'resources:file:///public/*'],
    }),
  );
}

let svc: TestService;
test.before(async () => {
  svc = await startTestService(
    {
      apiKeys: { file: 'keys.yaml' },
      endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true } }],
    },
    { files: { 'keys.yaml': keysFile([...Object.values(keys), ...exactKeys.values()]) } },
  );
});
test.after.always(async () => svc?.stop());

const send = (
  key: ReturnType<typeof makeKey>,
  method: string,
  params: Record<string, unknown> | undefined,
  id: number | undefined = 1,
) =>
  svc.check(
    checkRequest({
      path: '/mcp/files',
      body: JSON.stringify({
        jsonrpc: '2.0',
        ...(id !== undefined ? { id } : {}),
        method,
        ...(params ? { params } : {}),
      }),
      headers: { 'x-api-key': key.key },
    }),
  );

for (const [where, item] of items) {
  const [method] = where.split(' ');
  test(`${where} is the item it names: refused without its grant, allowed with it`, async (t) => {
    const refused = await send(keys.other, method!, item.params(item.value));
    t.falsy(refused.ok_response, 'never endpoint access only');
    t.is(deniedStatus(refused), 403);
    t.is(deniedBody(refused).error_description, `This API key is not granted ${item.grant(item.value)}`);
    t.truthy(
      (await send(exactKeys.get(where)!, method!, item.params(item.value))).ok_response,
      `allowed with ${item.grantedBy ?? item.grant(item.value)}`,
    );
  });
}

test('a method a client should not send, or one the service does not know, that carries params.name, params.uri or params.ref needs "*"', async (t) => {
  const cases: [string, Record<string, unknown>][] = [
    ...Object.entries(CLASSIFIED)
      .filter((e): e is [string, Unknown] => e[1].item === 'unknown')
      .map(([where, u]): [string, Record<string, unknown>] => [where.split(' ')[0]!, u.params]),
    ['prompts/describe', { name: 'payroll_lookup' }],
    ['resources/lock', { uri: 'file:///hr/salaries.csv' }],
    ['completion/suggest', { ref: { type: 'ref/prompt', name: 'payroll_lookup' } }],
    ['tools/list', { name: 'delete_repo' }],
  ];
  for (const [method, params] of cases) {
    for (const id of [1, undefined]) {
      const refused = await send(keys.other, method, params, id);
      t.is(deniedStatus(refused), 403, `${method} ${JSON.stringify(params)}`);
      t.is(deniedBody(refused).error_description, 'This API key is not granted *');
      t.truthy((await send(keys.star, method, params, id)).ok_response, `${method} with *`);
    }
  }
});

test('client methods that name no item need endpoint access only', async (t) => {
  const named = new Set(ITEM_METHODS.keys());
  let sent = 0;
  for (const m of methods.filter((x) => x.from === 'client' && !named.has(x.method))) {
    const res = await send(
      keys.other,
      m.method,
      m.method === 'initialize'
        ? { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'payroll_lookup', version: '1' } }
        : {},
      m.method.startsWith('notifications/') ? undefined : 1,
    );
    t.truthy(res.ok_response, `${m.method}: ${res.denied_response?.body}`);
    sent++;
  }
  t.true(sent >= 10, `${sent} methods`);
});

test('mcp-authz check shows what a completion names and why it is refused: the ref in mcp.calls and in the policy input, the grant it lacks', async (t) => {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 7,
    method: 'completion/complete',
    params: { ref: { type: 'ref/prompt', name: 'payroll_lookup' }, argument: { name: 'employee', value: 'a' } },
  });
  const cli = await runCli([
    'check',
    '--config',
    svc.configFile,
    '--method',
    'POST',
    '--path',
    '/mcp/files',
    '--host',
    'mcp.example.com',
    '--body',
    body,
    '-H',
    `x-api-key: ${keys.other.key}`,
  ]);
  t.is(cli.code, 3, 'a deny');
  const printed = JSON.parse(cli.stdout);
  t.is(printed.decision, 'deny');
  t.is(printed.status, 403);
  t.is(printed.body.error_description, 'This API key is not granted prompts:payroll_lookup');
  t.deepEqual(printed.mcp.calls, [
    { method: 'completion/complete', kind: 'request', ref: { type: 'ref/prompt', name: 'payroll_lookup' } },
  ]);
  t.deepEqual(printed.policy.input.mcp.calls[0].ref, { type: 'ref/prompt', name: 'payroll_lookup' });
  t.false(cli.stdout.includes(keys.other.key), 'never the key');
});
