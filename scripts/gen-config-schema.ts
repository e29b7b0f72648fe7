// Generates schema/config.schema.json and schema/keys.schema.json — JSON Schemas of the config
// file and of the API keys file, from the same zod schemas the service validates with — for
// editors: a `# yaml-language-server: $schema=…` line at the top of a YAML file gives
// completion, hover docs and errors as you type (VS Code's YAML extension, Neovim's yamlls, …).
// JSON Schema cannot say everything the service checks (cross-field rules such as "an endpoint's
// owner needs authentication"): `mcp-authz serve --check-config` stays the authority.
// Run: npm run gen:config-schema. A test fails when the committed files are out of date.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { KeysFileSchema } from '../src/auth/key-registry.js';
import { ConfigSchema } from '../src/config/schema.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CONFIG_SCHEMA_FILE = join(root, 'schema', 'config.schema.json');
export const KEYS_SCHEMA_FILE = join(root, 'schema', 'keys.schema.json');

type Json = Record<string, unknown>;

const toSchema = (s: z.ZodType): Json => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Json;

export function buildConfigSchema(): Json {
  const schema = toSchema(ConfigSchema);
  const props = schema.properties as Record<string, Json>;
  // What zod checks in code, spelled out: an endpoint matches by path prefix, host, or both.
  const match = ((props.endpoints!.items as Json).properties as Record<string, Json>).match!;
  match.anyOf = [{ required: ['pathPrefix'] }, { required: ['host'] }];
  match.description = 'set pathPrefix, host, or both';
  return {
    $schema: schema.$schema,
    title: 'mcp-authz configuration',
    description:
      'The file `mcp-authz serve --config` reads (README "Configuration"). Relative paths resolve against its folder. `mcp-authz serve --check-config` checks what JSON Schema cannot.',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  };
}

export function buildKeysSchema(): Json {
  const schema = toSchema(KeysFileSchema);
  return {
    $schema: schema.$schema,
    title: 'mcp-authz API keys file',
    description: 'apiKeys.file: hashes only (mcp-authz keys create prints an entry). Reloaded on change.',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  };
}

export const render = (schema: Json): string => JSON.stringify(schema, null, 2) + '\n';

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  mkdirSync(dirname(CONFIG_SCHEMA_FILE), { recursive: true });
  writeFileSync(CONFIG_SCHEMA_FILE, render(buildConfigSchema()));
  writeFileSync(KEYS_SCHEMA_FILE, render(buildKeysSchema()));
  process.stdout.write(`wrote ${CONFIG_SCHEMA_FILE} and ${KEYS_SCHEMA_FILE}\n`);
}
