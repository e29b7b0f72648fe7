// Writing pins: the definitions a server lists become an endpoint's pins in the pins file.
// `mcp-authz pins record` uses `recordListed` for whole lists; `recordDefinition` pins one
// reviewed definition (a changed tool someone approved), keeping every other pin. Both read
// the file, check that what they write loads as the service will read it, and replace the file
// atomically (a temporary file in the same folder, flushed, renamed over it), so a watching
// service never reads half a file.
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomically } from '../config/atomic-write.js';
import { parse as parseYaml, stringify } from 'yaml';
import { definitionDigest, itemName, PIN_KINDS, pinnedDefinition, type PinKind } from './definition.js';
import { diffDefinitions, type ItemStatus } from './diff.js';
import { parsePinsFile, PinsFileSchema, type PinMode, type PinsFileContent } from './pins-file.js';

export type Listed = Partial<Record<PinKind, readonly Record<string, unknown>[]>>;

export interface RecordSummary {
  endpoint: string;
  file: string;
  mode: PinMode;
  pinned: number;
  added: number;
  changed: number;
  removed: number;
  unchanged: number;
}

const HEADER =
  '# mcp-authz pins (docs/pinning.md): written by `mcp-authz pins record`; review changes with `mcp-authz pins diff`.\n';

function readContent(path: string): PinsFileContent {
  if (!existsSync(path)) return { version: 1, endpoints: {} };
  const text = readFileSync(path, 'utf8');
  parsePinsFile(text, path); // names every problem of a file it will not touch
  return PinsFileSchema.parse(parseYaml(text, { uniqueKeys: true }) ?? {});
}

function write(path: string, content: PinsFileContent): void {
  const text = `${HEADER}${stringify(content, { lineWidth: 0 })}`;
  parsePinsFile(text, path);
  writeFileAtomically(path, text, 0o644);
}

function section(content: PinsFileContent, endpoint: string, mode: PinMode | undefined) {
  const s = content.endpoints[endpoint] ?? { mode: mode ?? 'enforce', tools: {}, prompts: {}, resourceTemplates: {} };
  if (mode !== undefined) s.mode = mode;
  content.endpoints[endpoint] = s;
  return s;
}

const byName = <T>(o: Record<string, T>) =>
  Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** Pins every listed kind of an endpoint as listed (replacing its earlier pins of those kinds). Throws naming the problem. */
export function recordListed(path: string, endpoint: string, listed: Listed, mode?: PinMode): RecordSummary {
  const before = existsSync(path) ? parsePinsFile(readFileSync(path, 'utf8'), path).endpoints.get(endpoint) : undefined;
  const content = readContent(path);
  const s = section(content, endpoint, mode);
  for (const kind of PIN_KINDS) {
    const items = listed[kind];
    if (items === undefined) continue;
    const pins: Record<string, { sha256: string; definition: Record<string, unknown> }> = {};
    for (const item of items) {
      const name = itemName(kind, item);
      if (name === undefined) throw new Error(`a listed ${kind} item has no name`);
      if (pins[name]) throw new Error(`${kind} "${name}" is listed twice: refusing to pick one`);
      pins[name] = { sha256: definitionDigest(kind, item), definition: pinnedDefinition(kind, item) };
    }
    s[kind] = byName(pins);
  }
  write(path, content);
  const diffs = diffDefinitions(before, listed);
  const count = (st: ItemStatus) => diffs.filter((d) => d.status === st).length;
  return {
    endpoint,
    file: path,
    mode: s.mode,
    pinned: PIN_KINDS.reduce((n, k) => n + Object.keys(s[k]).length, 0),
    added: count('added'),
    changed: count('changed'),
    removed: count('removed'),
    unchanged: count('unchanged'),
  };
}

/**
 * Pins one reviewed definition of an endpoint (a changed tool someone approved), keeping every
 * other pin; `expectedSha256`, when given, must be the definition's digest — the one the
 * reviewer saw — or nothing is written. Returns the new pin.
 */
export function recordDefinition(
  path: string,
  endpoint: string,
  kind: PinKind,
  definition: Readonly<Record<string, unknown>>,
  expectedSha256?: string,
): string {
  const name = itemName(kind, definition);
  if (name === undefined) throw new Error(`the ${kind} definition has no name`);
  const sha256 = definitionDigest(kind, definition);
  if (expectedSha256 !== undefined && expectedSha256 !== sha256)
    throw new Error(`the definition's digest is ${sha256}, not the ${expectedSha256} that was reviewed`);
  const content = readContent(path);
  const s = section(content, endpoint, undefined);
  s[kind] = byName({ ...s[kind], [name]: { sha256, definition: pinnedDefinition(kind, definition) } });
  write(path, content);
  return sha256;
}
