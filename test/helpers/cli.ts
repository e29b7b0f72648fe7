// Runs the real CLI from source as a subprocess.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'src', 'cli', 'bin.ts');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts `mcp-authz serve` and resolves once it logs that it is serving, with its ports. */
export function startCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{
  child: ChildProcess;
  grpcPort: number;
  httpPort: number;
  logs: () => string;
  exited: Promise<number | null>;
}> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
    });
    let logs = '';
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    // A hang guard, not a timing assertion: on a 2-core box at load average 40, with the
    // other CLI tests starting processes beside it, a cold tsx start took over 100 s.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve did not start within 300s:\n${logs}`));
    }, 300_000);
    const onData = (d: Buffer) => {
      logs += d;
      for (const line of logs.split('\n')) {
        if (!line.includes('"mcp-authz serving"')) continue;
        const m = JSON.parse(line) as { grpc: number; http: number };
        clearTimeout(timer);
        child.stderr!.off('data', onData);
        child.stderr!.on('data', (more) => (logs += more));
        resolve({ child, grpcPort: m.grpc, httpPort: m.http, logs: () => logs, exited });
        return;
      }
    };
    child.stderr!.on('data', onData);
    child.stdout!.on('data', (d) => (logs += d));
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before serving:\n${logs}`));
    });
  });
}
