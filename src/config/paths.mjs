// Where the project's own files and the pinned opa are, for the service (src/, dist/) and
// for the policy scripts (scripts/*.mjs) alike: plain JavaScript so that both can import it.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project folder: two levels above this module in src/config/ and in dist/config/. */
export const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The Rego the shipped bundle is built from. */
export const SHIPPED_SOURCE = join(projectRoot, 'policies', 'mcp');

/** The policy bundle `npm run policy:build` writes and the service loads by default. */
export const SHIPPED_BUNDLE = join(projectRoot, 'policies', 'build', 'bundle.tar.gz');

/** The capabilities the shipped WASM build allows (opa-wasm's builtins). */
export const WASM_CAPABILITIES = join(projectRoot, 'policies', 'wasm-capabilities.json');

/** The PostgreSQL store's migrations (docs/stores.md). */
export const MIGRATIONS_DIR = join(projectRoot, 'migrations', 'postgres');

/** The config `serve` and `check` use without --config. */
export const QUICKSTART_CONFIG = join(projectRoot, 'examples', 'quickstart', 'config.yaml');

/**
 * The opa binary: $OPA, else the pinned ./.tools/bin/opa (scripts/install-tools.sh), else opa on PATH.
 * @returns {string}
 */
export function opaBinary() {
  if (process.env.OPA) return process.env.OPA;
  const local = join(projectRoot, '.tools', 'bin', 'opa');
  return existsSync(local) ? local : 'opa';
}
