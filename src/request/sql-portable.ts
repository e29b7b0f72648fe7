// The portable SQL subset: the queries accepted for a dialect the service has no parser for
// (MySQL, SQL Server, SQLite, Oracle, …), because every SQL reader reads them as the same one
// read-only statement (docs/policies.md "SQL read-only"). A recognizer of a small grammar, not a
// guard over a larger one: anything it does not know is refused.
//
//   query     = SELECT [DISTINCT] items FROM name [WHERE cond]
//               [GROUP BY column {, column}] [ORDER BY column [ASC|DESC] {, column [ASC|DESC]}]
//   items     = * | item {, item}
//   item      = column | (COUNT|SUM|MIN|MAX|AVG) ( * | column )
//   cond      = term {OR term};  term = factor {AND factor};  factor = NOT factor | ( cond ) | predicate
//   predicate = column (= | <> | < | > | <= | >=) (literal | column)
//             | column IS [NOT] NULL | column [NOT] IN ( literal {, literal} )
//             | column [NOT] LIKE string | column [NOT] BETWEEN literal AND literal
//   column, name = word [. word];  literal = number | string
//
// Words are ASCII letters, digits and "_" starting with a letter or "_", and not one of the
// reserved words below; numbers are digits with an optional fraction, never followed by a
// letter; strings are single-quoted printable ASCII without "\" ('' is a quote). Between
// tokens: spaces, tabs and line breaks only. No comments, no quoted names, no ";".
//
// Why each restriction: no "\" because MySQL reads it as an escape in strings and PostgreSQL
// with standard_conforming_strings on does not; no double quotes or backticks because MySQL
// reads "x" as a string unless ANSI_QUOTES; no word directly after another word or a value,
// because T-SQL starts a new statement without ";" (`SELECT 1 BACKUP DATABASE …`); no number
// glued to a word, because PostgreSQL ≤ 14 and SQL Server read `1into` as `1 INTO`.

export type PortableView = { ok: true } | { ok: false; why: 'not_portable' };

const OK: PortableView = Object.freeze({ ok: true });
const NO: PortableView = Object.freeze({ ok: false, why: 'not_portable' });

// Words that are the grammar's own keywords, start a statement or clause in some dialect, or
// name something other than a column there. Refused as names, in any case.
const RESERVED = new Set(
  (
    'select distinct from where group order by asc desc and or not is null in like between count sum min max avg ' +
    'all any some as on join inner outer left right full cross natural using union intersect except minus ' +
    'into outfile dumpfile for update delete insert merge replace upsert create alter drop truncate rename ' +
    'grant revoke deny backup restore dbcc reconfigure waitfor exec execute call do go set declare begin end ' +
    'commit rollback savepoint release lock unlock load handler kill shutdown use top limit offset fetch ' +
    'option with having window over procedure function trigger disable enable checkpoint print raiserror throw ' +
    'openrowset opendatasource openquery openxml bulk escape collate case when then else values default true false'
  ).split(' '),
);

const AGGREGATES = new Set(['count', 'sum', 'min', 'max', 'avg']);
const COMPARISONS = new Set(['=', '<>', '<', '>', '<=', '>=']);

type Tok = { k: 'word'; v: string } | { k: 'num' } | { k: 'str' } | { k: 'sym'; v: string };

/** Whether the text is one query of the portable subset. */
export function portableView(text: string): PortableView {
  const toks = tokens(text);
  return toks !== undefined && new Reader(toks).query() ? OK : NO;
}

const WORD_START = /[A-Za-z_]/;
const WORD = /[A-Za-z0-9_]/;
const DIGIT = /[0-9]/;

function tokens(s: string): Tok[] | undefined {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if (WORD_START.test(c)) {
      let j = i + 1;
      while (j < s.length && WORD.test(s[j]!)) j++;
      // A word glued to a quote is a prefix some reader gives meaning to (N'…', _utf8'…', x'…').
      if (s[j] === "'") return undefined;
      out.push({ k: 'word', v: s.slice(i, j).toLowerCase() });
      i = j;
    } else if (DIGIT.test(c)) {
      let j = i + 1;
      while (j < s.length && DIGIT.test(s[j]!)) j++;
      if (s[j] === '.' && DIGIT.test(s[j + 1] ?? '')) {
        j += 2;
        while (j < s.length && DIGIT.test(s[j]!)) j++;
      }
      // Nothing a lexer could read as part of the number or as a glued word: 1into, 1e5, 0x1, 1.
      if (j < s.length && /[A-Za-z0-9_$.'"`@#]/.test(s[j]!)) return undefined;
      out.push({ k: 'num' });
      i = j;
    } else if (c === "'") {
      let j = i + 1;
      for (;;) {
        if (j >= s.length) return undefined;
        const d = s[j]!;
        if (d === "'") {
          if (s[j + 1] === "'") {
            j += 2;
            continue;
          }
          break;
        }
        const code = d.charCodeAt(0);
        if (code < 0x20 || code > 0x7e || d === '\\') return undefined;
        j++;
      }
      // Two literals side by side are one string in some readers and an error in others.
      if (s[j + 1] === "'") return undefined;
      out.push({ k: 'str' });
      i = j + 1;
    } else if (c === '<' || c === '>') {
      const two = s.slice(i, i + 2);
      if (two === '<=' || two === '>=' || two === '<>') {
        out.push({ k: 'sym', v: two });
        i += 2;
      } else {
        out.push({ k: 'sym', v: c });
        i++;
      }
      // `<=>` (MySQL), `<<`, `>>`, `<>=`: operators some readers have and others do not.
      if (/[<>=!]/.test(s[i] ?? '')) return undefined;
    } else if (c === '=' || c === '(' || c === ')' || c === ',' || c === '.' || c === '*') {
      out.push({ k: 'sym', v: c });
      i++;
      if (c === '=' && /[<>=!]/.test(s[i] ?? '')) return undefined;
    } else {
      return undefined;
    }
  }
  return out;
}

class Reader {
  private i = 0;
  constructor(private readonly t: Tok[]) {}

  query(): boolean {
    if (!this.kw('select')) return false;
    this.kw('distinct');
    if (!this.items() || !this.kw('from') || !this.name()) return false;
    if (this.kw('where') && !this.cond()) return false;
    if (this.kw('group')) {
      if (!this.kw('by') || !this.list(() => this.column())) return false;
    }
    if (this.kw('order')) {
      if (!this.kw('by') || !this.list(() => this.column() && (this.kw('asc') || this.kw('desc') || true)))
        return false;
    }
    return this.i === this.t.length;
  }

  private items(): boolean {
    if (this.sym('*')) return true;
    return this.list(() => this.item());
  }

  private item(): boolean {
    const w = this.peekWord();
    if (w !== undefined && AGGREGATES.has(w) && this.symAt(this.i + 1, '(')) {
      this.i += 2;
      if (!this.sym('*') && !this.column()) return false;
      return this.sym(')');
    }
    return this.column();
  }

  private cond(): boolean {
    do {
      do {
        if (!this.factor()) return false;
      } while (this.kw('and'));
    } while (this.kw('or'));
    return true;
  }

  private factor(): boolean {
    if (this.kw('not')) return this.factor();
    if (this.sym('(')) return this.cond() && this.sym(')');
    return this.predicate();
  }

  private predicate(): boolean {
    if (!this.column()) return false;
    const t = this.t[this.i];
    if (t?.k === 'sym' && COMPARISONS.has(t.v)) {
      this.i++;
      return this.literal() || this.column();
    }
    if (this.kw('is')) {
      this.kw('not');
      return this.kw('null');
    }
    this.kw('not');
    if (this.kw('in')) return this.sym('(') && this.list(() => this.literal()) && this.sym(')');
    if (this.kw('like')) return this.str();
    if (this.kw('between')) return this.literal() && this.kw('and') && this.literal();
    return false;
  }

  private column(): boolean {
    return this.name();
  }

  private name(): boolean {
    if (!this.plainWord()) return false;
    if (this.sym('.')) return this.plainWord();
    return true;
  }

  private plainWord(): boolean {
    const t = this.t[this.i];
    if (t?.k !== 'word' || RESERVED.has(t.v)) return false;
    this.i++;
    return true;
  }

  private literal(): boolean {
    const t = this.t[this.i];
    if (t?.k !== 'num' && t?.k !== 'str') return false;
    this.i++;
    return true;
  }

  private str(): boolean {
    if (this.t[this.i]?.k !== 'str') return false;
    this.i++;
    return true;
  }

  private list(one: () => boolean): boolean {
    do {
      if (!one()) return false;
    } while (this.sym(','));
    return true;
  }

  private kw(word: string): boolean {
    const t = this.t[this.i];
    if (t?.k !== 'word' || t.v !== word) return false;
    this.i++;
    return true;
  }

  private sym(v: string): boolean {
    if (!this.symAt(this.i, v)) return false;
    this.i++;
    return true;
  }

  private symAt(i: number, v: string): boolean {
    const t = this.t[i];
    return t?.k === 'sym' && t.v === v;
  }

  private peekWord(): string | undefined {
    const t = this.t[this.i];
    return t?.k === 'word' ? t.v : undefined;
  }
}
