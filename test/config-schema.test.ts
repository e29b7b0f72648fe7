// The JSON Schemas for editors (schema/): generated from the zod schemas the service validates
// with, up to date, named by every example file, and agreeing with the service on examples and
// on mistakes.
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import {
  buildConfigSchema,
  buildKeysSchema,
  CONFIG_SCHEMA_FILE,
  KEYS_SCHEMA_FILE,
  render,
} from '../scripts/gen-config-schema.js';
import { parseKeysFile } from '../src/auth/key-registry.js';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { ROOT } from './helpers/cli.js';

const ajv = new Ajv2020({ allErrors: true, strict: false, logger: false });
const validConfig = ajv.compile(JSON.parse(readFileSync(CONFIG_SCHEMA_FILE, 'utf8')));
const validKeys = ajv.compile(JSON.parse(readFileSync(KEYS_SCHEMA_FILE, 'utf8')));

const examples = readdirSync(join(ROOT, 'examples')).flatMap((d) =>
  ['config.yaml', 'keys.yaml'].map((f) => join(ROOT, 'examples', d, f)).filter(existsSync),
);

test('the committed schemas are what npm run gen:config-schema writes', (t) => {
  t.is(readFileSync(CONFIG_SCHEMA_FILE, 'utf8'), render(buildConfigSchema()));
  t.is(readFileSync(KEYS_SCHEMA_FILE, 'utf8'), render(buildKeysSchema()));
});

test('every example config and keys file names its schema on its first line, and the schema accepts it as the service does', (t) => {
  t.true(examples.length >= 5);
  for (const file of examples) {
    const text = readFileSync(file, 'utf8');
    const m = /^# yaml-language-server: \$schema=(\S+)\n/.exec(text);
    t.truthy(m, `${file} starts with the yaml-language-server line`);
    const schemaFile = resolve(dirname(file), m![1]!);
    t.is(schemaFile, file.endsWith('keys.yaml') ? KEYS_SCHEMA_FILE : CONFIG_SCHEMA_FILE, file);
    const doc = parseYaml(text);
    if (file.endsWith('keys.yaml')) {
      t.true(validKeys(doc), `${file}: ${JSON.stringify(validKeys.errors)}`);
      t.notThrows(() => parseKeysFile(text, file));
    } else {
      t.true(validConfig(doc), `${file}: ${JSON.stringify(validConfig.errors)}`);
      t.notThrows(() => validateConfig(doc, file, dirname(file), {}));
    }
  }
});

test('a mistake the service refuses, the schema refuses at the same place', (t) => {
  const base = { endpoints: [{ name: 'files', match: { pathPrefix: '/mcp/files' } }] };
  const cases: [unknown, string][] = [
    [{ ...base, listen: { grpc: 'nowhere' } }, '/listen/grpc'],
    [{ endpoints: [{ name: 'bad name!', match: { pathPrefix: '/x' } }] }, '/endpoints/0/name'],
    [{ endpoints: [{ name: 'files', match: {} }] }, '/endpoints/0/match'],
    [
      { ...base, oauth: { issuers: [{ issuer: 'https://idp.example.com', algorithms: ['HS256'] }] } },
      '/oauth/issuers/0/algorithms/0',
    ],
    [{ ...base, bogus: 1 }, ''],
    [{ ...base, rateLimit: { perClient: { rps: -1 } } }, '/rateLimit/perClient/rps'],
  ];
  for (const [doc, path] of cases) {
    t.throws(() => validateConfig(doc, 'x', '/'), { instanceOf: ConfigError }, JSON.stringify(doc));
    t.false(validConfig(doc), JSON.stringify(doc));
    t.true(
      validConfig.errors!.some((e) => e.instancePath === path),
      `${path} in ${JSON.stringify(validConfig.errors)}`,
    );
  }
  t.false(validKeys({ keys: [{ id: 'a', sha256: 'not-hex' }] }));
  t.true(validKeys.errors!.some((e) => e.instancePath === '/keys/0/sha256'));
});
