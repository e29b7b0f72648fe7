// The service log as `serve` writes it: lines batched per turn of the event loop, none lost
// when the process exits right after logging.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function run(script: string): { lines: string[]; status: number | null } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { lines: r.stderr.split('\n').filter((l) => l.startsWith('{')), status: r.status };
}

test('every line logged before process.exit reaches stderr, in order', (t) => {
  const { lines, status } = run(`
    import { createLogger } from './src/log/logger.ts';
    const log = createLogger();
    for (let i = 0; i < 20000; i++) log.info({ i }, 'line');
    process.exit(3);
  `);
  t.is(status, 3);
  t.is(lines.length, 20000);
  t.deepEqual(lines.map((l) => JSON.parse(l).i), Array.from({ length: 20000 }, (_, i) => i));
});

test('lines logged across turns of the event loop are all written, each a whole JSON line', (t) => {
  const { lines, status } = run(`
    import { createLogger } from './src/log/logger.ts';
    const log = createLogger();
    let n = 0;
    const tick = () => {
      for (let i = 0; i < 100; i++) log.info({ n: n++, pad: 'x'.repeat(500) }, 'line');
      if (n < 5000) setImmediate(tick);
    };
    tick();
  `);
  t.is(status, 0);
  t.is(lines.length, 5000);
  t.true(lines.every((l) => JSON.parse(l).service === 'mcp-authz'));
  t.is(JSON.parse(lines[4999]!).n, 4999);
});
