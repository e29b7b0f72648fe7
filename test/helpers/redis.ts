// A real redis-server on a free loopback port, for the shared-limits tests. No persistence;
// stopped (and restarted on the same port) by the outage tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, Socket } from 'node:net';
import { waitFor } from './wait.js';

export interface TestRedis {
  port: number;
  url: string;
  /** Stops the server and waits until the port refuses connections. */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty: no persistence) and waits for PONG. */
  start(): Promise<void>;
  /** Stops the process (SIGSTOP): connections stay open and nothing is answered, until `resume`. */
  pause(): void;
  resume(): void;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Sends PING on a fresh connection; true on +PONG. */
export function ping(port: number, timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = new Socket();
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('error', () => done(false));
    sock.connect(port, '127.0.0.1', () => sock.write('PING\r\n'));
    sock.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const start = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    const p = proc;
    let exited = false;
    p.once('exit', () => (exited = true));
    await waitFor(`redis-server on port ${port}`, async () => {
      if (exited) throw new Error('redis-server exited at start (is it installed? scripts/install-tools.sh redis)');
      return ping(port);
    });
  };
  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await exited;
    await waitFor('redis-server to stop', async () => !(await ping(port)));
  };
  await start();
  const signal = (s: NodeJS.Signals) => {
    if (proc && proc.exitCode === null) proc.kill(s);
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
  };
}
