// What the policy scripts share: where the pinned opa is (src/config/paths.mjs, the one
// answer the service uses too, and shipped in the npm package beside these scripts), their
// argument parsing, and how they fail: with a message and an exit code, never a stack trace.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { opaBinary, projectRoot } from '../src/config/paths.mjs';

export const root = projectRoot;
export const opaPath = opaBinary;

/** parseArgs with --help; a bad option prints the usage and exits 2. */
export function parseOrExit(options, usage) {
  let values;
  try {
    ({ values } = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    process.stderr.write(`${err.message}\n\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return values;
}

/** Runs an opa call: opa missing is explained; opa's own failure (already printed) exits with its status. */
export function runOrExit(fn) {
  try {
    return fn();
  } catch (err) {
    if (err.code === 'ENOENT') {
      process.stderr.write(
        `opa not found (${opaPath()}): run ${join(root, 'scripts', 'install-tools.sh')} opa (needs Go), put opa on PATH, or set OPA to its path\n`,
      );
      process.exit(127);
    }
    if (typeof err.status === 'number') {
      if (err.stderr?.length) process.stderr.write(err.stderr);
      process.exit(err.status || 1);
    }
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
}
