// Runs `mcp-authz serve` as a real subprocess (the CLI, optionally with --workers) and
// gives tests gRPC clients — each on its own connection, so cluster workers share them.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { clientConstructors } from '../../src/envoy/protos.js';
import type { CheckResponse } from './service.js';
import { waitFor } from './wait.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ServeProcess {
  proc: ChildProcess;
  grpcPort: number;
  httpPort: number;
  logs: () => string;
  /**
   * A Check on client `i` (clients have separate connections); with `deadlineMs` it fails after
   * that long, with `waitForReady` a Check sent while the connection is down waits for it to be
   * back instead of failing at once.
   */
  check(
    req: Record<string, unknown>,
    i?: number,
    opts?: { deadlineMs?: number; waitForReady?: boolean },
  ): Promise<CheckResponse>;
  http(path: string): Promise<{ status: number; text: string }>;
  health(): Promise<string>;
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

export async function startServe(
  config: Record<string, unknown>,
  args: string[],
  opts: { clients?: number; entry?: string } = {},
): Promise<ServeProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-serve-'));
  const file = join(dir, 'config.yaml');
  // Loopback port 0, or the Unix socket the config names for the gRPC port.
  const grpcAddress = (config.listen as { grpc?: string } | undefined)?.grpc?.startsWith('unix:')
    ? (config.listen as { grpc: string }).grpc
    : '127.0.0.1:0';
  writeFileSync(
    file,
    stringify({
      ...config,
      listen: { ...(config.listen as object | undefined), grpc: grpcAddress, http: '127.0.0.1:0' },
    }),
  );
  const entry = opts.entry ?? join(root, 'src', 'cli', 'bin.ts');
  const proc = spawn(process.execPath, ['--import', 'tsx', entry, 'serve', '--config', file, ...args], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let ports: { grpc: number; http: number } | undefined;
  let code: number | null | undefined;
  void exited.then((c) => (code = c));
  try {
    // A deadline, not a timing claim: a cold tsx start of three processes on a machine as busy
    // as CI's can take minutes.
    await waitFor(
      'serve to start',
      () => {
        if (code !== undefined) throw new Error(`serve exited with ${code}:\n${stderr}`);
        for (const line of stderr.split('\n')) {
          if (!line.includes('"mcp-authz serving"')) continue;
          const j = JSON.parse(line) as { grpc: number; http: number; worker?: number };
          if (j.worker === undefined && j.http) ports = { grpc: j.grpc, http: j.http };
        }
        return ports !== undefined;
      },
      180_000,
      50,
    );
  } catch (err) {
    // Left running, it would hold the test's process open after the test failed.
    proc.kill('SIGKILL');
    throw err;
  }
  const { Authorization, Health: HealthClient } = clientConstructors();
  const target = grpcAddress.startsWith('unix:') ? grpcAddress : `127.0.0.1:${ports!.grpc}`;
  const clients = Array.from(
    { length: opts.clients ?? 1 },
    () =>
      new Authorization(target, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      }) as grpc.Client & Record<string, any>,
  );
  const health = new HealthClient(target, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  }) as grpc.Client & Record<string, any>;
  return {
    proc,
    grpcPort: ports!.grpc,
    httpPort: ports!.http,
    logs: () => stderr,
    exited,
    check: (req, i = 0, opts = {}) =>
      new Promise((resolve, reject) => {
        const options = {
          ...(opts.deadlineMs === undefined ? {} : { deadline: Date.now() + opts.deadlineMs }),
          ...(opts.waitForReady ? { waitForReady: true } : {}),
        };
        clients[i % clients.length]!.Check(req, options, (err: grpc.ServiceError | null, res: CheckResponse) =>
          err ? reject(err) : resolve(res),
        );
      }),
    http: async (path) => {
      const res = await fetch(`http://127.0.0.1:${ports!.http}${path}`);
      return { status: res.status, text: await res.text() };
    },
    health: () =>
      new Promise((resolve, reject) => {
        health.Check(
          { service: '' },
          { deadline: Date.now() + 2000 },
          (err: grpc.ServiceError | null, res: { status: string }) => (err ? reject(err) : resolve(res.status)),
        );
      }),
    stop: async () => {
      for (const c of clients) c.close();
      health.close();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      const c = await exited;
      clearTimeout(timer);
      return c;
    },
  };
}
