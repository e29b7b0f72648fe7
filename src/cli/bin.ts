import { settleLogs, terminateSelf } from '../log/logger.js';
import { main } from './main.js';

main(process.argv.slice(2)).then(
  async (code) => {
    process.exitCode = code;
    // A stopping `serve` writes what it can of its log, within a bound: a write stuck on a
    // full socket would otherwise hold the exit until someone reads it.
    if (!(await settleLogs())) terminateSelf();
  },
  (err: unknown) => {
    process.stderr.write(`mcp-authz: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
