// The SQL view: what PostgreSQL's own parser reads in a text (statement kinds, INTO, locking,
// functions, operators, types, node kinds), the texts that cannot be read one way only, the
// bounds that keep the WASM parser's stack safe, and the portable subset for other dialects.
// test/argument-sql-postgres.test.ts proves the rule built on it against a real PostgreSQL.
import test from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import fc from 'fast-check';
import { loadPostgresParser } from '../src/request/sql-parser.js';
import { portableView } from '../src/request/sql-portable.js';
import { SQL_MAX_LENGTH, sqlView, type SqlReading } from '../src/request/sql-view.js';

test.before(async () => {
  await loadPostgresParser();
});

const read = (q: string, portable = false): SqlReading => {
  const v = sqlView(q, portable);
  if (!v.ok) throw new Error(`${q}: ${v.why}`);
  return v;
};

test('the view lists the statement kinds, INTO, locking, functions, operators, types and node kinds', (t) => {
  t.deepEqual(read("SELECT lower(owner), count(*) FROM accounts a WHERE a.id = 1 AND note LIKE 'x%' GROUP BY 1"), {
    ok: true,
    statements: ['SelectStmt'],
    into: false,
    locking: [],
    functions: ['count', 'lower'],
    operators: ['=', '~~'],
    types: [],
    nodes: ['A_Const', 'A_Expr', 'BoolExpr', 'ColumnRef', 'FuncCall', 'RangeVar', 'ResTarget', 'SelectStmt', 'String'],
  });
  const v = read(
    'WITH d AS (DELETE FROM t RETURNING *) SELECT x::text, CAST(y AS regclass), pg_catalog.upper(z), public.f(1) INTO s FROM d FOR SHARE; SET x = 1',
  );
  t.deepEqual(v.statements, ['SelectStmt', 'VariableSetStmt']);
  t.true(v.into);
  t.deepEqual(v.locking, ['share']);
  t.deepEqual(v.functions, ['public.f', 'upper']);
  t.deepEqual(v.types, ['regclass', 'text']);
  t.true(v.nodes.includes('DeleteStmt'));
  t.deepEqual(read('SELECT * FROM t FOR UPDATE OF t NOWAIT').locking, ['update']);
  t.deepEqual(read('SELECT * FROM (SELECT * FROM t FOR KEY SHARE) s FOR NO KEY UPDATE').locking, [
    'key_share',
    'no_key_update',
  ]);
  t.deepEqual(read('SELECT x FROM t ORDER BY x USING <, y = ANY (SELECT 1)').operators, ['<', '=']);
  t.deepEqual(read('SELECT 1 OPERATOR(public.+) 2').operators, ['public.+']);
  t.deepEqual(read('SELECT a BETWEEN 1 AND 2, b NOT LIKE c').operators, ['!~~', 'BETWEEN']);
  t.deepEqual(read("SELECT * FROM json_to_record('{}') AS r(a int, b text)").types, ['int4', 'text']);
  t.deepEqual(read("SELECT EXTRACT(year FROM now()), TRIM(x), a AT TIME ZONE 'utc'").functions, [
    'btrim',
    'extract',
    'now',
    'timezone',
  ]);
  // Comments and strings are not code: PostgreSQL reads the comment away and the string whole.
  t.deepEqual(read('SELECT 1 -- ; DROP TABLE t\n').statements, ['SelectStmt']);
  t.deepEqual(read("SELECT $$; DELETE FROM t$$, '/* x */'").nodes, ['A_Const', 'ResTarget', 'SelectStmt']);
  t.deepEqual(read('').statements, []);
  t.deepEqual(read(' /* nothing */ ').statements, []);
});

test('a name is read as PostgreSQL resolves it, however it is spelled', (t) => {
  const spellings = (name: string) => {
    const last = name.length - 1;
    const hex = name.charCodeAt(last).toString(16).padStart(4, '0');
    return [
      name,
      name.toUpperCase(),
      `"${name}"`,
      `U&"${name.slice(0, last)}\\${hex}"`,
      `u&"${name.slice(0, last)}\\+0000${hex.slice(2)}"`,
      `U&"${name.slice(0, last)}!${hex}" UESCAPE '!'`,
      `pg_catalog.${name}`,
      `PG_CATALOG."${name}"`,
    ];
  };
  fc.assert(
    fc.property(
      fc.constantFrom('pg_read_file', 'lo_import', 'set_config', 'lower', 'nextval', 'pg_sleep'),
      fc.nat(7),
      fc.constantFrom(' ', '\n', '/**/', '  '),
      (name, i, gap) => {
        const v = read(`SELECT${gap}${spellings(name)[i]}${gap}('x')`);
        return v.functions.length === 1 && v.functions[0] === name;
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('texts that cannot be read one way only are refused, naming why', (t) => {
  const cases: [unknown, string][] = [
    [7, 'not_a_string'],
    [null, 'not_a_string'],
    ['x'.repeat(SQL_MAX_LENGTH + 1), 'too_long'],
    ['SELECT ' + Array.from({ length: 1100 }, (_, i) => `c${i}`).join(', '), 'too_complex'],
    ['SELECT ' + '('.repeat(65) + '1' + ')'.repeat(65), 'too_complex'],
    ['SELECT 1\u0000; DROP TABLE t', 'nul'],
    ['SELECT \ud800', 'unpaired_surrogate'],
    ['SELECT 1into stolen FROM accounts', 'does_not_parse'],
    ['SELECT 1.0into stolen', 'does_not_parse'],
    ['SELECT 1e1into stolen', 'does_not_parse'],
    ['SELECT 1 BACKUP DATABASE master', 'does_not_parse'],
    ["SELECT 'unterminated", 'does_not_parse'],
    ['SELECT 0x1F', 'number_form'],
    ['SELECT 0o17, 0b101', 'number_form'],
    ['SELECT 1_000', 'number_form'],
    ['SELECT 1.5e1_0', 'number_form'],
    ["SELECT * FROM t WHERE a = 'x\\' OR true", 'backslash_in_string'],
    ["SELECT N'\\'", 'backslash_in_string'],
    ['SELECT U&"a" UESCAPE \'\\\'', 'backslash_in_string'],
  ];
  for (const [q, why] of cases) t.deepEqual(sqlView(q), { ok: false, why }, String(q).slice(0, 60));
  // Backslashes where every setting reads them alike, and numbers in the forms every version reads.
  t.true(sqlView("SELECT E'a\\'b', U&'d\\0061t', $$a\\b$$, \"a\\b\", 1.5e10, .5, 1., 10 -- \\").ok);
  t.true(sqlView("SELECT col1_x, t0b, a.b1_2 FROM t WHERE c = '0x1F' AND d = '1_000'").ok);
});

test('the deepest texts within the bounds are read with optimized WASM, and a failed instance is replaced', async (t) => {
  const fixture = join(import.meta.dirname, 'fixtures', 'sql-parser-limits.ts');
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-liftoff', '--import', 'tsx', fixture], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let s = '';
    child.stdout.on('data', (d) => (s += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(s) : reject(new Error(`fixture exited ${code}: ${s}`))));
  });
  const r = JSON.parse(out) as {
    deepest: Record<string, { n: number; why: string }>;
    replacedWithinBounds: number;
    overflow: unknown;
    unavailable: unknown;
    replacements: number;
    after: SqlReading;
  };
  for (const [kind, { n, why }] of Object.entries(r.deepest)) {
    t.true(n >= 100, `${kind}: only ${n} levels fit the bounds`);
    t.true(why === 'read' || why === 'does_not_parse', `${kind} at ${n} levels: ${why}`);
  }
  t.is(r.replacedWithinBounds, 0, 'no text within the bounds failed the parser');
  t.deepEqual(r.overflow, { ok: false, why: 'parser_unavailable' });
  t.deepEqual(r.unavailable, { ok: false, why: 'parser_unavailable' }, 'nothing is read by the failed instance');
  t.is(r.replacements, 1);
  t.deepEqual(r.after.functions, ['lower']);
  t.deepEqual(r.after.locking, ['share']);
});

// ---------------------------------------------------------------- the portable subset

test('the portable subset accepts plain queries and refuses what some reader reads otherwise', (t) => {
  for (const q of [
    'SELECT id, name FROM users',
    "select distinct u.id from app.users where u.name like 'a%' and not (age < 18 or age > 99) order by u.id desc, name",
    "SELECT count(*), max(total) FROM orders WHERE status IN ('paid', 'sent') AND total BETWEEN 1 AND 2.5 GROUP BY status",
    "SELECT * FROM t WHERE note = 'it''s' AND x IS NOT NULL AND y <> z",
  ])
    t.deepEqual(portableView(q), { ok: true }, q);
  for (const q of [
    "SELECT 1 BACKUP DATABASE master TO DISK = 'x'",
    'SELECT a FROM t RECONFIGURE',
    'SELECT a FROM t WHERE b = 1 DBCC',
    'SELECT a b FROM t',
    'SELECT a FROM t x',
    'SELECT 1into FROM t',
    'SELECT a FROM t WHERE b = 1e5',
    'SELECT a FROM t WHERE b = 0x1F',
    "SELECT a FROM t WHERE b = 'x\\'",
    'SELECT a FROM t WHERE b = "x"',
    'SELECT `a` FROM t',
    'SELECT [a] FROM t',
    'SELECT a FROM t; DROP TABLE t',
    'SELECT a FROM t -- x',
    'SELECT a FROM t # x',
    'SELECT a FROM t /* x */',
    "SELECT a FROM t WHERE b = N'x'",
    "SELECT a FROM t WHERE b = _utf8'x'",
    "SELECT a FROM t WHERE b = 'a' 'b'",
    'SELECT a FROM t WHERE b <=> c',
    'SELECT a FROM t WHERE b = @v',
    'SELECT lower(a) FROM t',
    'SELECT a FROM t FOR UPDATE',
    'SELECT a INTO b FROM t',
    'SELECT a FROM t LIMIT 5',
    'SELECT a FROM t UNION SELECT b FROM u',
    'SELECT backup FROM t',
    'SELECT a FROM go',
    'SELECT a\u00a0FROM t',
    "SELECT a FROM t WHERE b = 'caf\u00e9'",
    'SELECT a FROM t WHERE b = -1',
    'SELECT a FROM',
    '',
  ])
    t.deepEqual(portableView(q), { ok: false, why: 'not_portable' }, q);
});

// Pieces of SQL, portable and not, joined at random.
const piece = fc.constantFrom(
  'SELECT',
  'select',
  'DISTINCT',
  'FROM',
  'WHERE',
  'AND',
  'OR',
  'NOT',
  'IS',
  'NULL',
  'IN',
  'LIKE',
  'BETWEEN',
  'GROUP BY',
  'ORDER BY',
  'ASC',
  'DESC',
  'count(*)',
  'sum(x)',
  'max(total)',
  'a',
  'b',
  'users',
  'app.users',
  'u.id',
  '*',
  ',',
  '(',
  ')',
  '=',
  '<>',
  '<',
  '>=',
  "'x'",
  "'it''s'",
  '1',
  '2.5',
  'INTO',
  'FOR',
  'UPDATE',
  'SHARE',
  'BACKUP',
  'RECONFIGURE',
  'lower(a)',
  'pg_sleep(1)',
  ';',
  '--',
  '/*',
  '*/',
  '#',
  '"q"',
  '`q`',
  '[q]',
  '@v',
  '$1',
  '\\',
  "N'x'",
  '1e5',
  '0x1',
  '1into',
  "x'",
  'UNION',
  'LIMIT',
  'TOP',
  '\u00a0',
  '\u212a',
);
const gapPiece = fc.constantFrom(' ', ' ', '\n', '\t', '');

// Queries of the portable grammar, some with a hostile piece put in at random.
const pWord = fc.constantFrom('a', 'b', 'users', 'u.id', 'app.users', 'total', 'x1', 'backup', 'go', 'select');
const pLit = fc.constantFrom("'x'", "'it''s'", '1', '2.5', "'a%'", '0');
const pPred = fc.oneof(
  fc.tuple(pWord, fc.constantFrom('=', '<>', '<', '>', '<=', '>='), fc.oneof(pLit, pWord)).map((xs) => xs.join(' ')),
  fc.tuple(pWord, fc.constantFrom('IS NULL', 'IS NOT NULL')).map((xs) => xs.join(' ')),
  fc
    .tuple(pWord, fc.constantFrom('IN', 'NOT IN'), fc.array(pLit, { minLength: 1, maxLength: 3 }))
    .map(([w, op, ls]) => `${w} ${op} (${ls.join(', ')})`),
  fc.tuple(pWord, fc.constantFrom('LIKE', 'NOT LIKE'), pLit).map((xs) => xs.join(' ')),
  fc.tuple(pWord, pLit, pLit).map(([w, a, b]) => `${w} BETWEEN ${a} AND ${b}`),
);
const pCond = fc
  .array(fc.tuple(fc.constantFrom('', 'NOT ', '('), pPred), { minLength: 1, maxLength: 3 })
  .map((ps) => ps.map(([pre, p]) => (pre === '(' ? `(${p})` : pre + p)).join(' AND '));
const pQuery = fc
  .tuple(
    fc.constantFrom('', 'DISTINCT '),
    fc.oneof(
      fc.constant('*'),
      fc
        .array(fc.oneof(pWord, fc.constantFrom('count(*)', 'sum(total)', 'max(a)')), { minLength: 1, maxLength: 3 })
        .map((xs) => xs.join(', ')),
    ),
    pWord,
    fc.option(pCond, { nil: undefined }),
    fc.constantFrom('', ' GROUP BY a', ' ORDER BY a DESC, b', ' ORDER BY u.id ASC'),
  )
  .map(([d, items, from, where, tail]) => `SELECT ${d}${items} FROM ${from}${where ? ` WHERE ${where}` : ''}${tail}`);
const mutated = fc
  .tuple(pQuery, fc.option(fc.tuple(piece, fc.nat()), { freq: 3, nil: undefined }), gapPiece)
  .map(([q, m, g]) => {
    if (m === undefined) return q.replaceAll(' ', g === '' ? ' ' : g);
    const words = q.split(' ');
    words.splice(m[1] % (words.length + 1), 0, m[0]);
    return words.join(' ');
  });

test('property: what the portable subset accepts, PostgreSQL reads as one plain SELECT', (t) => {
  let accepted = 0;
  let refused = 0;
  fc.assert(
    fc.property(mutated, (q) => {
      if (!portableView(q).ok) {
        refused++;
        return true;
      }
      accepted++;
      const v = sqlView(q, true);
      if (!v.ok) return false;
      if (
        v.statements.length !== 1 ||
        v.statements[0] !== 'SelectStmt' ||
        v.into ||
        v.locking.length > 0 ||
        v.types.length > 0
      )
        return false;
      if (!v.functions.every((f) => ['count', 'sum', 'min', 'max', 'avg'].includes(f))) return false;
      if (
        !v.operators.every((o) => ['=', '<>', '<', '>', '<=', '>=', '~~', '!~~', 'BETWEEN', 'NOT BETWEEN'].includes(o))
      )
        return false;
      if (
        !v.nodes.every((n) =>
          [
            'SelectStmt',
            'ResTarget',
            'ColumnRef',
            'String',
            'A_Star',
            'A_Const',
            'A_Expr',
            'BoolExpr',
            'NullTest',
            'FuncCall',
            'RangeVar',
            'SortBy',
            'List',
          ].includes(n),
        )
      )
        return false;
      return v.portable?.ok === true;
    }),
    { numRuns: 3000 },
  );
  t.true(accepted >= 150, `only ${accepted} generated texts were portable`);
  t.true(refused >= 300, `only ${refused} generated texts were refused`);
});

test('property: the view never throws and reads any text, or names why not', (t) => {
  const sqlish = fc.array(
    fc.oneof(
      piece,
      fc.string({ maxLength: 4 }),
      fc.constantFrom("U&'\\0041'", '$$', '$a$', "E'\\'", 'U&"', "UESCAPE '!'"),
    ),
    { maxLength: 20 },
  );
  fc.assert(
    fc.property(sqlish, fc.boolean(), (parts, portable) => {
      const v = sqlView(parts.join(' '), portable);
      return v.ok
        ? Array.isArray(v.statements) && (portable ? v.portable !== undefined : v.portable === undefined)
        : typeof v.why === 'string' && v.why !== 'parser_unavailable';
    }),
    { numRuns: 2000 },
  );
  t.pass();
});
