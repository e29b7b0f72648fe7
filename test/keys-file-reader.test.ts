// The fast keys-file reader and field check against the YAML parser and the schema they
// stand in for: on any text the reader either gives up or reads what the YAML parser
// reads, and the check either defers or outputs what the schema outputs.
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parse as parseYaml, stringify } from 'yaml';
import { checkKeyEntry } from '../src/auth/key-entry.js';
import {
  buildKeyRegistry,
  type KeyRegistry,
  KeyRegistryLoad,
  KeysFileError,
  loadKeyRegistry,
  loadKeysFileInSteps,
  parseKeysFile,
} from '../src/auth/key-registry.js';
import { KeysFileReader, readJsonKeys } from '../src/auth/keys-file-reader.js';
import { ApiKeyEntrySchema, type ApiKeyEntry } from '../src/config/schema.js';
import { WholeKeysFileReader } from './helpers/keys-file-reader-whole.js';

/** What the YAML parser reads, or "error". */
function yamlReads(text: string): unknown {
  try {
    return parseYaml(text, { uniqueKeys: true });
  } catch {
    return 'error';
  }
}

/** The reader's result compared with the YAML parser's: equal, or the reader gave up. */
function agrees(text: string): { gaveUp: boolean; same: boolean; fast?: unknown; yaml?: unknown } {
  const fast = KeysFileReader.read(Buffer.from(text, 'utf8'));
  if (fast === undefined) return { gaveUp: true, same: true };
  const yaml = yamlReads(text) as { keys?: unknown } | 'error';
  const same =
    yaml !== 'error' &&
    yaml !== null &&
    typeof yaml === 'object' &&
    JSON.stringify(Object.keys(yaml)) === '["keys"]' &&
    JSON.stringify(yaml.keys) === JSON.stringify(fast);
  return { gaveUp: false, same, fast, yaml };
}

// Scalars that stress YAML's reading: indicators, comments, numbers, booleans, nulls, quotes, colons, spaces.
const tricky = fc.constantFrom(
  'alice',
  'tools:*',
  'tools:read_*',
  'resources:file://docs/*',
  '*',
  '-x',
  '- x',
  ':x',
  '?x',
  'a: b',
  'a:',
  'a #c',
  'a#c',
  '#c',
  '&a',
  '!t',
  '|',
  '>',
  '"q"',
  "'q'",
  "it's",
  'say "hi"',
  '123',
  '0x1f',
  '0o17',
  '1e5',
  '1.5',
  '.5',
  '.inf',
  '.nan',
  '~',
  'null',
  'Null',
  'true',
  'False',
  'TRUE',
  'yes',
  'on',
  '2027-01-01T00:00:00Z',
  '',
  ' ',
  'a b',
  'a  ',
  '[x]',
  '{x}',
  'x,y',
  'x]',
  '%x',
  '@x',
  '`x',
  'Ünï',
  'a\\b',
  '\\',
  'tab\tx',
  'cr\rx',
);
const hex = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'.split('')), minLength: 64, maxLength: 64 });
const digitsHex = fc.constantFrom('1'.repeat(64), '1e' + '2'.repeat(62), '0x' + 'a'.repeat(62), 'a'.repeat(64));
const text = fc.oneof(
  tricky,
  fc.string({ maxLength: 12 }),
  fc.string({ unit: fc.constantFrom('a', ':', ' ', '#', '-', '"', "'", '[', ']', ',', '*'), maxLength: 6 }),
);
const fieldName = fc.constantFrom(
  'id',
  'sha256',
  'name',
  'userId',
  'role',
  'permissions',
  'expiresAt',
  'disabled',
  'other',
  'Id',
  '__proto__',
);
const value = fc.oneof(
  text,
  hex,
  digitsHex,
  fc.boolean(),
  fc.array(text, { maxLength: 3 }),
  fc.integer(),
  fc.constant(null),
);
const likely = fc.record(
  {
    id: fc.oneof(fc.stringMatching(/^[a-zA-Z0-9_.:-]{1,20}$/), text),
    sha256: fc.oneof(hex, digitsHex),
    name: fc.oneof(
      fc.string({ unit: fc.constantFrom('a', ' ', 'b', '-', ':', '#'), minLength: 1, maxLength: 6 }),
      text,
    ),
    userId: fc.stringMatching(/^[a-z@.]{1,10}$/),
    permissions: fc.array(
      fc.oneof(fc.constantFrom('*', 'tools:*', 'tools:read_*', 'resources:file://docs/*', 'prompts:a b'), text),
      { maxLength: 3 },
    ),
    disabled: fc.boolean(),
  },
  { requiredKeys: [] },
);
const entry = fc.oneof(
  { arbitrary: likely, weight: 4 },
  { arbitrary: fc.dictionary(fieldName, value, { maxKeys: 8 }), weight: 1 },
);

test('for entries of any content, written by the YAML library in any style, the reader gives up or reads what the YAML parser reads', (t) => {
  let read = 0;
  fc.assert(
    fc.property(
      fc.array(entry, { maxLength: 4 }),
      fc.record({
        indentSeq: fc.boolean(),
        flow: fc.boolean(),
        quote: fc.constantFrom('PLAIN', 'QUOTE_DOUBLE', 'QUOTE_SINGLE'),
      }),
      (entries, style) => {
        const out = stringify(
          { keys: entries },
          {
            indentSeq: style.indentSeq,
            defaultStringType: style.quote as 'PLAIN',
            collectionStyle: style.flow ? 'any' : 'block',
            flowCollectionPadding: style.flow,
          },
        );
        const r = agrees(out);
        if (!r.gaveUp) read++;
        if (!r.same)
          throw new Error(`${JSON.stringify(out)}: reader ${JSON.stringify(r.fast)}, YAML ${JSON.stringify(r.yaml)}`);
      },
    ),
    { numRuns: 800 },
  );
  t.true(read > 80, `the reader read ${read} of 800 files itself`);
});

// Lines assembled from keys-file pieces, misindented and mixed: the reader must never read one differently.
const line = fc.oneof(
  fc.constantFrom(
    'keys:',
    'keys: []',
    'keys: # list',
    'other: 1',
    '---',
    '...',
    '',
    '#',
    '  # note',
    '- ',
    '-',
    'keys:x',
    ' keys:',
  ),
  fc
    .tuple(
      fc.constantFrom('', '  ', '    ', '      ', ' ', '   '),
      fc.constantFrom('- ', '', '- - ', '-  '),
      fieldName,
      fc.constantFrom(': ', ':', ' : ', ':  '),
      fc.oneof(
        text,
        hex,
        fc.constantFrom('[]', '[a, b]', '[\'tools:*\', "x"]', '[a,]', '[ ]', '[a', '| ', '>-', '&x a', '*x'),
      ),
    )
    .map(([ind, dash, k, sep, v]) => `${ind}${dash}${k}${sep}${v}`),
  fc
    .tuple(fc.constantFrom('  ', '    ', '      ', ''), fc.constantFrom('- ', '-'), text)
    .map(([ind, dash, v]) => `${ind}${dash}${v}`),
);

// Mostly well-formed entries in one of the two common indentations, with stray lines mixed in.
const shapedLines = fc.tuple(fc.constantFrom(0, 2), fc.constantFrom(0, 2)).chain(([seq, list]) => {
  const pad = (n: number) => ' '.repeat(n);
  const scalarText = fc.oneof(
    { arbitrary: fc.stringMatching(/^[a-z0-9:*_.-]{1,8}$/), weight: 3 },
    text,
    hex,
    fc.constantFrom('"x y"', "'it''s'", 'true', 'no', '[a, "b"]', '[]'),
  );
  const name = fc.oneof(
    { arbitrary: fc.constantFrom('id', 'sha256', 'name', 'userId', 'role', 'disabled'), weight: 6 },
    fieldName,
  );
  const field = fc.tuple(name, scalarText).map(([k, v]) => `${pad(seq + 2)}${k}: ${v}`);
  const start = fc.tuple(name, scalarText).map(([k, v]) => `${pad(seq)}- ${k}: ${v}`);
  const listHead = fieldName.map((k) => `${pad(seq + 2)}${k}:`);
  const item = scalarText.map((v) => `${pad(seq + 2 + list)}- ${v}`);
  return fc.array(
    fc.oneof(
      { arbitrary: start, weight: 3 },
      { arbitrary: field, weight: 4 },
      { arbitrary: listHead, weight: 1 },
      { arbitrary: item, weight: 2 },
      { arbitrary: line, weight: 1 },
    ),
    { minLength: 1, maxLength: 8 },
  );
});

test('for lines of keys-file pieces in any order and indentation, the reader gives up or reads what the YAML parser reads', (t) => {
  let read = 0;
  fc.assert(
    fc.property(
      fc.oneof(
        { arbitrary: fc.array(line, { minLength: 1, maxLength: 12 }), weight: 1 },
        { arbitrary: shapedLines, weight: 3 },
      ),
      fc.boolean(),
      (lines, finalNewline) => {
        const doc = ['keys:', ...lines].join('\n') + (finalNewline ? '\n' : '');
        for (const text of [doc, lines.join('\n')]) {
          const r = agrees(text);
          if (!r.gaveUp) read++;
          if (!r.same)
            throw new Error(
              `${JSON.stringify(text)}: reader ${JSON.stringify(r.fast)}, YAML ${JSON.stringify(r.yaml)}`,
            );
        }
      },
    ),
    { numRuns: 3000 },
  );
  // Not vacuous: the reader takes some of these files itself (about 100 of 3,000 in a typical run;
  // random mixes, so the bound leaves room for an unlucky draw).
  t.true(read > 30, `the reader read ${read} files itself`);
});

test('the layouts keys files are written in are read by the reader itself', (t) => {
  const hash = 'ab'.repeat(32);
  const nodeStyle = `# keys\nkeys:\n  - id: a\n    sha256: ${hash}\n    permissions:\n      - tools:*\n      - "*"\n    disabled: false\n\n  - id: b # second\n    sha256: '${hash.toUpperCase()}'\n    permissions: ['tools:x', resources:file://*]\n`;
  const helmStyle = `keys:\n- disabled: true\n  id: a\n  permissions:\n  - '*'\n  sha256: ${hash}\n  userId: alice\n`;
  for (const text of [nodeStyle, helmStyle]) {
    const fast = KeysFileReader.read(Buffer.from(text));
    t.truthy(fast, text);
    t.deepEqual(fast, (parseYaml(text) as { keys: unknown }).keys);
  }
});

test('a JSON keys file is read with JSON.parse, and a member named twice is left to the YAML parser, which refuses it', (t) => {
  const e = { id: 'a', sha256: 'a'.repeat(64) };
  t.deepEqual(readJsonKeys(JSON.stringify({ keys: [e] }, null, 2)), [e]);
  t.is(
    readJsonKeys(`{"keys": [{"id": "a", "i\\u0064": "b", "sha256": "${'a'.repeat(64)}"}]}`),
    undefined,
    'an escaped spelling of the same name is a duplicate',
  );
  t.is(readJsonKeys('{"keys": [], "keys": []}'), undefined);
  t.is(readJsonKeys('{"keys": [], "other": 1}'), undefined);
  t.is(readJsonKeys('{"keys": {}}'), undefined);
  const err = t.throws(() =>
    parseKeysFile(`{"keys": [{"id": "a", "id": "b", "sha256": "${'a'.repeat(64)}"}]}`, 'keys.json'),
  ) as KeysFileError;
  t.true(err instanceof KeysFileError);
});

test('the field check outputs what the schema outputs, or leaves the entry to the schema', (t) => {
  const grants = fc.array(
    fc.oneof(
      { arbitrary: fc.constantFrom('*', 'tools:a', 'prompts:*'), weight: 6 },
      fc.constantFrom('*', 'tools:*', 'tools:', 'prompts:x', 'resources:a:b', 'tool:x', ' *', '*\n'),
      fc.string(),
    ),
    { maxLength: 3 },
  );
  const field = fc
    .record(
      {
        id: fc.oneof(
          { arbitrary: fc.stringMatching(/^[a-zA-Z0-9_.:-]{1,64}$/), weight: 8 },
          fc.string(),
          fc.integer(),
          fc.constant('a'.repeat(65)),
        ),
        sha256: fc.oneof({ arbitrary: hex, weight: 8 }, fc.string(), digitsHex, fc.constant('g'.repeat(64))),
        name: fc.oneof({ arbitrary: fc.string(), weight: 4 }, fc.constant(1)),
        userId: fc.string(),
        role: fc.string(),
        permissions: fc.oneof({ arbitrary: grants, weight: 4 }, fc.constant('tools:*')),
        expiresAt: fc.oneof(
          {
            arbitrary: fc
              .date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true })
              .map((d) => d.toISOString()),
            weight: 4,
          },
          fc.constantFrom('2027-01-01T00:00:00Z', '2027-01-01', 'soon', '', '1', 'Jan 1 2027', '2027-02-30T00:00:00Z'),
          fc.string(),
          fc.date({ noInvalidDate: true }),
        ),
        disabled: fc.oneof({ arbitrary: fc.boolean(), weight: 4 }, fc.constant('true')),
        extra: fc.string(),
      },
      { requiredKeys: ['id', 'sha256'] },
    )
    .map((r) => {
      // An unknown field rarely, so that most entries reach the comparison of outputs.
      if (r.extra !== undefined && r.extra.length % 4 !== 0) delete r.extra;
      return r;
    });
  let checked = 0;
  fc.assert(
    fc.property(field, (raw) => {
      const fast = checkKeyEntry(raw);
      const schema = ApiKeyEntrySchema.safeParse(raw);
      if (fast === undefined) return;
      checked++;
      if (!schema.success) throw new Error(`${JSON.stringify(raw)}: the check accepted what the schema refuses`);
      t.deepEqual(fast, schema.data);
    }),
    { numRuns: 5000 },
  );
  t.true(checked > 100, `${checked} entries passed the check`);
});

test('a reload in steps builds the same registry as a load in one go, and refuses the same duplicates', async (t) => {
  const hash = (i: number) => 'f' + i.toString(16).padStart(63, '0');
  const lines = ['keys:'];
  for (let i = 0; i < 45_000; i++)
    lines.push(`  - id: k${i}`, `    sha256: ${hash(i)}`, `    permissions: ['tools:t${i % 7}']`);
  const dir = mkdtempSync(join(tmpdir(), 'keys-steps-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'keys.yaml');
  writeFileSync(file, lines.join('\n'));
  const digest = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
  let turns = 0;
  const ticker = setInterval(() => turns++, 0);
  const stepped = await loadKeysFileInSteps(file, [], 'keys.yaml', digest(file));
  clearInterval(ticker);
  t.is(stepped.size, 45_000);
  t.is(stepped.lookup(hash(44_999))?.id, 'k44999');
  t.deepEqual(stepped.lookup(hash(8))?.principal.permissions, ['tools:t1']);
  t.is(
    stepped.lookup(hash(1))?.principal.permissions,
    stepped.lookup(hash(8))?.principal.permissions,
    'equal grant lists are one frozen list',
  );
  t.true(turns > 0, 'timers ran while the registry was built');
  writeFileSync(file, `${lines.join('\n')}\n  - id: again\n    sha256: ${hash(3)}\n`);
  const err = await loadKeysFileInSteps(file, [], 'keys.yaml', digest(file)).catch((e: unknown) => e);
  t.true(err instanceof KeysFileError);
  t.deepEqual((err as KeysFileError).problems, [
    'keys.45000.sha256: the same key is registered twice (also at keys.3)',
  ]);
});

test("duplicate ids and hashes are named with where each was first seen, the config's entries after the file's", (t) => {
  const h = (c: string) => c.repeat(64);
  const file = `keys:\n  - id: a\n    sha256: ${h('a')}\n  - id: b\n    sha256: ${h('a')}\n  - id: b\n    sha256: ${h('c')}\n  - id: a\n    sha256: ${h('d')}\n`;
  const err = t.throws(() =>
    loadKeyRegistry(Buffer.from(file), [{ id: 'c', sha256: h('d'), permissions: [], disabled: false }], 'keys.yaml'),
  ) as KeysFileError;
  t.deepEqual(err.problems, [
    'keys.1.sha256: the same key is registered twice (also at keys.0)',
    'keys.2.id: duplicate key id "b" (also at keys.1)',
    'keys.3.id: duplicate key id "a" (also at keys.0)',
    'apiKeys.keys.0 (config or MCP_API_KEYS).sha256: the same key is registered twice (also at keys.3)',
  ]);
});

/** `buf` cut at these relative positions (or into single bytes): chunks that end anywhere, each in a buffer of its own. */
function chunksOf(buf: Buffer, cuts: number[] | 'bytes'): Buffer[] {
  if (cuts === 'bytes') return [...buf].map((b) => Buffer.from([b]));
  const at = [...new Set(cuts.map((c) => Math.floor(c * buf.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of [...at, buf.length]) {
    out.push(Buffer.from(buf.subarray(from, p)));
    from = p;
  }
  return out;
}

const cuts = fc.oneof(
  { arbitrary: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 }), weight: 5 },
  { arbitrary: fc.constant('bytes' as const), weight: 1 },
);

/** Comment lines with two-, three- and four-byte UTF-8 characters, so that cuts fall inside them. */
const wide = fc.constantFrom('# clé ✓ 𝄞', '  # ключ', '    # 鍵 — note', '#é');

/** A keys file as the YAML library or a person writes it, with multi-byte comments mixed in. */
const keysText = fc.oneof(
  fc
    .tuple(fc.array(entry, { maxLength: 4 }), fc.boolean(), fc.array(fc.tuple(fc.nat(), wide), { maxLength: 3 }))
    .map(([entries, indentSeq, comments]) => {
      const lines = stringify({ keys: entries }, { indentSeq }).split('\n');
      for (const [at, c] of comments) lines.splice(at % (lines.length + 1), 0, c);
      return lines.join('\n');
    }),
  fc
    .tuple(shapedLines, fc.array(fc.tuple(fc.nat(), wide), { maxLength: 3 }), fc.boolean())
    .map(([lines, comments, nl]) => {
      const all = ['keys:', ...lines];
      for (const [at, c] of comments) all.splice(at % (all.length + 1), 0, c);
      return all.join('\n') + (nl ? '\n' : '');
    }),
);

test('the streaming reader reads exactly what the whole-file reader read, wherever the chunks end (inside a line, inside a UTF-8 character)', (t) => {
  let read = 0;
  let insideCharacter = 0;
  fc.assert(
    fc.property(keysText, cuts, (text, at) => {
      const buf = Buffer.from(text, 'utf8');
      const whole = WholeKeysFileReader.read(buf);
      const entries: unknown[] = [];
      const r = new KeysFileReader((e) => entries.push(e));
      const chunks = chunksOf(buf, at);
      let offset = 0;
      for (const c of chunks) {
        offset += c.length;
        // A cut just before a continuation byte: inside a multi-byte character.
        if (offset < buf.length && (buf[offset]! & 0xc0) === 0x80) insideCharacter++;
        r.push(c);
        // The reader keeps nothing of a chunk by reference: the caller may reuse its buffer.
        c.fill(0x78);
      }
      const streamed = r.end() ? entries : undefined;
      if (whole !== undefined) read++;
      if (JSON.stringify(streamed) !== JSON.stringify(whole))
        throw new Error(
          `${JSON.stringify(text)}: whole ${JSON.stringify(whole)}, streamed ${JSON.stringify(streamed)}`,
        );
    }),
    { numRuns: 3000 },
  );
  t.true(read > 100, `the readers read ${read} files themselves`);
  t.true(insideCharacter > 100, `${insideCharacter} cuts fell inside a multi-byte character`);
});

/** A registry's contents, key by key, or the problems it was refused with. */
function outcome(load: () => KeyRegistry, hashes: string[]): unknown {
  let reg: KeyRegistry;
  try {
    reg = load();
  } catch (err) {
    if (err instanceof KeysFileError) return { problems: err.problems };
    throw err;
  }
  return {
    size: reg.size,
    records: hashes.map((h) => {
      const r = reg.lookup(h);
      return r && { ...r, byId: reg.byId(r.id)?.at };
    }),
  };
}

test('a keys file read in chunks builds exactly the registry the whole-file reader built, and is refused with the same messages', (t) => {
  const ids = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h');
  const hashes = ['1', '2', '3', '4', '5', '6', '7', '8', '9'].map((c) => c.repeat(64));
  const good = fc.record(
    {
      id: ids,
      sha256: fc.constantFrom(...hashes, hashes[0]!.toUpperCase()),
      name: fc.constantFrom('key one', 'ключ'),
      userId: fc.constantFrom('alice', 'bob'),
      role: fc.constantFrom('dev', 'ops'),
      permissions: fc.array(fc.constantFrom('*', 'tools:read_*', 'resources:file://docs/*'), { maxLength: 3 }),
      expiresAt: fc.constantFrom('2030-01-01T00:00:00Z', '2030-06-01T12:00:00.000Z'),
      disabled: fc.boolean(),
    },
    { requiredKeys: ['id', 'sha256'] },
  );
  // Now and then an entry the schema refuses: no hash, a grant outside the grammar, an unknown field.
  const bad = fc.constantFrom(
    { id: 'x' },
    { id: 'y', sha256: hashes[8], permissions: ['tool:x'] },
    { id: 'z', nope: 1 },
  );
  const entries = fc.array(fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: bad, weight: 1 }), { maxLength: 8 });
  const inline = fc.array(
    fc.record({ id: ids, sha256: fc.constantFrom(...hashes) }).map((e) => ({ ...e, permissions: [], disabled: false })),
    { maxLength: 2 },
  );
  let built = 0;
  let refused = 0;
  fc.assert(
    fc.property(entries, fc.boolean(), inline, cuts, (list, indentSeq, config, at) => {
      const buf = Buffer.from(stringify({ keys: list }, { indentSeq }), 'utf8');
      // The whole-file reader's way: its entries checked field by field, or else the YAML parser and the schema.
      const reference = () => {
        const raw = WholeKeysFileReader.read(buf);
        const checked = raw?.map((e) => checkKeyEntry(e));
        const fast = checked?.every((e) => e !== undefined) ? (checked as ApiKeyEntry[]) : undefined;
        return buildKeyRegistry(fast ?? parseKeysFile(buf, 'keys.yaml'), config, 'keys.yaml');
      };
      const streamed = () => {
        const load = new KeyRegistryLoad(config, 'keys.yaml');
        for (const c of chunksOf(buf, at)) load.push(c);
        const steps = load.finish(() => buf);
        for (;;) {
          const r = steps.next();
          if (r.done) return r.value;
        }
      };
      const want = outcome(reference, hashes);
      t.deepEqual(outcome(streamed, hashes), want);
      if ((want as { problems?: unknown }).problems) refused++;
      else built++;
    }),
    { numRuns: 1500 },
  );
  t.true(built > 100 && refused > 100, `${built} built, ${refused} refused`);
});
