// bench/loadgen's own Go tests (bench/loadgen/main_test.go): the generator against a scripted
// HTTP/2 server on loopback that closes connections the ways servers do — GOAWAY with a last
// stream id below calls in flight, the two-step graceful GOAWAY of node:http2 and gRPC servers,
// REFUSED_STREAM, GOAWAY with an error code, a connection cut with calls in flight, stream ids
// running out — and counts every call it processed: none lost, none processed twice, and only
// a real failure counted as an error.
import test from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './helpers/cli.js';

/** Every Go test in bench/loadgen: each must run and pass (a renamed or missing one fails here). */
const GO_TESTS = [
  'TestNoGoAwayEveryCallAnsweredOnce',
  'TestGoAwayBelowCallsInFlight',
  'TestTwoStepGracefulGoAwayThenServerCloses',
  'TestRefusedStreamIsSentAgain',
  'TestGoAwayWithErrorIsReported',
  'TestConnectionCutWithCallsInFlightIsAnError',
  'TestStreamIDsSpentOpenANewConnection',
];

test('loadgen handles GOAWAY, REFUSED_STREAM and cut connections as an HTTP/2 client must (go test)', async (t) => {
  const child = spawn('go', ['test', '-count=1', '-v', '.'], {
    cwd: join(ROOT, 'bench', 'loadgen'),
    // As scripts/install-tools.sh builds it: go.mod and go.sum pin every module.
    env: { ...process.env, GOFLAGS: '-mod=mod -buildvcs=false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | string>((resolve) => {
    child.on('error', (err) => resolve(`go could not start (scripts/install-tools.sh needs Go): ${err.message}`));
    child.on('close', (c, signal) => resolve(c ?? `signal ${signal}`));
  });
  t.is(code, 0, out.slice(-4000));
  const passed = new Set([...out.matchAll(/^--- PASS: (\w+) /gm)].map((m) => m[1]));
  t.deepEqual(
    GO_TESTS.filter((name) => !passed.has(name)),
    [],
    out.slice(-4000),
  );
  t.notRegex(out, /^--- FAIL/m);
});
