// A real redis-server on a free loopback port, for the shared-limits tests, and a real Redis
// Cluster of several. No persistence; stopped (and restarted on the same port) by the outage
// tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../bench/lib/processes.js';
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

/** A free loopback port, picked outside the kernel's ephemeral range (bench/lib/processes.ts). */
export { freePort };

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

/** One master of a test Redis Cluster. */
export interface TestClusterNode {
  port: number;
  url: string;
  /** Kills the node (SIGKILL) and waits until its port refuses connections. */
  stop(): Promise<void>;
  /** Starts it again on the same ports and config file: it rejoins with its slots, empty. */
  start(): Promise<void>;
}

export interface TestRedisCluster {
  nodes: TestClusterNode[];
  /** The first node's URL: a seed from which a client discovers the rest. */
  url: string;
  /** The index in `nodes` of the master that serves `key`'s slot. */
  nodeOf(key: string): Promise<number>;
  /** Waits until every running node reports cluster_state:ok and knows every other one. */
  healthy(): Promise<void>;
  stop(): Promise<void>;
}

/** Sends one command on a fresh connection and returns the raw reply text. */
export function command(port: number, args: readonly string[], timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    let reply = '';
    const fail = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.setTimeout(timeoutMs, () => fail(new Error(`no answer from port ${port} to ${args.join(' ')}`)));
    sock.once('error', fail);
    sock.connect(port, '127.0.0.1', () =>
      sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`),
    );
    sock.on('data', (d) => {
      reply += d.toString();
      if (complete(reply)) {
        sock.destroy();
        if (reply.startsWith('-')) reject(new Error(`${args.join(' ')}: ${reply.trim()}`));
        else resolve(reply);
      }
    });
  });
}

/** Whether a reply of the kinds the helper reads (simple, error, integer, bulk) is whole. */
function complete(reply: string): boolean {
  if (!reply.endsWith('\r\n')) return false;
  if (reply[0] !== '$') return true;
  const len = Number(reply.slice(1, reply.indexOf('\r\n')));
  return len < 0 || Buffer.byteLength(reply) >= reply.indexOf('\r\n') + 2 + len + 2;
}

/**
 * A real Redis Cluster of `masters` redis-server processes (no replicas) on loopback ports, in
 * a temporary folder: slots split evenly by CLUSTER ADDSLOTSRANGE, joined by CLUSTER MEET.
 * Resolves once every node reports cluster_state:ok. No persistence; the nodes' cluster config
 * files stay in the folder, so a stopped node started again takes its slots back.
 */
export async function startRedisCluster(masters = 3): Promise<TestRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'redis-cluster-'));
  const nodes: (TestClusterNode & { bus: number; running: () => boolean })[] = [];
  for (let i = 0; i < masters; i++) {
    const port = await freePort();
    const bus = await freePort();
    let proc: ChildProcess | undefined;
    const start = async () => {
      proc = spawn(
        'redis-server',
        [
          ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
          ...['--dir', dir, '--cluster-enabled', 'yes', '--cluster-port', String(bus)],
          ...['--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000'],
        ],
        { stdio: 'ignore' },
      );
      const p = proc;
      let exited = false;
      p.once('exit', () => (exited = true));
      await waitFor(`cluster node on port ${port}`, async () => {
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
      await waitFor('cluster node to stop', async () => !(await ping(port)));
    };
    nodes.push({
      port,
      bus,
      url: `redis://127.0.0.1:${port}`,
      start,
      stop,
      running: () => proc !== undefined && proc.exitCode === null,
    });
  }
  const stopAll = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    const per = Math.floor(16384 / masters);
    for (let i = 0; i < masters; i++) {
      const n = nodes[i]!;
      const last = i === masters - 1 ? 16383 : (i + 1) * per - 1;
      // Distinct epochs, so the nodes agree on slot owners without a collision round.
      await command(n.port, ['CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1)]);
      await command(n.port, ['CLUSTER', 'ADDSLOTSRANGE', String(i * per), String(last)]);
    }
    for (const n of nodes.slice(1))
      await command(nodes[0]!.port, ['CLUSTER', 'MEET', '127.0.0.1', String(n.port), String(n.bus)]);
    const healthy = () =>
      waitFor(
        'cluster_state:ok on every node',
        async () => {
          for (const n of nodes) {
            if (!n.running()) continue;
            const info = await command(n.port, ['CLUSTER', 'INFO']).catch(() => '');
            if (!info.includes('cluster_state:ok') || !info.includes(`cluster_known_nodes:${masters}`)) return false;
          }
          return true;
        },
        60_000,
        100,
      );
    await healthy();
    return {
      nodes,
      url: nodes[0]!.url,
      healthy,
      async nodeOf(key) {
        const live = nodes.find((n) => n.running())!;
        const slot = Number((await command(live.port, ['CLUSTER', 'KEYSLOT', key])).slice(1));
        return Math.min(Math.floor(slot / per), masters - 1);
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
