// The log sink on real descriptors nobody reads: a kernel pipe (a container's stderr) and a
// socketpair left blocking or made non-blocking (a socket stderr: journald, Node's
// child_process). A process logging through it keeps answering while its stderr is full, drops
// and counts what does not fit, loses nothing that does, keeps lines whole and in order, and
// can always exit. The process is test/fixtures/log-sink-child.mjs on the compiled sink.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { fifo, LineReader, type PipeKind } from './helpers/stdio-reader.js';
import { waitFor } from './helpers/wait.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const CHILD = join(root, 'test', 'fixtures', 'log-sink-child.mjs');
/** Bytes far beyond what a socket (net.core.wmem_max), the reading stream's buffer and a 64 KiB log buffer hold together. */
const FAR_MORE = 4 * 1024 * 1024;

interface State {
  pid: number;
  mode: string;
  dropped: { decision: number; service: number };
  buffered: number;
  stuck: boolean;
  reports: { decision: number; service: number }[];
  written: number;
  settled?: boolean;
}

interface Child {
  proc: ChildProcess;
  reader: LineReader;
  ready: State;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  send(cmd: Record<string, unknown>): Promise<State>;
}

async function child(
  kind: PipeKind,
  bufferBytes: number,
  stderrMode: 'as-is' | 'nonblocking-stderr' = 'as-is',
  clustered = false,
): Promise<Child> {
  if (!existsSync(join(root, 'dist', 'log', 'log-sink.js')))
    throw new Error('dist/ is missing: run `npm run build` (npm test does it in pretest)');
  const args = [CHILD, String(bufferBytes), stderrMode, ...(clustered ? ['cluster'] : [])];
  let proc: ChildProcess;
  let reader: LineReader;
  if (kind === 'fifo') {
    const f = fifo();
    proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', f.writeFd, 'ipc'] });
    f.closeWriteEnd();
    reader = f.reader;
  } else {
    proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    reader = new LineReader(proc.stderr!);
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const next = () =>
    new Promise<State>((resolve, reject) => {
      proc.once('message', (m) => resolve(m as State));
      void exited.then(({ code, signal }) => reject(new Error(`the child exited (${code ?? signal})`)));
    });
  const ready = await next();
  return { proc, reader, ready, exited, send: (cmd) => (proc.send(cmd), next()) };
}

function nonBlocking(pid: number): boolean {
  const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/2`, 'utf8'))![1]!;
  return (parseInt(flags, 8) & 0o4000) !== 0;
}

/** The lines read parse, and their sequence numbers only increase. */
function wholeAndInOrder(lines: string[]): number[] {
  const seqs = lines.map((l) => (JSON.parse(l) as { seq: number }).seq);
  for (let i = 1; i < seqs.length; i++)
    if (seqs[i]! <= seqs[i - 1]!) throw new Error(`line ${seqs[i]} after ${seqs[i - 1]}`);
  return seqs;
}

const total = (d: { decision: number; service: number }) => d.decision + d.service;

test('a pipe nobody reads: nothing is lost while it fits, then lines past the buffer are dropped and counted by kind while the process goes on; order kept, lines whole, the loss reported once it drains', async (t) => {
  const c = await child('fifo', 256 * 1024);
  t.teardown(() => c.proc.kill('SIGKILL'));
  t.is(c.ready.mode, 'nonblocking', 'a pipe is opened again, non-blocking, and written on the event loop');
  c.reader.pause();

  // Less than the buffer and the pipe hold: held, then all written once the reader reads.
  const small = await c.send({ op: 'write', lines: 400, bytes: 500, kind: 'decision' });
  t.deepEqual(small.dropped, { decision: 0, service: 0 });
  c.reader.resume();
  await waitFor('the 400 lines', () => c.reader.lines.length === 400, 30_000);
  t.deepEqual(
    wholeAndInOrder(c.reader.lines),
    Array.from({ length: 400 }, (_, i) => i),
  );

  // Far more than both hold: the process answers every command while nobody reads.
  c.reader.pause();
  let s = await c.send({ op: 'write', lines: 2000, bytes: 500, kind: 'decision' });
  s = await c.send({ op: 'write', lines: 2000, bytes: 500, kind: 'service' });
  t.true(s.dropped.decision > 0 && s.dropped.service > 0, JSON.stringify(s.dropped));
  t.true(s.buffered <= 256 * 1024);

  c.reader.resume();
  await waitFor(
    'the loss to be reported',
    async () => {
      s = await c.send({ op: 'state' });
      return s.reports.reduce((n, r) => n + total(r), 0) === total(s.dropped);
    },
    30_000,
    20,
  );
  t.deepEqual(
    s.reports.reduce((a, r) => ({ decision: a.decision + r.decision, service: a.service + r.service }), {
      decision: 0,
      service: 0,
    }),
    s.dropped,
  );
  // Logging goes on: a line written now follows every line kept.
  s = await c.send({ op: 'write', lines: 1, bytes: 100, kind: 'service' });
  await waitFor('every line kept', () => c.reader.lines.length === s.written - total(s.dropped), 30_000);
  t.is(wholeAndInOrder(c.reader.lines).at(-1), s.written - 1);
  c.proc.send({ op: 'exit', code: 0 });
  t.deepEqual(await c.exited, { code: 0, signal: null });
});

test('a socket left blocking: a full socket holds a pool thread, never the event loop; a settle gives up at its bound and the process ends by SIGTERM', async (t) => {
  const c = await child('socketpair', 64 * 1024);
  t.teardown(() => c.proc.kill('SIGKILL'));
  t.false(nonBlocking(c.proc.pid!), 'the child left its stderr blocking');
  t.is(c.ready.mode, 'threadpool');
  c.reader.pause();
  // Lines turn after turn, far more than the socket, the reader's buffer and the log buffer
  // hold together: the socket is full and a write blocks in the pool. The process answers
  // every command meanwhile.
  let s: State = c.ready;
  await waitFor(
    'a write blocked on the full socket',
    async () => {
      s = await c.send({ op: 'write', lines: 50, bytes: 500, kind: 'decision' });
      return s.written * 500 > FAR_MORE && s.dropped.decision > 0 && s.stuck;
    },
    60_000,
    1,
  );
  s = await c.send({ op: 'settle', boundMs: 500 });
  t.false(s.settled, 'exit() would wait for the blocked write');
  c.proc.send({ op: 'exit', code: 0 });
  t.deepEqual(await c.exited, { code: null, signal: 'SIGTERM' });
  c.reader.resume();
  await c.reader.untilEnd();
  wholeAndInOrder(c.reader.lines);
  t.true(c.reader.lines.length > 0);
});

test('a socket made non-blocking: a full socket is retried on EAGAIN; the process exits normally, writing what fits', async (t) => {
  const c = await child('socketpair', 64 * 1024, 'nonblocking-stderr');
  t.teardown(() => c.proc.kill('SIGKILL'));
  t.true(nonBlocking(c.proc.pid!));
  c.reader.pause();
  let s: State = c.ready;
  await waitFor(
    'lines dropped on the full socket',
    async () => {
      s = await c.send({ op: 'write', lines: 50, bytes: 500, kind: 'service' });
      return s.written * 500 > FAR_MORE && s.dropped.service > 0;
    },
    60_000,
    1,
  );
  t.false(s.stuck);
  s = await c.send({ op: 'settle', boundMs: 100 });
  t.true(s.settled, 'nothing blocks exit: a write the socket cannot take fails at once (EAGAIN)');
  c.proc.send({ op: 'exit', code: 3 });
  t.deepEqual(await c.exited, { code: 3, signal: null });
  c.reader.resume();
  await c.reader.untilEnd();
  wholeAndInOrder(c.reader.lines);
});

test('a cluster worker that leaves right after its last line: every line it logged reaches the shared socket stderr, read only once it leaves', async (t) => {
  // `serve --workers`: the worker's stderr is the primary's, here the socketpair Node's
  // child_process gives, full: the worker's last lines wait behind a write blocked in the pool.
  const c = await child('socketpair', 16 * 1024 * 1024, 'as-is', true);
  t.teardown(() => {
    c.proc.kill('SIGKILL');
    try {
      process.kill(c.ready.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  t.not(c.ready.pid, c.proc.pid, 'the lines come from a cluster worker');
  t.is(c.ready.mode, 'threadpool');
  c.reader.pause();
  let s: State = c.ready;
  await waitFor(
    'a write blocked on the full socket',
    async () => {
      s = await c.send({ op: 'write', lines: 50, bytes: 500, kind: 'service' });
      return s.written * 500 > FAR_MORE && s.stuck;
    },
    60_000,
    1,
  );
  s = await c.send({ op: 'write', lines: 1, bytes: 100, kind: 'service' });
  t.deepEqual(s.dropped, { decision: 0, service: 0 }, 'the log buffer holds every line');
  t.true(s.buffered > 0, 'the last lines are held, not yet written');
  // The worker leaves the cluster; the reader reads again only from now on.
  c.proc.send({ op: 'leave-cluster', boundMs: 120_000 });
  c.reader.resume();
  t.deepEqual(await c.exited, { code: 0, signal: null });
  await c.reader.untilEnd();
  const seqs = wholeAndInOrder(c.reader.lines);
  t.is(seqs.length, s.written, 'every line logged before the worker left was written');
  t.is(seqs.at(-1), s.written - 1, 'the last line included');
});
