#!/usr/bin/env node
// Runs the compiled CLI (npm run build). From a source checkout without dist/, run
// `npm run build` first, or `node --import tsx src/cli/bin.ts`.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'cli', 'bin.js');
if (!existsSync(compiled)) {
  process.stderr.write('mcp-authz: dist/ is missing; run `npm run build` (or `npm run setup`) first\n');
  process.exit(1);
}
await import(compiled);
