// Runs the real MCP Inspector (@modelcontextprotocol/inspector, a devDependency) in its
// headless CLI mode, as a user would from a terminal, with a throw-away home folder and an
// in-memory secret store so nothing outside the test is read or written.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'mcp-inspector');

export interface InspectorRun {
  /** The process exit code (0: success). */
  code: number;
  stdout: string;
  stderr: string;
}

/** `mcp-inspector --cli <args>`; `env` is added to a clean environment (HOME, PATH). */
export function inspectorCli(args: string[], env: Record<string, string> = {}): Promise<InspectorRun> {
  const home = mkdtempSync(join(tmpdir(), 'mcp-inspector-home-'));
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BIN, '--cli', ...args],
      {
        timeout: 90_000,
        env: { PATH: process.env.PATH ?? '', HOME: home, MCP_INSPECTOR_SECRET_STORE: 'memory', ...env },
      },
      (err, stdout, stderr) => {
        const code =
          err === null
            ? 0
            : typeof (err as { code?: unknown }).code === 'number'
              ? (err as { code: number }).code
              : undefined;
        if (code === undefined) reject(new Error(`the Inspector did not run: ${(err as Error).message}\n${stderr}`));
        else resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The last JSON line of the Inspector's stderr (its error report), parsed. */
export function inspectorError(run: InspectorRun): { error: { code: string; message: string; status?: number } } {
  const line = run.stderr
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (line === undefined) throw new Error(`no JSON error on stderr:\n${run.stderr}`);
  return JSON.parse(line);
}
