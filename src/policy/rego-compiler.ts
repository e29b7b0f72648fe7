// Development mode (policy.rego): compiles a .rego folder to a WASM bundle with the real
// opa, with the same capabilities as `npm run policy:build`. The list visibility rule is
// compiled beside the decision when the folder defines it.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opaBinary, WASM_CAPABILITIES } from '../config/paths.mjs';
import { explainUnavailable } from './builtin-catalogue.mjs';
import { BundleError, loadBundle, type Bundle } from './bundle-loader.js';

export async function compileRego(dir: string, entrypoint: string, visibleEntrypoint?: string): Promise<Bundle> {
  const work = mkdtempSync(join(tmpdir(), 'mcp-authz-rego-'));
  const out = join(work, 'bundle.tar.gz');
  try {
    if (visibleEntrypoint === undefined) {
      await opaBuild(dir, out, [entrypoint]);
    } else {
      await opaBuild(dir, out, [entrypoint, visibleEntrypoint]).catch((err: BundleError) => {
        if (!err.message.includes(`entrypoint "${visibleEntrypoint}" does not refer to a rule`)) throw err;
        return opaBuild(dir, out, [entrypoint]);
      });
    }
    const bundle = loadBundle(out);
    return { ...bundle, source: dir };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function opaBuild(dir: string, out: string, entrypoints: string[]): Promise<void> {
  const args = ['build', '-t', 'wasm', ...entrypoints.flatMap((e) => ['-e', e]), '--ignore', '*_test.rego', '-o', out];
  if (existsSync(WASM_CAPABILITIES)) args.push('--capabilities', WASM_CAPABILITIES);
  args.push('.');
  return new Promise<void>((resolve, reject) => {
    execFile(opaBinary(), args, { cwd: dir, timeout: 60_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      // opa prints compile errors on stdout or stderr depending on the command.
      if (err) {
        const output = `${stderr}\n${stdout}`.trim();
        const why = explainUnavailable(output);
        reject(new BundleError(`opa build of ${dir} failed: ${output || err.message}${why ? `\n${why}` : ''}`));
      } else resolve();
    });
  });
}
