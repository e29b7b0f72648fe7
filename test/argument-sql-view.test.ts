// The SQL view: the words a database lexer could read as keywords, found at least wherever a
// word boundary puts them, and the texts that are not one statement every reader reads alike.
import test from 'ava';
import fc from 'fast-check';
import { sqlView } from '../src/request/sql-view.js';

test('the SQL view splits lower-case words and refuses separators, comments and look-alike letters', (t) => {
  t.deepEqual(sqlView('  SELECT id, "Name" FROM t WHERE x = \'a b\' AND y >= 2.5'), { ok: true, words: ['select', 'id', 'name', 'from', 't', 'where', 'x', 'a', 'b', 'and', 'y', '2', '5'] });
  t.deepEqual(sqlView('select $$DELETE$$'), { ok: true, words: ['select', 'delete'] });
  t.deepEqual(sqlView('SELECT jos\u00e9_x\u00a0INTO'), { ok: true, words: ['select', 'jos', '_x', 'into'] });
  t.deepEqual(sqlView(''), { ok: true, words: [] });
  for (const [q, why] of [
    ['SELECT 1; DROP TABLE t', 'statement_separator'],
    ["SELECT 1 -- and", 'comment'],
    ['SELECT 1 # and', 'comment'],
    ['SELECT /*!50000 1*/', 'comment'],
    ['SELECT 1 */', 'comment'],
    ['SELECT 1 UNION UP\u017fERT', 'look_alike'],
    ['\u0130NSERT INTO t', 'look_alike'],
    ['SELECT 1 FOR UPDATE S\u212aIP LOCKED', 'look_alike'],
  ] as const) t.deepEqual(sqlView(q), { ok: false, why }, q);
  t.deepEqual(sqlView(7), { ok: false, why: 'not_a_string' });
});

const KEYWORDS = ['delete', 'insert', 'into', 'update', 'drop'];
const piece = fc.constantFrom('select', 'SELECT', 'Delete', 'INTO', 'x', '_', 'a1', '1', ' ', '\t', '\u000b', '\u00a0', '\u00e9', '(', ')', ',', '.', "'", '"', '`', '$', '@', '\u200b', 'dRoP', 'upd', 'ate', 'in', 'sert');

test('every keyword a word boundary delimits in the text is one of the view\'s words', (t) => {
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 12 }).map((p) => p.join('')), (q) => {
      const view = sqlView(q);
      if (!view.ok) return true;
      if (!view.words.every((w) => /^[a-z0-9_]+$/.test(w))) return false;
      return KEYWORDS.every((k) => !new RegExp(`\\b${k}\\b`, 'i').test(q) || view.words.includes(k));
    }),
    { numRuns: 3000 },
  );
  t.pass();
});
