// `npm run demo` works as docs/clients.md says: the demo (demo/run.ts, started as the npm
// script starts it) serves the real MCP "everything" server behind mcp-authz and the Envoy
// stand-ins, and prints the URLs and the demo keys; the official MCP SDK client, set up as the
// docs instruct, and the real MCP Inspector CLI, run with the commands the demo prints, list
// exactly what each key may call, are refused what it may not, and call what it may.
// Ctrl-C stops every process the demo started.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { inspectorCli } from './e2e/inspector.js';
import { ROOT } from './helpers/cli.js';

interface Demo {
  child: ChildProcess;
  output: () => string;
  /** The ext_proc endpoint (lists filtered) and the ext_authz one. */
  filtered: string;
  decided: string;
  metrics: string;
  upstream: string;
  keys: Record<string, string>;
  exited: Promise<number | null>;
}

let demo: Demo;

function startDemo(): Promise<Demo> {
  // What `npm run demo -- --port 0` runs after building the policy (package.json "demo").
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'demo', 'run.ts'), '--port', '0'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    // A deadline for a loaded machine, not a timing assertion.
    const timer = setTimeout(() => reject(new Error(`the demo did not start:\n${out}`)), 110_000);
    void exited.then((code) => reject(new Error(`the demo exited (${code}):\n${out}`)));
    const poll = setInterval(() => {
      if (!out.includes('Ctrl-C stops everything.')) return;
      clearInterval(poll);
      clearTimeout(timer);
      const url = (label: RegExp) => label.exec(out)?.[1] ?? '';
      resolve({
        child,
        output: () => out,
        filtered: url(/lists filtered per key \(Envoy stand-in, ext_proc filter\):\s+(\S+)/),
        decided: url(/calls decided only\s+\(Envoy stand-in, ext_authz filter\):\s+(\S+)/),
        metrics: url(/\/metrics on (http:\/\/\S+\/metrics)\)/),
        upstream: url(/server-everything\) on (http:\/\/\S+?),/),
        keys: Object.fromEntries([...out.matchAll(/^\s+(demo-\w+)\s+(mcp_\w+)/gm)].map((m) => [m[1]!, m[2]!])),
        exited,
      });
    }, 100);
  });
}

test.before(async () => {
  demo = await startDemo();
});
test.after.always(() => {
  if (demo?.child.exitCode === null) demo.child.kill('SIGKILL');
});

/** The SDK client exactly as docs/clients.md ("CLI tools, scripts and custom agents") sets it up. */
async function sdkClient(url: string, key?: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: key ? { 'X-API-Key': key } : {} },
  });
  const client = new Client({ name: 'my-agent', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

const listening = (url: string) =>
  new Promise<boolean>((resolve) => {
    const u = new URL(url);
    const s = connect(Number(u.port), u.hostname);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

test.serial('the demo prints two endpoints, the demo keys marked as such, and says its proxies are not Envoy', (t) => {
  t.regex(demo.filtered, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
  t.regex(demo.decided, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
  t.deepEqual(Object.keys(demo.keys).sort(), ['demo-full', 'demo-limited']);
  t.regex(demo.output(), /DEMO KEYS — public/);
  t.regex(demo.output(), /The proxies are NOT Envoy/);
  t.regex(demo.upstream, /^http:\/\/127\.0\.0\.1:\d+$/, 'the MCP server listens on loopback only');
});

test.serial(
  'the SDK client with the limited key lists exactly its tools and prompt, calls echo, and is refused get-env',
  async (t) => {
    const client = await sdkClient(demo.filtered, demo.keys['demo-limited']);
    t.teardown(() => client.close());
    t.deepEqual((await client.listTools()).tools.map((x) => x.name).sort(), ['echo', 'get-sum']);
    t.deepEqual(
      (await client.listPrompts()).prompts.map((x) => x.name),
      ['simple-prompt'],
    );
    t.deepEqual((await client.callTool({ name: 'echo', arguments: { message: 'hello' } })).content, [
      { type: 'text', text: 'Echo: hello' },
    ]);
    t.deepEqual((await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } })).content, [
      { type: 'text', text: 'The sum of 2 and 3 is 5.' },
    ]);
    const denied = await t.throwsAsync(client.callTool({ name: 'get-env', arguments: {} }));
    t.true(denied instanceof StreamableHTTPError && denied.code === 403, String(denied));
    t.regex(denied!.message, /access_denied/);
  },
);

test.serial(
  'the full key lists every tool of the server; the ext_authz endpoint decides calls but lists unfiltered',
  async (t) => {
    const full = await sdkClient(demo.filtered, demo.keys['demo-full']);
    t.teardown(() => full.close());
    const everything = (await full.listTools()).tools.map((x) => x.name);
    t.true(everything.includes('get-env') && everything.length > 10, everything.join(', '));

    const limited = await sdkClient(demo.decided, demo.keys['demo-limited']);
    t.teardown(() => limited.close());
    t.deepEqual(
      (await limited.listTools()).tools.map((x) => x.name).sort(),
      [...everything].sort(),
      'ext_authz cannot filter a response',
    );
    t.deepEqual((await limited.callTool({ name: 'echo', arguments: { message: 'hi' } })).content, [
      { type: 'text', text: 'Echo: hi' },
    ]);
    const denied = await t.throwsAsync(limited.callTool({ name: 'get-env', arguments: {} }));
    t.true(denied instanceof StreamableHTTPError && denied.code === 403, String(denied));
  },
);

test.serial('without a key the client gets 401 and no MCP session', async (t) => {
  const err = await t.throwsAsync(sdkClient(demo.filtered));
  t.regex(String(err), /401|authentication_required/);
});

test.serial(
  'the MCP Inspector CLI, run as the demo prints it: tools/list filtered, echo called, get-env refused with 403',
  async (t) => {
    const key = demo.keys['demo-limited']!;
    const list = await inspectorCli([
      demo.filtered,
      '--transport',
      'http',
      '--method',
      'tools/list',
      '--header',
      `X-API-Key: ${key}`,
    ]);
    t.is(list.code, 0, list.stderr);
    t.deepEqual((JSON.parse(list.stdout).tools as { name: string }[]).map((x) => x.name).sort(), ['echo', 'get-sum']);
    const call = await inspectorCli([
      demo.filtered,
      '--transport',
      'http',
      '--method',
      'tools/call',
      '--tool-name',
      'echo',
      '--tool-arg',
      'message=hello',
      '--header',
      `X-API-Key: ${key}`,
    ]);
    t.is(call.code, 0, call.stderr);
    t.deepEqual(JSON.parse(call.stdout).content, [{ type: 'text', text: 'Echo: hello' }]);
    const bearer = await inspectorCli([
      demo.filtered,
      '--transport',
      'http',
      '--method',
      'tools/list',
      '--header',
      `Authorization: Bearer ${key}`,
    ]);
    t.is(bearer.code, 0, bearer.stderr);
    const denied = await inspectorCli([
      demo.decided,
      '--transport',
      'http',
      '--method',
      'tools/call',
      '--tool-name',
      'get-env',
      '--header',
      `X-API-Key: ${key}`,
    ]);
    t.not(denied.code, 0);
    t.regex(denied.stderr, /access_denied/);
    const hidden = await inspectorCli([
      demo.filtered,
      '--transport',
      'http',
      '--method',
      'tools/call',
      '--tool-name',
      'get-env',
      '--header',
      `X-API-Key: ${key}`,
    ]);
    t.not(hidden.code, 0);
    t.regex(hidden.stderr, /not found/, 'through ext_proc the Inspector does not find the tool the key may not call');
    t.regex(
      demo.output(),
      /\[mcp-authz\] deny\s+403 access_denied tools\/call get-env — demo-limited/,
      'the demo shows the decision',
    );
  },
);

test.serial('Ctrl-C stops the demo and every process it started', async (t) => {
  t.true(await listening(demo.upstream));
  t.true(await listening(demo.metrics));
  demo.child.kill('SIGINT');
  t.is(await demo.exited, 0, demo.output());
  t.false(await listening(demo.upstream), 'the MCP server is gone');
  t.false(await listening(demo.metrics), 'mcp-authz is gone');
});
