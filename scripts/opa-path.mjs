// Where the pinned opa is: $OPA, else ./.tools/bin/opa (scripts/install-tools.sh), else PATH.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export function opaPath() {
  if (process.env.OPA) return process.env.OPA;
  const local = join(root, '.tools', 'bin', 'opa');
  return existsSync(local) ? local : 'opa';
}
