// A stalled log reader (a slow log pipeline on a node: nobody reads the container's stdout and
// stderr) must never stall a decision. The real `serve`, single process and with workers, its
// stdout and stderr pipes the test stops reading: Checks keep being answered while the pipes
// are full, the lines past the log buffer are dropped and counted, and once the pipe drains
// logging resumes and says how many lines were lost; SIGTERM still ends the process while
// nobody reads. Both kinds of pipe a process meets: a kernel pipe (what containerd gives a
// container) and a socketpair (Node's own child_process, journald).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { stringify } from 'yaml';
import { clientConstructors } from '../src/envoy/protos.js';
import { replayAlerts } from './helpers/alert-replay.js';
import { sample, scrapeMetrics } from './helpers/prometheus.js';
import { checkRequest, rpc, type CheckResponse } from './helpers/service.js';
import { fifo, LineReader, type PipeKind } from './helpers/stdio-reader.js';
import { waitFor } from './helpers/wait.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Small, so a few hundred decisions fill it; the default is larger (README). */
const BUFFER_BYTES = 64 * 1024;
/** Generous: a loaded CI machine must never fail this test by being slow, only a Check that is never answered can. */
const CHECK_DEADLINE_MS = 30_000;
const BATCH = 64;

interface Served {
  proc: ChildProcess;
  stdout: LineReader;
  stderr: LineReader;
  http: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  check(requestId?: string): Promise<CheckResponse>;
  metrics(): Promise<string>;
  close(): void;
}

async function serve(t: ExecutionContext, kind: PipeKind, workers: number): Promise<Served> {
  t.timeout(600_000, 'a whole service under load on a busy machine');
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-log-stall-'));
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    stringify({
      listen: { grpc: '127.0.0.1:0', http: '127.0.0.1:0' },
      endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
    }),
  );
  const args = [
    '--import',
    'tsx',
    join(root, 'src', 'cli', 'bin.ts'),
    'serve',
    '--config',
    config,
    '--workers',
    String(workers),
  ];
  const env = { ...process.env, MCP_AUTHZ_LOG_BUFFER_BYTES: String(BUFFER_BYTES) };
  let proc: ChildProcess;
  let stdout: LineReader;
  let stderr: LineReader;
  if (kind === 'fifo') {
    const out = fifo();
    const err = fifo();
    proc = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', out.writeFd, err.writeFd] });
    out.closeWriteEnd();
    err.closeWriteEnd();
    stdout = out.reader;
    stderr = err.reader;
  } else {
    proc = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    stdout = new LineReader(proc.stdout!);
    stderr = new LineReader(proc.stderr!);
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    stdout.resume();
    stderr.resume();
  });
  const serving = JSON.parse(
    await Promise.race([
      // A deadline, not a timing claim: a cold start of three processes on a busy machine can take minutes.
      stderr.waitForLine(
        'serve to start',
        (l) => l.includes('"mcp-authz serving"') && !l.includes('"worker"'),
        180_000,
      ),
      exited.then(({ code }) => Promise.reject(new Error(`serve exited with ${code}:\n${stderr.lines.join('\n')}`))),
    ]),
  ) as { grpc: number; http: number };
  const { Authorization } = clientConstructors();
  // Several connections, so cluster workers share the Checks.
  const clients = Array.from(
    { length: 4 },
    () =>
      new Authorization(`127.0.0.1:${serving.grpc}`, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      }) as grpc.Client & Record<string, any>,
  );
  let n = 0;
  return {
    proc,
    stdout,
    stderr,
    http: serving.http,
    exited,
    check: (requestId) =>
      new Promise((resolve, reject) => {
        const req = checkRequest({
          method: 'POST',
          path: '/mcp/open',
          body: rpc('tools/call', { name: 'search', arguments: { q: 'x' } }),
          headers: { 'content-type': 'application/json', ...(requestId ? { 'x-request-id': requestId } : {}) },
        });
        clients[n++ % clients.length]!.Check(
          req,
          { deadline: Date.now() + CHECK_DEADLINE_MS },
          (err: grpc.ServiceError | null, res: CheckResponse) => (err ? reject(err) : resolve(res)),
        );
      }),
    metrics: () => scrapeMetrics(`http://127.0.0.1:${serving.http}/metrics`),
    close: () => {
      for (const c of clients) c.close();
    },
  };
}

function allowed(res: CheckResponse): boolean {
  return (res.status?.code ?? 0) === 0 && res.ok_response != null && res.denied_response == null;
}

const reports = (lines: string[]) =>
  lines
    .filter((l) => l.includes('"log lines dropped'))
    .map((l) => JSON.parse(l) as { dropped: { decision: number; service: number } });
const dropped = (text: string, log: 'decision' | 'service') =>
  sample(text, 'mcp_authz_log_lines_dropped_total', { log }) ?? NaN;

/** Sends Checks in concurrent batches until the service reports dropped decision lines: the pipe and the buffer behind it are full. */
async function fillUntilDropping(t: ExecutionContext, s: Served): Promise<number> {
  for (let batch = 0; batch < 400; batch++) {
    const answers = await Promise.all(Array.from({ length: BATCH }, () => s.check()));
    t.true(answers.every(allowed), 'every Check is answered, and answered right, while the log pipe fills');
    const d = dropped(await s.metrics(), 'decision');
    if (d > 0) return d;
  }
  throw new Error('no decision line was ever dropped: the pipe never filled');
}

// One at a time: each runs a whole service (three processes with workers) under load.
for (const [kind, workers] of [
  ['fifo', 1],
  ['fifo', 2],
  ['socketpair', 1],
  ['socketpair', 2],
] as const) {
  test.serial(
    `stalled ${kind} stderr, --workers ${workers}: Checks are answered while the pipe is full, lines past the buffer are dropped and counted, logging resumes when it drains`,
    async (t) => {
      const s = await serve(t, kind, workers);
      t.teardown(() => s.close());
      t.true(allowed(await s.check()));
      const before = await s.metrics();
      t.is(dropped(before, 'decision'), 0, 'the series exists from start-up, at 0');
      t.is(dropped(before, 'service'), 0);

      s.stdout.pause();
      s.stderr.pause();
      const first = await fillUntilDropping(t, s);

      // The pipe is full and stays full: every Check from here on is answered while it is, and
      // the counter keeps rising, so nothing waits for the log.
      let answered = 0;
      for (let batch = 0; batch < 4; batch++) {
        const answers = await Promise.all(Array.from({ length: BATCH }, () => s.check()));
        answered += answers.filter(allowed).length;
      }
      t.is(answered, 4 * BATCH, 'every Check sent while nobody reads the log is answered as allowed');
      const whileFull = await s.metrics();
      t.true(
        dropped(whileFull, 'decision') >= first + 4 * BATCH - BUFFER_BYTES / 256,
        `the counter rose with the Checks answered while full (${first} → ${dropped(whileFull, 'decision')})`,
      );

      // The chart's alert fires on what the service exported (placed at minutes 0 and 10).
      const firing = (['decision', 'service'] as const)
        .filter((log) => dropped(whileFull, log) > 0)
        .map((log) => ({ severity: 'warning', namespace: 'mcp', pod: 'mcp-a', log }));
      const replay = await replayAlerts(
        [
          { minute: 0, text: before },
          { minute: 10, text: whileFull },
        ],
        [
          { minute: 5, alert: 'McpAuthzLogLinesDropped', firing: [] },
          { minute: 11, alert: 'McpAuthzLogLinesDropped', firing },
        ],
      );
      t.true(replay.ok, replay.out);

      // Read again: once its buffer has room, every process that dropped lines says how many in
      // its log, and a decision made from then on reaches the log.
      s.stderr.resume();
      s.stdout.resume();
      const reported = (log: 'decision' | 'service') => reports(s.stderr.lines).reduce((n, r) => n + r.dropped[log], 0);
      let after = '';
      await waitFor(
        'every dropped line to be reported in the log',
        async () => {
          after = await s.metrics();
          return (
            reported('decision') === dropped(after, 'decision') && reported('service') === dropped(after, 'service')
          );
        },
        60_000,
        50,
      );
      t.true(dropped(after, 'decision') >= dropped(whileFull, 'decision'));
      t.like(JSON.parse(s.stderr.lines.find((l) => l.includes('"log lines dropped'))!), {
        level: 40,
        service: 'mcp-authz',
      });
      const id = randomUUID();
      t.true(allowed(await s.check(id)));
      await s.stderr.waitForLine('the decision made after the pipe drained', (l) => l.includes(id));
      // Whole lines only, from every process writing to the pipe: none is torn or interleaved.
      for (const line of s.stderr.lines) t.notThrows(() => JSON.parse(line), line.slice(0, 200));

      s.proc.kill('SIGTERM');
      const exit = await s.exited;
      t.deepEqual(exit, { code: 0, signal: null });
    },
  );
}

/** Whether the process's stderr descriptor is in non-blocking mode (O_NONBLOCK in /proc/PID/fdinfo/2). */
function nonBlocking(pid: number): boolean {
  const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/2`, 'utf8'))![1]!;
  return (parseInt(flags, 8) & 0o4000) !== 0;
}

for (const [kind, workers] of [
  ['fifo', 2],
  ['socketpair', 1],
] as const) {
  test.serial(
    `SIGTERM while nobody reads the ${kind} stderr (--workers ${workers}): the process writes what it can and exits`,
    async (t) => {
      const s = await serve(t, kind, workers);
      t.teardown(() => s.close());
      // A socket descriptor is written by the thread pool: left blocking, a write to a full
      // socket blocks a pool thread (test/log-sink.test.ts); pino and grpc-js open process.stderr,
      // which makes it non-blocking, so in the service such a write fails at once.
      const blockingSocket = kind === 'socketpair' && !nonBlocking(s.proc.pid!);
      s.stdout.pause();
      s.stderr.pause();
      await fillUntilDropping(t, s);
      s.close();
      s.proc.kill('SIGTERM');
      // The exit comes while the pipe is still not read: shutdown does not wait for the reader.
      const exit = await Promise.race([
        s.exited,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('serve did not exit while its log was not read')), 90_000),
        ),
      ]);
      if (blockingSocket)
        t.deepEqual(
          exit,
          { code: null, signal: 'SIGTERM' },
          'exit() would wait for the write blocked in the thread pool: once the flush bound has passed the process ends by SIGTERM',
        );
      else
        t.deepEqual(
          exit,
          { code: 0, signal: null },
          'a write that does not fit fails at once (EAGAIN), so shutdown ends normally',
        );
      s.stderr.resume();
      await s.stderr.untilEnd();
      for (const line of s.stderr.lines) t.notThrows(() => JSON.parse(line), line.slice(0, 200));
    },
  );
}
