import test from 'ava';
import { foldKey } from '../src/request/json-key-fold.js';
import { goFoldTable } from './e2e/go-mcp-server.js';

const char = (c: number) => String.fromCodePoint(c);

test("every two keys Go reads as one fold alike, for every code point in Go's tables", (t) => {
  const go = goFoldTable();
  t.true(go.size > 1000, 'the Go table lists the cased code points');
  t.is(go.get(0x17f), 0x53, 'Go folds ſ (U+017F) to S');
  t.is(go.get(0x212a), 0x4b, 'Go folds the Kelvin sign to K');
  const missed: string[] = [];
  for (const [r, f] of go) {
    if (foldKey(char(r)) !== foldKey(char(f))) missed.push(`U+${r.toString(16)} ~ U+${f.toString(16)}`);
  }
  t.deepEqual(missed, []);
});

test('the look-alikes of ASCII members fold to them', (t) => {
  t.is(foldKey('paramſ'), foldKey('params'));
  t.is(foldKey('\u212aey'), foldKey('key'));
  t.is(foldKey('NAME'), foldKey('name'));
  t.is(foldKey('nAme'), 'name');
  t.is(foldKey('Größe'), foldKey('GRÖße'));
  t.is(foldKey('\u1e9e'), foldKey('ß'), 'capital sharp s folds with ß, as in Go');
  t.not(foldKey('ß'), foldKey('ss'), 'a mapping to several letters is not simple folding');
  t.not(foldKey('name'), foldKey('names'));
});
