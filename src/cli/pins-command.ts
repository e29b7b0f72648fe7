// `mcp-authz pins record` and `mcp-authz pins diff` (docs/pinning.md): the definitions an MCP
// server lists — from a saved response or the live endpoint — written into the pins file as
// the endpoint's pins, or compared with them member by member.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { diffDefinitions, type ItemDiff } from '../pins/diff.js';
import { parsePinsFile, PIN_MODES, type PinMode } from '../pins/pins-file.js';
import { recordDefinition, recordListed, type RecordSummary } from '../pins/record.js';
import { RedisPinState } from '../pins/pin-state.js';
import type { PinKind } from '../pins/definition.js';
import { loadConfigFile } from '../config/load.js';
import { listedFromEndpoint, listedFromText, type Listed } from './mcp-lists.js';

const OPTIONS = {
  endpoint: { type: 'string' },
  pins: { type: 'string', default: 'pins.yaml' },
  from: { type: 'string' },
  url: { type: 'string' },
  'bearer-file': { type: 'string' },
  'api-key-file': { type: 'string' },
  'api-key-header': { type: 'string', default: 'x-api-key' },
  mode: { type: 'string' },
  'timeout-ms': { type: 'string', default: '30000' },
  json: { type: 'boolean', default: false },
  config: { type: 'string' },
  apply: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export class PinsCommandError extends Error {}

/** Runs `pins record|diff`; returns the exit code (diff: 0 nothing changed, 1 something did). */
export async function pinsCommand(args: string[], out: (s: string) => void, usage: string): Promise<number> {
  const [verb, ...rest] = args;
  const { values } = parseArgs({ args: rest, options: OPTIONS, strict: true, allowPositionals: false });
  if (values.help || verb === '--help' || verb === '-h') {
    out(usage);
    return 0;
  }
  if (verb === 'approved') return approved(values, out);
  if (verb !== 'record' && verb !== 'diff')
    throw new PinsCommandError(`pins: expected "record", "diff" or "approved", got ${JSON.stringify(verb)}`);
  const endpoint = values.endpoint;
  if (!endpoint)
    throw new PinsCommandError('--endpoint is required: the endpoint name the pins are for (endpoints[].name)');
  if ((values.from === undefined) === (values.url === undefined))
    throw new PinsCommandError(
      'give one of --from FILE (a saved tools/list response) or --url URL (the live endpoint)',
    );
  if (values.mode !== undefined && !PIN_MODES.includes(values.mode as PinMode))
    throw new PinsCommandError(`--mode must be one of ${PIN_MODES.join(', ')}`);
  const pinsPath = resolve(values.pins);
  const listed = await readListed(values);
  const existing = existsSync(pinsPath) ? parsePinsFile(readFileSync(pinsPath, 'utf8'), pinsPath) : undefined;
  const current = existing?.endpoints.get(endpoint);
  if (verb === 'diff') {
    const diffs = diffDefinitions(current, listed);
    const changed = diffs.filter((d) => d.status !== 'unchanged');
    out(
      values.json
        ? `${JSON.stringify({ endpoint, items: diffs }, null, 2)}\n`
        : printDiff(endpoint, diffs, current !== undefined),
    );
    return changed.length > 0 ? 1 : 0;
  }
  let summary: RecordSummary;
  try {
    summary = recordListed(pinsPath, endpoint, listed, values.mode as PinMode | undefined);
  } catch (err) {
    throw new PinsCommandError((err as Error).message);
  }
  out(
    values.json
      ? `${JSON.stringify(summary)}\n`
      : `${pinsPath}: endpoint ${endpoint} (${summary.mode}): ${summary.pinned} pinned — ${summary.added} new, ${summary.changed} changed, ${summary.removed} removed, ${summary.unchanged} unchanged\n`,
  );
  return 0;
}

/**
 * `pins approved`: the re-pins approvers made on the approval page, from the shared pin state;
 * with --apply each one whose reviewed pin is still the file's is written into the file.
 */
async function approved(
  values: { config?: string; apply: boolean; json: boolean },
  out: (s: string) => void,
): Promise<number> {
  if (values.config === undefined) throw new PinsCommandError("--config is required: the service's config file");
  let config;
  try {
    config = loadConfigFile(values.config).config;
  } catch (err) {
    throw new PinsCommandError((err as Error).message);
  }
  const pins = config.pins;
  if (pins === undefined) throw new PinsCommandError(`${values.config} pins nothing (no pins section)`);
  const redis = pins.redis ?? config.rateLimit.redis;
  if (redis === undefined)
    throw new PinsCommandError(
      'the pin state is kept in the serving process (no pins.redis or rateLimit.redis): only it knows what was re-approved. Review with `pins diff` and `pins record` instead.',
    );
  const pinsPath = pins.file;
  const file = parsePinsFile(readFileSync(pinsPath, 'utf8'), pinsPath);
  const state = new RedisPinState({ ...redis, commandTimeoutMs: 5000 });
  const found: {
    endpoint: string;
    kind: PinKind;
    name: string;
    sha256: string;
    replaces?: string;
    approver: string;
    approvedAt: string;
    status: 'current' | 'stale' | 'applied';
  }[] = [];
  try {
    await Promise.race([
      state.ready(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no connection within 5 s')), 5000).unref()),
    ]);
    for (const [endpoint, ep] of file.endpoints) {
      for (const [key, repin] of await state.repins(endpoint)) {
        const [kind, name] = key.split('\0') as [PinKind, string];
        const filePin = ep.pins[kind]?.get(name);
        const current = repin.replaces === filePin?.sha256 && repin.definition !== undefined;
        const already = filePin?.sha256 === repin.sha256;
        found.push({
          endpoint,
          kind,
          name,
          sha256: repin.sha256,
          ...(repin.replaces === undefined ? {} : { replaces: repin.replaces }),
          approver: repin.approver,
          approvedAt: new Date(repin.approvedAt).toISOString(),
          status: already ? 'applied' : current ? 'current' : 'stale',
        });
        if (current && !already && values.apply) {
          recordDefinition(pinsPath, endpoint, kind, repin.definition!, repin.sha256);
          found[found.length - 1]!.status = 'applied';
        }
      }
    }
  } catch (err) {
    if (err instanceof PinsCommandError) throw err;
    throw new PinsCommandError(`the pin state (Redis): ${(err as Error).message}`);
  } finally {
    await state.close();
  }
  if (values.json) out(`${JSON.stringify({ file: pinsPath, approved: found })}\n`);
  else {
    for (const f of found)
      out(
        `${f.status === 'applied' ? '=' : f.status === 'current' ? '+' : '!'} ${f.endpoint} ${f.kind === 'tools' ? 'tool' : f.kind} ${f.name}: ${f.sha256.slice(0, 12)} approved by ${f.approver} at ${f.approvedAt}${f.status === 'stale' ? ' (the file no longer holds the pin it replaced: ignored)' : f.status === 'applied' ? ' (in the file)' : ''}\n`,
      );
    if (found.length === 0) out('nothing was re-approved\n');
    else if (!values.apply && found.some((f) => f.status === 'current'))
      out(`fold them into ${pinsPath} with --apply\n`);
  }
  return 0;
}

async function readListed(values: {
  from?: string;
  url?: string;
  'bearer-file'?: string;
  'api-key-file'?: string;
  'api-key-header': string;
  'timeout-ms': string;
}): Promise<Listed> {
  if (values.from !== undefined) {
    const text = values.from === '-' ? readFileSync(0, 'utf8') : readFileSync(resolve(values.from), 'utf8');
    return listedFromText(text, values.from === '-' ? 'standard input' : values.from);
  }
  const headers: Record<string, string> = {};
  const secret = (file: string, what: string) => {
    const v = readFileSync(resolve(file), 'utf8').trim();
    if (v === '') throw new PinsCommandError(`${what} ${file} is empty`);
    return v;
  };
  if (values['bearer-file']) headers.authorization = `Bearer ${secret(values['bearer-file'], '--bearer-file')}`;
  if (values['api-key-file'])
    headers[values['api-key-header'].toLowerCase()] = secret(values['api-key-file'], '--api-key-file');
  const timeoutMs = Number(values['timeout-ms']);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new PinsCommandError('--timeout-ms must be a positive integer');
  let url: URL;
  try {
    url = new URL(values.url!);
  } catch {
    throw new PinsCommandError(`--url ${values.url} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new PinsCommandError('--url must be http: or https:');
  return listedFromEndpoint({ url: url.href, headers, timeoutMs });
}

const SINGULAR = { tools: 'tool', prompts: 'prompt', resourceTemplates: 'resource template' } as const;

function printDiff(endpoint: string, diffs: readonly ItemDiff[], hasPins: boolean): string {
  const lines: string[] = [];
  if (!hasPins) lines.push(`endpoint ${endpoint} has no pins yet: everything listed is new`);
  for (const d of diffs) {
    if (d.status === 'unchanged') continue;
    const what = `${SINGULAR[d.kind]} ${d.name}`;
    if (d.status === 'added') lines.push(`+ ${what}: new, not pinned (${d.listed!.slice(0, 12)})`);
    else if (d.status === 'removed') lines.push(`- ${what}: pinned, no longer listed`);
    else {
      lines.push(`~ ${what}: changed (pinned ${d.pinned!.slice(0, 12)}, listed ${d.listed!.slice(0, 12)})`);
      if (!d.members) lines.push('    the pin holds only a digest: record it with its definition to see what changed');
      for (const m of d.members ?? []) {
        if (m.text !== undefined) lines.push(`    ${m.member}: ${m.text}`);
        for (const p of m.paths ?? []) {
          const v = (x: unknown) => JSON.stringify(x);
          lines.push(
            p.op === 'added'
              ? `    ${m.member}${p.path}: added ${v(p.after)}`
              : p.op === 'removed'
                ? `    ${m.member}${p.path}: removed (was ${v(p.before)})`
                : `    ${m.member}${p.path}: ${v(p.before)} → ${v(p.after)}`,
          );
        }
      }
    }
  }
  const unchanged = diffs.filter((d) => d.status === 'unchanged').length;
  lines.push(`${diffs.length - unchanged} differ, ${unchanged} unchanged`);
  return `${lines.join('\n')}\n`;
}
