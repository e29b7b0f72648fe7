// The gRPC port against an independent client: grpc-go (test/grpc-go-client, a Go program on
// grpc-go and go-control-plane's Envoy protos, built into .build/bin by
// `scripts/install-tools.sh grpc-go-client`) calls the real `serve` — once with the service's
// own server on node:http2, once with grpc-js — and reports one line per case: Check allow and
// deny, health Check and Watch, the ext_proc stream, deadlines on both sides, cancellation,
// messages at and over the receive limit, many concurrent streams, keepalive pings, a
// rapid-reset burst and GOAWAY on SIGTERM, each followed by a valid Check answered right.
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { maxCheckRequestBytes } from '../src/server/grpc-server.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { ROOT, startCli } from './helpers/cli.js';

const BIN = join(ROOT, '.build', 'bin', 'grpc-go-client');
const SERVERS = ['lean', 'grpc-js'] as const;
/** Every case the program runs, in its order; a case missing from its output fails too. */
const CASES = [
  'check_allow',
  'check_deny',
  'unknown_method',
  'health_check',
  'health_watch',
  'ext_proc_flow',
  'ext_proc_deny',
  'ext_proc_long_stream',
  'deadline_unary',
  'deadline_server_unary',
  'deadline_stream',
  'deadline_server_stream',
  'cancel_unary',
  'cancel_stream',
  'limit_unary',
  'limit_stream',
  'compressed',
  'concurrent_streams',
  'cancel_burst',
  'rapid_reset',
  'keepalive',
  'no_goaway',
  'shutdown',
];
/**
 * What grpc-js is known to fail, and how (docs/envoy.md "Independent clients"): the case must
 * fail that way, so the note goes when grpc-js changes. The service's own server fails nothing.
 */
const KNOWN_FAILURES: Record<string, Record<string, RegExp>> = {};
const RESOURCE = 'https://mcp.example.com/mcp/tokens';
// A small body limit keeps the messages at the receive limit (this plus 16 MiB) quick to build.
const limits = { maxBodyBytes: 64 * 1024 };
const key = mintKey({
  id: 'grpc-go',
  name: 'grpc-go client',
  userId: 'gopher',
  role: 'user',
  permissions: ['tools:search'],
});

interface Run {
  results: Map<string, { pass: boolean; detail: string }>;
  output: string;
  code: number | null;
  serveCode: number | null;
  serveLogs: string;
}

/** Starts the client (its IdP first), then `serve` configured with it, then lets the client run. */
async function runAgainst(grpcServer: (typeof SERVERS)[number]): Promise<Run> {
  const child = spawn(BIN, [], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout });
  const results = new Map<string, { pass: boolean; detail: string }>();
  let idpLine: (line: string) => void = () => undefined;
  const idp = new Promise<string>((resolve) => (idpLine = resolve));
  lines.on('line', (line) => {
    output += `${line}\n`;
    if (line.startsWith('idp ')) idpLine(line);
    const m = /^(PASS|FAIL) ([a-z_]+): (.*)$/.exec(line);
    if (m) results.set(m[2]!, { pass: m[1] === 'PASS', detail: m[3]! });
  });
  const first = await Promise.race([idp, exited.then((code) => `exited ${code}`)]);
  const [, base, names] = first.split(' ');
  if (!first.startsWith('idp ') || !base || !names)
    throw new Error(`grpc-go-client did not start its IdP: ${first}\n${output}`);

  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-grpc-go-'));
  writeFileSync(join(dir, 'keys.yaml'), keysFile([key]));
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    stringify({
      listen: { grpc: '127.0.0.1:0', http: '127.0.0.1:0' },
      grpcServer,
      limits,
      apiKeys: { file: join(dir, 'keys.yaml') },
      oauth: { issuers: names.split(',').map((n) => ({ issuer: `${base}/${n}`, jwksUri: `${base}/${n}/jwks` })) },
      endpoints: [
        { name: 'files', match: { pathPrefix: '/mcp/files' }, auth: { apiKey: true, oauth: false } },
        {
          name: 'tokens',
          match: { pathPrefix: '/mcp/tokens' },
          auth: { apiKey: false, oauth: true },
          resource: RESOURCE,
        },
      ],
    }),
  );
  const srv = await startCli(['serve', '--config', config, '--workers', '1']);
  child.stdin.end(
    `${JSON.stringify({
      server: grpcServer,
      grpc: `127.0.0.1:${srv.grpcPort}`,
      metrics: `http://127.0.0.1:${srv.httpPort}/metrics`,
      pid: srv.child.pid,
      apiKey: key.key,
      keyId: key.id,
      filesPath: '/mcp/files',
      tokensPath: '/mcp/tokens',
      resource: RESOURCE,
      maxMessageBytes: maxCheckRequestBytes(limits),
    })}\n`,
  );
  // A bound, not a timing assertion: the run waits for keepalive pings grpc-go sends at most every 10 s.
  const guard = setTimeout(() => child.kill('SIGKILL'), 300_000);
  const code = await exited;
  clearTimeout(guard);
  // The last case sent SIGTERM; a run that stopped before it leaves the service to stop here.
  if (srv.child.exitCode === null && srv.child.signalCode === null && !results.has('shutdown'))
    srv.child.kill('SIGTERM');
  const serveCode = await srv.exited;
  return { results, output, code, serveCode, serveLogs: srv.logs() };
}

for (const grpcServer of SERVERS) {
  // One server at a time: each run sends four 16 MiB messages and 30,000 reset streams,
  // and the rest of the suite runs beside it.
  test.serial(
    `grpc-go against grpcServer ${grpcServer}: every case passes, each followed by a valid Check answered right`,
    async (t) => {
      t.timeout(360_000, 'grpc-go-client runs up to 5 minutes (keepalive pings come every 10 s)');
      if (!existsSync(BIN))
        throw new Error(
          'grpc-go-client is not built: run `scripts/install-tools.sh grpc-go-client` (npm test does it in pretest)',
        );
      const run = await runAgainst(grpcServer);
      t.log(run.output.trim());
      const known = KNOWN_FAILURES[grpcServer] ?? {};
      const failed = [...run.results]
        .filter(([name, r]) => !r.pass && !known[name]?.test(r.detail))
        .map(([name, r]) => `${name}: ${r.detail}`);
      t.deepEqual(failed, [], `cases failed against ${grpcServer}:\n${failed.join('\n')}`);
      const fixed = Object.keys(known).filter((name) => run.results.get(name)?.pass);
      t.deepEqual(
        fixed,
        [],
        `known ${grpcServer} failures that now pass: drop them from KNOWN_FAILURES and docs/envoy.md`,
      );
      if (Object.keys(known).length > 0)
        t.log(`known ${grpcServer} failures, failing as documented: ${Object.keys(known).join(', ')}`);
      const missing = CASES.filter((c) => !run.results.has(c));
      t.deepEqual(missing, [], `cases that never reported (the program stopped early?):\n${run.output}`);
      t.deepEqual(
        [...run.results.keys()].filter((c) => !CASES.includes(c)),
        [],
        'cases this test does not know of',
      );
      t.is(run.code, Object.keys(known).length > 0 ? 1 : 0, run.output);
      t.is(run.serveCode, 0, `serve exits 0 after draining on SIGTERM:\n${run.serveLogs.slice(-4000)}`);
    },
  );
}
