// `npm run demo`: mcp-authz in front of a real MCP server, on this machine, with Node alone.
//
//   MCP client ──▶ Envoy stand-in (ext_proc filter)  ─┐                 ┌─▶ server-everything
//   MCP client ──▶ Envoy stand-in (ext_authz filter) ─┴─ gRPC ─▶ mcp-authz ┘   (Streamable HTTP)
//
// - the MCP server is @modelcontextprotocol/server-everything (pinned in package.json) over
//   Streamable HTTP, kept on loopback (demo/loopback-only.mjs) so only the proxies reach it;
// - mcp-authz is the real service (`mcp-authz serve`) with examples/demo/config.yaml, the
//   shipped policy and the demo keys of examples/demo/keys.yaml;
// - the proxies are the Envoy stand-ins of the end-to-end tests (demo/envoy-stand-in/):
//   NOT Envoy. They reproduce Envoy's ext_proc and ext_authz filters as far as mcp-authz
//   and a client can tell. examples/compose runs the same thing with the real Envoy.
//
// Everything listens on 127.0.0.1. Ctrl-C stops it all.
//
//   npm run demo [-- --port 8080]      ext_proc on --port, ext_authz on --port + 1
//                                      (--port 0: free ports, printed)
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { startExtAuthzProxy, type ExtAuthzProxy } from './envoy-stand-in/ext-authz-proxy.js';
import { RECOMMENDED_EXT_PROC, startExtProcProxy, type ExtProcProxy } from './envoy-stand-in/ext-proc-proxy.js';

const ROOT = resolve(import.meta.dirname, '..');
const CONFIG = join(ROOT, 'examples', 'demo', 'config.yaml');
const BUNDLE = join(ROOT, 'policies', 'build', 'bundle.tar.gz');

/** The demo's API keys: public (they are printed and committed), for this demo only. */
const DEMO_KEYS = [
  {
    id: 'demo-full',
    key: 'mcp_Yt16aO1lhc1ea7wA2SBVS0OJGr8zejNTSsJeHywjIic173zaO',
    grants: 'every tool, prompt and resource',
  },
  {
    id: 'demo-limited',
    key: 'mcp_wqmXkYMLv375HYzgNKh60DESXNKX2RdLgQKWRgBP6fl1Dzp0b',
    grants: 'the tools echo and get-sum, the prompt simple-prompt',
  },
] as const;

interface Running {
  everything: ChildProcess;
  authz: ChildProcess;
  extProc: ExtProcProxy;
  extAuthz: ExtAuthzProxy;
  work: string;
}

const say = (line = '') => process.stdout.write(`${line}\n`);

function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(1);
}

/** The printed keys are the keys examples/demo/keys.yaml holds the hashes of. */
function checkKeys(): void {
  const entries = (
    parse(readFileSync(join(ROOT, 'examples', 'demo', 'keys.yaml'), 'utf8')) as {
      keys: { id: string; sha256: string }[];
    }
  ).keys;
  for (const k of DEMO_KEYS) {
    const entry = entries.find((e) => e.id === k.id);
    if (entry?.sha256 !== createHash('sha256').update(k.key).digest('hex'))
      fail(`the demo key ${k.id} does not match examples/demo/keys.yaml`);
  }
}

/** server-everything over Streamable HTTP on a free loopback port; resolves with its URL. */
function startEverything(): Promise<{ child: ChildProcess; url: string }> {
  const require = createRequire(import.meta.url);
  const entry = join(
    dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')),
    'dist',
    'index.js',
  );
  // Its get-env tool prints its environment: it gets none of the demo's.
  const child = spawn(
    process.execPath,
    ['--import', join(import.meta.dirname, 'loopback-only.mjs'), entry, 'streamableHttp'],
    {
      env: { PATH: process.env.PATH ?? '', PORT: '0' },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server-everything exited (${code}) before listening:\n${stderr}`)));
    child.on('message', (m: { demo?: string; address?: { port: number } }) => {
      if (m.demo === 'listening' && m.address) resolve({ child, url: `http://127.0.0.1:${m.address.port}` });
    });
  });
}

/** `mcp-authz serve` with the demo config on free loopback ports; resolves with its ports. */
function startAuthz(work: string): Promise<{ child: ChildProcess; grpcPort: number; httpPort: number }> {
  const config = parse(readFileSync(CONFIG, 'utf8')) as Record<string, any>;
  config.listen = { grpc: '127.0.0.1:0', http: '127.0.0.1:0' };
  config.apiKeys = { ...config.apiKeys, file: join(ROOT, 'examples', 'demo', 'keys.yaml') };
  const file = join(work, 'config.yaml');
  writeFileSync(file, `# examples/demo/config.yaml with the demo's ports\n${stringify(config)}`);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'src', 'cli', 'bin.ts'), 'serve', '--config', file, '--workers', '1'],
    {
      cwd: ROOT,
      env: { ...process.env, MCP_AUTHZ_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let buffered = '';
  let logs = '';
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`mcp-authz exited (${code}) before serving:\n${logs}`)));
    child.stderr!.on('data', (d: Buffer) => {
      buffered += d;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        logs += `${line}\n`;
        const entry = readLine(line);
        if (entry?.msg === 'mcp-authz serving')
          resolve({ child, grpcPort: entry.grpc as number, httpPort: entry.http as number });
        else if (entry) narrate(entry);
      }
    });
  });
}

function readLine(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** mcp-authz's decision log, one short line per decision; its warnings as they are. */
function narrate(e: Record<string, unknown>): void {
  if (e.log === 'decision' && e.msg === 'decision') {
    const what = [e.mcp_method, e.tool].filter((x) => x !== null && x !== undefined).join(' ');
    say(
      `  [mcp-authz] ${String(e.decision).padEnd(5)} ${e.status} ${e.allow ? '' : `${e.reason} `}${what || '(no JSON-RPC body: a GET or DELETE of the session)'} — ${e.principal ?? 'no key'}`,
    );
  } else if (e.log === 'decision' && e.msg === 'list') {
    const lists = (e.lists as { method: string; shown: number; hidden: number }[])
      .map((l) => `${l.method}: ${l.shown} shown, ${l.hidden} hidden`)
      .join('; ');
    say(`  [mcp-authz] list  ${lists} — ${e.principal}`);
  } else if (typeof e.level === 'number' && e.level >= 40) {
    say(`  [mcp-authz] ${e.msg}`);
  }
}

async function start(port: number): Promise<Running> {
  checkKeys();
  if (!existsSync(BUNDLE)) fail('the policy bundle is not built: run `npm run policy:build` (npm run demo does)');
  const work = mkdtempSync(join(tmpdir(), 'mcp-authz-demo-'));
  const everything = await startEverything();
  const authz = await startAuthz(work).catch((err: Error) => {
    everything.child.kill();
    fail(err.message);
  });
  const extProc = await startExtProcProxy({ ...RECOMMENDED_EXT_PROC, port });
  // As examples/envoy/envoy.yaml sets the filter up: the body as bytes.
  const extAuthz = await startExtAuthzProxy({ packAsBytes: true, port: port === 0 ? 0 : port + 1 });
  extProc.attach({ processor: `127.0.0.1:${authz.grpcPort}`, upstream: everything.url });
  extAuthz.attach({ authz: `127.0.0.1:${authz.grpcPort}`, upstream: everything.url });
  banner(extProc.url, extAuthz.url, authz.httpPort, everything.url);
  return { everything: everything.child, authz: authz.child, extProc, extAuthz, work };
}

function banner(extProcUrl: string, extAuthzUrl: string, httpPort: number, upstream: string): void {
  const [full, limited] = DEMO_KEYS;
  const url = `${extProcUrl}/mcp`;
  say('');
  say('mcp-authz demo — everything on 127.0.0.1, nothing leaves this machine');
  say('');
  say(`  MCP endpoint, lists filtered per key (Envoy stand-in, ext_proc filter):   ${url}`);
  say(`  MCP endpoint, calls decided only    (Envoy stand-in, ext_authz filter): ${extAuthzUrl}/mcp`);
  say('');
  say("  The proxies are NOT Envoy: they are the Envoy stand-ins of mcp-authz's end-to-end tests");
  say("  (demo/envoy-stand-in/), which reproduce Envoy's ext_proc and ext_authz filters as far as");
  say('  mcp-authz and a client can tell. The real Envoy: examples/compose (Docker).');
  say(`  Behind them: mcp-authz (gRPC ext_proc and ext_authz; /metrics on http://127.0.0.1:${httpPort}/metrics)`);
  say(`  and the MCP "everything" server (@modelcontextprotocol/server-everything) on ${upstream}, loopback only.`);
  say('');
  say('  DEMO KEYS — public, printed here and committed in the repository: for this demo only.');
  for (const k of DEMO_KEYS) say(`    ${k.id.padEnd(13)} ${k.key}   ${k.grants}`);
  say('');
  say('  Try it (docs/clients.md):');
  say(
    `    npx @modelcontextprotocol/inspector --cli ${url} --transport http --method tools/list --header "X-API-Key: ${limited.key}"`,
  );
  say(
    `    npx @modelcontextprotocol/inspector --cli ${url} --transport http --method tools/call --tool-name echo --tool-arg message=hello --header "X-API-Key: ${limited.key}"`,
  );
  say(
    `    npx @modelcontextprotocol/inspector --cli ${extAuthzUrl}/mcp --transport http --method tools/call --tool-name get-env --header "X-API-Key: ${limited.key}"`,
  );
  say(
    '      (403 access_denied. Through the ext_proc endpoint the Inspector does not even find get-env: the list hides it.)',
  );
  say(`    claude mcp add --transport http mcp-authz-demo ${url} --header "X-API-Key: ${full.key}"`);
  say('');
  say('  Ctrl-C stops everything.');
  say('');
}

async function stop(r: Running): Promise<void> {
  await Promise.allSettled([r.extProc.stop(), r.extAuthz.stop()]);
  await Promise.all([exit(r.authz, 'SIGTERM'), exit(r.everything, 'SIGINT')]);
  rmSync(r.work, { recursive: true, force: true });
}

/** Signals a child and waits for it to exit (SIGKILL after 15 s). */
function exit(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { port: { type: 'string', default: '8080' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    say('usage: npm run demo [-- --port N]   (ext_proc on N, ext_authz on N + 1; 0: free ports)');
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65534)
    fail(`--port expects a port number, got ${JSON.stringify(values.port)}`);
  const running = await start(port).catch((err: Error) =>
    fail(
      (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? `port ${port} or ${port + 1} is in use: pick others with npm run demo -- --port N`
        : err.message,
    ),
  );
  let stopping = false;
  const shutdown = (why: string, code: number) => {
    if (stopping) return;
    stopping = true;
    say(`demo: ${why}; stopping`);
    void stop(running).then(() => process.exit(code));
  };
  process.once('SIGINT', () => shutdown('interrupted', 0));
  process.once('SIGTERM', () => shutdown('terminated', 0));
  // A terminal's Ctrl-C reaches the children too: their clean exit is a stop, not a failure.
  const watch = (child: ChildProcess, name: string) =>
    child.once('exit', (code, signal) =>
      code === 0 || signal === 'SIGINT' || signal === 'SIGTERM'
        ? shutdown(`${name} stopped`, 0)
        : shutdown(`${name} exited (${code ?? signal})`, 1),
    );
  watch(running.authz, 'mcp-authz');
  watch(running.everything, 'the MCP server');
}

await main();
