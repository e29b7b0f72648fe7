// Where the benchmark finds the project, its tools and its scratch folder.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Generated per run, gitignored: keys, tokens' data files, configs, logs. */
export const out = join(root, 'bench', 'out');
const bin = join(root, '.tools', 'bin');
export const tools = {
  ghz: join(bin, 'ghz'),
  oep: join(bin, 'opa-envoy-plugin'),
  opa: join(bin, 'opa'),
  /** bench/loadgen, built per checkout (scripts/install-tools.sh loadgen). */
  loadgen: join(root, '.build', 'bin', 'loadgen'),
};
export const shippedBundle = join(root, 'policies', 'build', 'bundle.tar.gz');
// As the container image runs it (Dockerfile ENTRYPOINT), young-generation size included.
export const mcpAuthzCli = ['node', '--max-semi-space-size=4', join(root, 'bin', 'mcp-authz.js')];
