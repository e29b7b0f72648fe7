// Every relative link of the README, docs/, the chart's README, examples/*/README.md and
// bench/results/history.md reaches a file of the repository, and a `#fragment` reaches a
// heading of that file (GitHub's anchors: lowercase, punctuation dropped, spaces as hyphens,
// a repeated heading suffixed -1, -2, …). Moving a section must take its links along.
import test from 'ava';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const ROOT = join(import.meta.dirname, '..');

function markdownFiles(): string[] {
  const inDir = (dir: string) =>
    existsSync(join(ROOT, dir))
      ? readdirSync(join(ROOT, dir))
          .filter((n) => n.endsWith('.md'))
          .map((n) => join(dir, n))
      : [];
  const readmes = (dir: string) =>
    readdirSync(join(ROOT, dir))
      .map((d) => join(dir, d, 'README.md'))
      .filter((f) => existsSync(join(ROOT, f)));
  return [
    ...inDir('.'),
    ...inDir('docs'),
    ...readmes('helm'),
    ...readmes('examples'),
    ...inDir('bench/results'),
    ...inDir('bench/transports'),
  ];
}

/** The text outside fenced blocks and inline code, where links live. */
function prose(text: string): string[] {
  let fenced = false;
  return text.split('\n').map((line) => {
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      return '';
    }
    return fenced ? '' : line.replace(/`[^`]*`/g, '');
  });
}

/** GitHub's heading anchors of a Markdown file. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    const m = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const slug = m[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

test('GitHub anchors drop punctuation and code marks and number repeats', (t) => {
  const a = anchors(
    '# A `b` c\n## What it does\n## What it does\n### Sizing: memory & CPU\n```\n# not a heading\n```\n',
  );
  t.deepEqual([...a], ['a-b-c', 'what-it-does', 'what-it-does-1', 'sizing-memory--cpu']);
});

test('every relative link in the documentation reaches a file and, with a fragment, a heading of it', (t) => {
  const broken: string[] = [];
  const files = markdownFiles();
  t.true(files.includes('README.md') && files.includes(join('docs', 'performance.md')));
  for (const file of files) {
    const lines = prose(readFileSync(join(ROOT, file), 'utf8'));
    lines.forEach((line, i) => {
      for (const m of line.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const target = m[1]!;
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, …
        const [path, fragment] = target.split('#') as [string, string | undefined];
        const resolved = path === '' ? join(ROOT, file) : join(ROOT, dirname(file), decodeURIComponent(path));
        const where = `${file}:${i + 1}: ${target}`;
        if (!resolved.startsWith(ROOT) || !existsSync(resolved)) {
          broken.push(`${where} (no ${relative(ROOT, resolved)})`);
          continue;
        }
        if (fragment === undefined || !resolved.endsWith('.md') || statSync(resolved).isDirectory()) continue;
        if (!anchors(readFileSync(resolved, 'utf8')).has(fragment)) broken.push(`${where} (no heading #${fragment})`);
      }
    });
  }
  t.deepEqual(broken, []);
});
