// Development mode (policy.rego): compiles a .rego folder to a WASM bundle with the real
// opa, with the same capabilities as `npm run policy:build`.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { opaBinary, WASM_CAPABILITIES } from '../config/paths.mjs';
import { BundleError, loadBundle, type Bundle } from './bundle-loader.js';

export async function compileRego(dir: string, entrypoint: string): Promise<Bundle> {
  const work = mkdtempSync(join(tmpdir(), 'mcp-authz-rego-'));
  const out = join(work, 'bundle.tar.gz');
  const args = ['build', '-t', 'wasm', '-e', entrypoint, '--ignore', '*_test.rego', '-o', out];
  if (existsSync(WASM_CAPABILITIES)) args.push('--capabilities', WASM_CAPABILITIES);
  args.push('.');
  try {
    await new Promise<void>((resolve, reject) => {
      execFile(opaBinary(), args, { cwd: dir, timeout: 60_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
        // opa prints compile errors on stdout or stderr depending on the command.
        if (err) reject(new BundleError(`opa build of ${dir} failed: ${`${stderr}\n${stdout}`.trim() || err.message}`));
        else resolve();
      });
    });
    const bundle = loadBundle(out);
    return { ...bundle, source: dir };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
