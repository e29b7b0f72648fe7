import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from './paths.mjs';

let cached: string | undefined;

/** The package's version (package.json): --version, the logs, build_info and the traces' service.version. */
export function packageVersion(): string {
  cached ??= (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
  return cached;
}
