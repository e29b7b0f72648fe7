// Shell blocks of the docs: split into commands, run in one bash (so a variable or function a
// block defines serves the commands after it), each command's exit code and output kept.
//
// A command states what it claims in a comment with an arrow, on its own line or on the line
// above it — prose before the arrow, claims after it, separated by commas:
//
//   mcp-authz check … --body '…'          # bob may not delete → 403 access_denied
//   # The public key on a public endpoint → allow, 200, "x-mcp-principal: demo-public"
//
//   allow | deny | answer     the `decision` of `mcp-authz check`
//   200, 401, …               the status: `check`'s `status`, or curl -i's status line
//   a decision code           `check`'s `reason` or `authDetail`, or the `error` of a JSON body
//   exit N                    the exit code
//   "text"                    in the output (stdout or stderr; for `check`, also any string in
//                             it, and the headers it sets as "name: value")
//   not "text"                nowhere in the output (any case)
//
// A command without claims must exit 0. A transcript (`$ command` lines followed by what it
// prints) is compared line by line; values that differ on every run — API keys, hex digests,
// UUIDs, timestamps — match any value of the same form.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Command {
  /** 1-based line in the Markdown file of the command's first line. */
  line: number;
  text: string;
  claims?: string;
  /** A transcript's expected output. */
  expected?: string;
}

export interface CommandResult {
  command: Command;
  code: number;
  stdout: string;
  stderr: string;
}

/** The first `#` that starts a comment (outside quotes, at the start of a word), or -1. */
export function commentStart(line: string): number {
  let q: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (q === "'") {
      if (c === "'") q = undefined;
    } else if (c === '\\') i++;
    else if (q === '"') {
      if (c === '"') q = undefined;
    } else if (c === '"' || c === "'") q = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return i;
  }
  return -1;
}

/** Whether a line leaves a quote open (so the command goes on on the next line). */
function quoteOpen(text: string): boolean {
  let q: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (q === "'") {
      if (c === "'") q = undefined;
    } else if (c === '\\') i++;
    else if (q === '"') {
      if (c === '"') q = undefined;
    } else if (c === '"' || c === "'") q = c;
    else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      const nl = text.indexOf('\n', i);
      if (nl < 0) return false;
      i = nl;
    }
  }
  return q !== undefined;
}

const ARROW = /→\s*(.*)$/;

/** Splits a shell block into commands with their claims (and a transcript's outputs). */
export function parseShell(text: string, firstLine: number): Command[] {
  const lines = text.replace(/\n$/, '').split('\n');
  const transcript = lines.some((l) => l.startsWith('$ '));
  const commands: Command[] = [];
  let claimAbove: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (transcript) {
      if (!line.startsWith('$ ')) {
        const last = commands.at(-1);
        if (!last) throw new Error(`line ${firstLine + i}: a transcript starts with "$ command"`);
        last.expected = last.expected === undefined ? line : `${last.expected}\n${line}`;
        continue;
      }
      line = line.slice(2);
    }
    const trimmed = line.trim();
    if (trimmed === '') {
      claimAbove = undefined;
      continue;
    }
    if (trimmed.startsWith('#')) {
      const m = ARROW.exec(trimmed);
      claimAbove = m ? m[1]!.trim() : undefined;
      continue;
    }
    const start = i;
    let cmd = line;
    while ((/\\$/.test(cmd.replace(/\s+$/, '')) || quoteOpen(cmd)) && i + 1 < lines.length) {
      cmd += `\n${lines[++i]}`;
    }
    const lastLine = cmd.split('\n').at(-1)!;
    const c = commentStart(lastLine);
    const trailing = c >= 0 ? ARROW.exec(lastLine.slice(c)) : null;
    const claims = trailing ? trailing[1]!.trim() : claimAbove;
    if (trailing && claimAbove !== undefined)
      throw new Error(`line ${firstLine + start}: claims both above the command and after it`);
    commands.push({ line: firstLine + start, text: cmd, ...(claims !== undefined ? { claims } : {}) });
    claimAbove = undefined;
  }
  if (transcript) for (const c of commands) if (c.expected !== undefined) c.expected = c.expected.replace(/\n+$/, '');
  return commands;
}

/**
 * Runs the commands in order in one bash, in `cwd`, each with its own output files.
 * The deadline guards against a hang; it is not a measure of speed.
 */
export function runCommands(
  commands: Command[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; outDir: string; deadlineMs: number },
): Promise<CommandResult[]> {
  mkdirSync(opts.outDir, { recursive: true });
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = commands
    .map((c, i) => {
      const o = join(opts.outDir, String(i));
      return `{ ${c.text}\n} >${q(`${o}.out`)} 2>${q(`${o}.err`)} </dev/null; echo $? >${q(`${o}.rc`)}`;
    })
    .join('\n');
  const file = join(opts.outDir, 'block.sh');
  writeFileSync(file, `${script}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['--noprofile', '--norc', file], {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', () => {});
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, opts.deadlineMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const results: CommandResult[] = [];
      for (const [i, command] of commands.entries()) {
        const o = join(opts.outDir, String(i));
        let rc: string;
        try {
          rc = readFileSync(`${o}.rc`, 'utf8').trim();
        } catch {
          reject(
            new Error(
              `the block stopped before ${command.text.split('\n')[0]} (bash ${signal ?? code}${signal === 'SIGKILL' ? `, killed after ${opts.deadlineMs / 1000} s` : ''})${err ? `:\n${err}` : ''}`,
            ),
          );
          return;
        }
        results.push({
          command,
          code: Number(rc),
          stdout: readFileSync(`${o}.out`, 'utf8'),
          stderr: readFileSync(`${o}.err`, 'utf8'),
        });
      }
      resolve(results);
    });
  });
}

export type Claim =
  | { k: 'decision'; v: 'allow' | 'deny' | 'answer' }
  | { k: 'status'; v: number }
  | { k: 'exit'; v: number }
  | { k: 'code'; v: string }
  | { k: 'text'; v: string }
  | { k: 'absent'; v: string };

/** Reads `→ …` claims; `codes` are the words a code claim may use. */
export function parseClaims(text: string, codes: ReadonlySet<string>): Claim[] {
  const claims: Claim[] = [];
  // Split on commas outside quotes.
  const parts: string[] = [];
  let cur = '';
  let inQ = false;
  for (const c of text) {
    if (c === '"') inQ = !inQ;
    if (c === ',' && !inQ) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  for (const raw of parts) {
    for (const word of splitWords(raw.trim())) {
      if (word === '') continue;
      let m: RegExpExecArray | null;
      if (word === 'allow' || word === 'deny' || word === 'answer') claims.push({ k: 'decision', v: word });
      else if ((m = /^exit (\d+)$/.exec(word))) claims.push({ k: 'exit', v: Number(m[1]) });
      else if (/^[1-5]\d\d$/.test(word)) claims.push({ k: 'status', v: Number(word) });
      else if ((m = /^"(.*)"$/.exec(word))) claims.push({ k: 'text', v: m[1]! });
      else if ((m = /^not "(.*)"$/.exec(word))) claims.push({ k: 'absent', v: m[1]! });
      else if (codes.has(word)) claims.push({ k: 'code', v: word });
      else
        throw new Error(
          `"${word}" is not a claim: write allow/deny/answer, a status, a decision code, exit N or "quoted text" after the →; prose goes before it`,
        );
    }
  }
  return claims;
}

/** "403 access_denied" is two claims; "exit 3" and "quoted text" stay whole. */
function splitWords(s: string): string[] {
  const out: string[] = [];
  const re = /(?:not )?"[^"]*"|exit \d+|\S+/g;
  for (const m of s.matchAll(re)) out.push(m[0]);
  return out;
}

interface Observed {
  summary: string;
  decision?: string;
  status?: number;
  codes: string[];
  texts: string[];
}

/** What a command's output says, in the terms claims use. */
export function observe(r: CommandResult): Observed {
  const texts = [r.stdout, r.stderr];
  const codes: string[] = [];
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  if (json && typeof json === 'object' && !Array.isArray(json) && 'decision' in json) {
    const o = json as {
      decision: string;
      status: number;
      reason?: string;
      authDetail?: string | null;
      authWhy?: string | null;
      headers?: { set?: { name: string; value: string }[] };
    };
    if (o.reason) codes.push(o.reason);
    if (o.authDetail) codes.push(o.authDetail);
    collectStrings(json, texts);
    for (const h of o.headers?.set ?? []) texts.push(`${h.name}: ${h.value}`);
    return {
      summary: `exit ${r.code}, decision ${o.decision}, status ${o.status}, reason ${o.reason}${o.authWhy ? `, authWhy ${JSON.stringify(o.authWhy)}` : ''}`,
      decision: o.decision,
      status: o.status,
      codes,
      texts,
    };
  }
  const http = /^HTTP\/[\d.]+ (\d{3})/.exec(r.stdout);
  let body: unknown;
  if (json && typeof json === 'object') body = json;
  else if (http) {
    const at = r.stdout.search(/\r?\n\r?\n/);
    try {
      body = at >= 0 ? JSON.parse(r.stdout.slice(at).trim()) : undefined;
    } catch {
      body = undefined;
    }
  }
  const error = body && typeof body === 'object' ? (body as { error?: unknown }).error : undefined;
  if (typeof error === 'string') codes.push(error);
  return {
    summary: `exit ${r.code}${http ? `, status ${http[1]}` : ''}${typeof error === 'string' ? `, error ${error}` : ''}`,
    ...(http ? { status: Number(http[1]) } : {}),
    codes,
    texts,
  };
}

function collectStrings(v: unknown, out: string[]): void {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) collectStrings(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) collectStrings(x, out);
}

/** The claims a result breaks, in words; empty when it keeps them all. */
export function brokenClaims(claims: Claim[], r: CommandResult): string[] {
  const o = observe(r);
  const out: string[] = [];
  for (const c of claims) {
    switch (c.k) {
      case 'exit':
        if (r.code !== c.v) out.push(`exit ${c.v}`);
        break;
      case 'decision':
        if (o.decision !== c.v) out.push(c.v);
        break;
      case 'status':
        if (o.status !== c.v) out.push(String(c.v));
        break;
      case 'code':
        if (!o.codes.includes(c.v)) out.push(c.v);
        break;
      case 'text':
        if (!o.texts.some((t) => t.includes(c.v))) out.push(`"${c.v}"`);
        break;
      case 'absent':
        if (o.texts.some((t) => t.toLowerCase().includes(c.v.toLowerCase()))) out.push(`not "${c.v}"`);
        break;
    }
  }
  return out;
}

export function describe(r: CommandResult): string {
  return observe(r).summary;
}

// Values that differ on every run, each matched by any value of its form.
const VOLATILE: [RegExp, string][] = [
  [/mcp_[0-9A-Za-z]{49}/g, 'mcp_[0-9A-Za-z]{49}'],
  [/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/g, '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)?Z'],
  [/\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b/g, ''],
];

/** A transcript line as a regular expression: volatile values match any of their form. */
export function lineRegex(expected: string): RegExp {
  type Piece = { at: number; len: number; re: string };
  const pieces: Piece[] = [];
  for (const [re, replacement] of VOLATILE) {
    for (const m of expected.matchAll(re)) {
      if (pieces.some((p) => m.index! < p.at + p.len && p.at < m.index! + m[0].length)) continue;
      pieces.push({ at: m.index!, len: m[0].length, re: replacement || `[0-9a-f]{${m[0].length}}` });
    }
  }
  pieces.sort((a, b) => a.at - b.at);
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let src = '';
  let at = 0;
  for (const p of pieces) {
    src += esc(expected.slice(at, p.at)) + p.re;
    at = p.at + p.len;
  }
  src += esc(expected.slice(at));
  return new RegExp(`^${src}$`);
}

/** Differences between a transcript's expected output and what the command printed. */
export function transcriptDiff(expected: string, actual: string): string[] {
  const want = expected.split('\n').map((l) => l.trimEnd());
  const got = actual
    .replace(/\n+$/, '')
    .split('\n')
    .map((l) => l.trimEnd());
  const out: string[] = [];
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    const w = want[i];
    const g = got[i];
    if (w === undefined) out.push(`line ${i + 1}: printed ${JSON.stringify(g)}, not in the doc`);
    else if (g === undefined) out.push(`line ${i + 1}: the doc shows ${JSON.stringify(w)}, not printed`);
    else if (!lineRegex(w).test(g))
      out.push(`line ${i + 1}: the doc shows ${JSON.stringify(w)}, printed ${JSON.stringify(g)}`);
  }
  return out;
}
