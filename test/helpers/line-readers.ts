// Readers in other languages as long-running subprocesses: one JSON string in per line, one
// JSON reading out per line, in order (test/readers/). Go's come from the go-readers binary
// (`scripts/install-tools.sh go-readers`, npm test's pretest), Python's from python3.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export class LineReader<R> {
  private readonly proc: ChildProcess;
  private readonly waiting: { resolve: (r: R) => void; reject: (e: Error) => void }[] = [];
  private stderr = '';

  constructor(command: string, args: string[]) {
    this.proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (d) => (this.stderr += d.toString()));
    createInterface({ input: this.proc.stdout! }).on('line', (line) =>
      this.waiting.shift()?.resolve(JSON.parse(line) as R),
    );
    this.proc.once('exit', (code) => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`${command} exited with ${code}: ${this.stderr}`));
    });
    // A missing interpreter or binary fails the reads that wait on it, with what to install.
    this.proc.once('error', (err) => {
      for (const w of this.waiting.splice(0))
        w.reject(
          new Error(
            `cannot run ${command} (${err.message}): the differential tests need it (python3, or scripts/install-tools.sh go-readers)`,
          ),
        );
    });
  }

  read(s: string): Promise<R> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.proc.stdin!.write(`${JSON.stringify(s)}\n`);
    });
  }

  close(): void {
    this.proc.stdin!.end();
  }
}

export function goReader<R>(mode: 'url' | 'path' | 'jcs-args'): LineReader<R> {
  const bin = join(root, '.build', 'bin', 'go-readers');
  if (!existsSync(bin))
    throw new Error(`${bin} is missing: run scripts/install-tools.sh go-readers (npm test does it in pretest)`);
  return new LineReader<R>(bin, [mode]);
}

export function pythonReader<R>(mode: 'url' | 'path' | 'echo-id' | 'jcs-args'): LineReader<R> {
  return new LineReader<R>('python3', [join(root, 'test', 'readers', 'python_readers.py'), mode]);
}
