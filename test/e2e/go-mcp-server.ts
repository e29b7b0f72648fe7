// The Go MCP server (test/e2e/go-mcp-server: mcp-go over stateless Streamable HTTP) as a
// subprocess, and Go's own reading of JSON through the same binary. Built into .build/bin by
// `scripts/install-tools.sh go-mcp-server` (npm test's pretest).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function goMcpServerPath(): string {
  const bin = join(root, '.build', 'bin', 'go-mcp-server');
  if (!existsSync(bin))
    throw new Error(`${bin} is missing: run scripts/install-tools.sh go-mcp-server (npm test does it in pretest)`);
  return bin;
}

export interface GoMcpServer {
  /** http://127.0.0.1:port — every path serves MCP. */
  url: string;
  /** The tools that ran, in order, as the server recorded them. */
  toolsRun(): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startGoMcpServer(): Promise<GoMcpServer> {
  const proc = spawn(goMcpServerPath(), ['serve'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith('listening ')) resolve(line.slice('listening '.length));
    });
    proc.once('exit', (code) => reject(new Error(`go-mcp-server exited with ${code} before listening:\n${stderr}`)));
  });
  return {
    url,
    toolsRun: async () => (await fetch(`${url}/_calls`)).json() as Promise<string[]>,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** Go's case folding of object keys: rune → the rune encoding/json compares it as. */
export function goFoldTable(): Map<number, number> {
  const out = execFileSync(goMcpServerPath(), ['fold-table'], { encoding: 'utf8', maxBuffer: 16 << 20 });
  const table = new Map<number, number>();
  for (const line of out.split('\n')) {
    if (line === '') continue;
    const [r, f] = line.split(' ');
    table.set(parseInt(r!, 16), parseInt(f!, 16));
  }
  return table;
}

/** What Go's encoding/json reads of a body's JSON-RPC members (see `decode` in main.go). */
export interface GoReading {
  ok: boolean;
  batch: boolean;
  calls?: { kind: string; method?: string; name?: string; uri?: string; ref?: string }[];
  error?: string;
}

/** A long-running `go-mcp-server decode`: one body in, one reading out, in order. */
export class GoJsonReader {
  private readonly proc: ChildProcess;
  private readonly waiting: ((r: GoReading) => void)[] = [];

  constructor() {
    this.proc = spawn(goMcpServerPath(), ['decode'], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.proc.stdout! }).on('line', (line) =>
      this.waiting.shift()?.(JSON.parse(line) as GoReading),
    );
  }

  read(body: Uint8Array): Promise<GoReading> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.proc.stdin!.write(`${Buffer.from(body).toString('base64')}\n`);
    });
  }

  close(): void {
    this.proc.stdin!.end();
  }
}
