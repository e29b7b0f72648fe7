// Reads the fenced code blocks of a Markdown file with what the docs test needs to know about
// each: where it is (file:line), its language tag, the section it sits in, and the
// `<!-- test: … -->` marker that says how the block is checked. Pure: text in, blocks out.
//
// A marker is an HTML comment directly above a fence (blank lines and other comments may sit
// between them, prose may not): readers of the Markdown source see it, rendered pages do not.

export interface Block {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The info string's first word, lower case ('' when the fence has none). */
  lang: string;
  info: string;
  /** The block's text, the fence's indentation removed; ends with a newline unless empty. */
  text: string;
  /** 1-based line of the block's first content line. */
  textLine: number;
  /** The nearest heading above the block ('' before the first). */
  section: string;
  /** The marker's text after `test:`, trimmed; undefined when the block has none. */
  marker?: string;
  markerLine?: number;
}

export interface Problem {
  file: string;
  line: number;
  message: string;
}

const FENCE = /^( {0,12})(`{3,}|~{3,})\s*([^`]*)$/;
const MARKER = /<!--\s*test:([\s\S]*?)-->/;

/** The fenced blocks of one Markdown file, and markers that are attached to none. */
export function extractBlocks(file: string, markdown: string): { blocks: Block[]; problems: Problem[] } {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  const problems: Problem[] = [];
  let section = '';
  // Comments seen since the last line of prose: [startLine, text].
  let pending: { line: number; text: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = FENCE.exec(line);
    if (fence) {
      const indent = fence[1]!.length;
      const mark = fence[2]!;
      const info = fence[3]!.trim();
      const body: string[] = [];
      let j = i + 1;
      const closing = new RegExp(`^ {0,${indent + 3}}${mark[0] === '`' ? '`' : '~'}{${mark.length},}\\s*$`);
      for (; j < lines.length && !closing.test(lines[j]!); j++) body.push(dedent(lines[j]!, indent));
      if (j >= lines.length) problems.push({ file, line: i + 1, message: 'a fenced block that is never closed' });
      const markers = pending.filter((c) => MARKER.test(c.text));
      if (markers.length > 1)
        problems.push({ file, line: markers[1]!.line, message: `two test markers for the block at line ${i + 1}` });
      const m = markers[0];
      blocks.push({
        file,
        line: i + 1,
        lang: (info.split(/\s+/)[0] ?? '').toLowerCase(),
        info,
        text: body.length ? `${body.join('\n')}\n` : '',
        textLine: i + 2,
        section,
        ...(m ? { marker: MARKER.exec(m.text)![1]!.trim(), markerLine: m.line } : {}),
      });
      pending = [];
      i = j;
      continue;
    }
    const trimmed = line.trim();
    if (trimmed.startsWith('<!--')) {
      // A comment may span lines; it is one unit.
      let text = line;
      const start = i;
      while (!text.includes('-->') && i + 1 < lines.length) text += `\n${lines[++i]}`;
      pending.push({ line: start + 1, text });
      continue;
    }
    if (trimmed === '') continue;
    // Prose: a marker before it belongs to no block.
    flushStray(pending, file, problems);
    pending = [];
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) section = heading[1]!;
  }
  flushStray(pending, file, problems);
  return { blocks, problems };
}

function flushStray(pending: { line: number; text: string }[], file: string, problems: Problem[]): void {
  for (const c of pending) {
    if (MARKER.test(c.text))
      problems.push({
        file,
        line: c.line,
        message:
          'a test marker that is not directly above a fenced block (only blank lines and comments may sit between them)',
      });
  }
}

function dedent(line: string, indent: number): string {
  let n = 0;
  while (n < indent && line[n] === ' ') n++;
  return line.slice(n);
}

/** "README.md:180 (Quickstart: try it)" */
export function where(b: Pick<Block, 'file' | 'line' | 'section'>): string {
  return `${b.file}:${b.line}${b.section ? ` (${b.section})` : ''}`;
}
