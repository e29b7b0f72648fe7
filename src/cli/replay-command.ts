// `mcp-authz replay --bundle CANDIDATE FILE…`: runs captured decision-log records through a
// candidate policy and reports every decision that would change (docs/shadow.md). Records are
// read as OPA's decision-log events — the events mcp-authz ships (a JSON array per upload,
// gzip or not), one event per line as a receiver or OPA's console logger writes them — and
// mcp-authz's own decision lines, which carry no input and are counted as not replayable.
// Exit code 0: no decision would change; 1: at least one would; 2: the command could not run.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import type { LoadedConfig } from '../config/load.js';
import { silentLogger } from '../log/logger.js';
import { policyView } from '../policy/policy-input.js';
import { PolicySource } from '../policy/policy-source.js';
import { differ, evaluateVerdict, verdictOfResult, type Verdict } from '../shadow/verdict.js';
import { USAGE } from './usage.js';

const REPLAY_USAGE = USAGE.replay;

export interface ChangedDecision {
  decision_id: string | null;
  timestamp: string | null;
  endpoint: string | null;
  tool: string | null;
  enforced: Verdict & { revision: string | null };
  candidate: Verdict;
  masked: string[];
}

export interface ReplayReport {
  candidate: string;
  records: number;
  replayed: number;
  unchanged: number;
  changed: ChangedDecision[];
  skipped: { no_input: number; masked: number; not_a_decision: number };
}

type Event = Record<string, unknown>;

/** The records of one file: a JSON array, or one JSON value (event or array) per line; gzip or not. */
export function readRecords(bytes: Buffer): { events: Event[]; notDecisions: number } {
  const text = (bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes).toString('utf8');
  const values: unknown[] = [];
  const whole = text.trimStart();
  let parsedWhole = false;
  if (whole.startsWith('[')) {
    try {
      values.push(...(JSON.parse(whole) as unknown[]));
      parsedWhole = true;
    } catch {
      // Not one array: one value per line below.
    }
  }
  if (!parsedWhole) {
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch (err) {
        throw new Error(`line ${i + 1} is not JSON: ${(err as Error).message}`);
      }
      if (Array.isArray(v)) values.push(...v);
      else values.push(v);
    });
  }
  const events: Event[] = [];
  let notDecisions = 0;
  for (const v of values) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) notDecisions++;
    else if (isDecision(v as Event)) events.push(v as Event);
    else notDecisions++;
  }
  return { events, notDecisions };
}

/** An OPA decision event, OPA's console decision line, or mcp-authz's own decision line. */
function isDecision(e: Event): boolean {
  if (typeof e.decision_id !== 'string') return false;
  // mcp-authz's log lines: the decision line is one; the shadow and list lines are not.
  if (e.log === 'decision') return e.msg === 'decision';
  return true;
}

export async function replay(
  loaded: LoadedConfig,
  candidate: string,
  events: readonly Event[],
  opts: { skipMasked?: boolean; notDecisions?: number } = {},
): Promise<ReplayReport> {
  const { config } = loaded;
  const policy = config.policy ?? { entrypoint: 'mcp/authz/decision', maxMemoryPages: 1024, data: {} };
  const endpoints = Object.fromEntries(config.endpoints.map((e) => [e.name, policyView(e)]));
  const source = new PolicySource(
    {
      ...(isRegoFolder(candidate) ? { rego: candidate } : { bundle: candidate }),
      entrypoint: policy.entrypoint,
      maxMemoryPages: policy.maxMemoryPages,
      data: { ...policy.data, endpoints },
    },
    silentLogger(),
    {},
  );
  const loadedCandidate = await source.load();
  await source.close();
  if (!loadedCandidate.ok) throw new Error(`the candidate policy does not load: ${messageOf(loadedCandidate.error)}`);
  const engine = loadedCandidate.value.engine;
  const report: ReplayReport = {
    candidate: engine.revision,
    records: events.length + (opts.notDecisions ?? 0),
    replayed: 0,
    unchanged: 0,
    changed: [],
    skipped: { no_input: 0, masked: 0, not_a_decision: opts.notDecisions ?? 0 },
  };
  for (const e of events) {
    if (e.input === undefined) {
      report.skipped.no_input++;
      continue;
    }
    const masked = [...(Array.isArray(e.erased) ? e.erased : []), ...(Array.isArray(e.masked) ? e.masked : [])].map(
      String,
    );
    if (masked.length > 0 && opts.skipMasked) {
      report.skipped.masked++;
      continue;
    }
    const mcp = (e.mcp_authz ?? {}) as Record<string, unknown>;
    const enforced = enforcedVerdict(e, mcp);
    const candidateVerdict = evaluateVerdict(engine, JSON.stringify(e.input));
    report.replayed++;
    if (!differ(enforced, candidateVerdict)) {
      report.unchanged++;
      continue;
    }
    report.changed.push({
      decision_id: e.decision_id as string,
      timestamp: typeof e.timestamp === 'string' ? e.timestamp : null,
      endpoint: stringOrNull(mcp.endpoint) ?? stringOrNull(inputAt(e, 'endpoint', 'name')),
      tool: stringOrNull(mcp.tool) ?? firstCall(e),
      enforced: { ...enforced, revision: revisionOf(e) },
      candidate: { decision: candidateVerdict.decision, code: candidateVerdict.code },
      masked,
    });
  }
  return report;
}

/** What the policy in force decided, from the recorded result (a failure: mcp-authz's reason says so). */
function enforcedVerdict(e: Event, mcp: Record<string, unknown>): Verdict {
  const failed =
    mcp.reason === 'policy_error' ||
    (e.result !== null &&
      typeof e.result === 'object' &&
      'error' in (e.result as object) &&
      !('allow' in (e.result as object)));
  return verdictOfResult(e.result, failed);
}

function revisionOf(e: Event): string | null {
  const bundles = e.bundles as Record<string, { revision?: unknown }> | undefined;
  const first = bundles && Object.values(bundles)[0];
  return typeof first?.revision === 'string' ? first.revision : null;
}

function inputAt(e: Event, ...path: string[]): unknown {
  let v: unknown = e.input;
  for (const p of path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
  return v;
}

function firstCall(e: Event): string | null {
  const calls = inputAt(e, 'mcp', 'calls');
  const first = Array.isArray(calls) ? (calls[0] as Record<string, unknown> | undefined) : undefined;
  return stringOrNull(first?.name) ?? stringOrNull(first?.uri);
}

function stringOrNull(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

function isRegoFolder(path: string): boolean {
  try {
    if (!statSync(path).isDirectory()) return false;
    const names = readdirSync(path);
    return !names.includes('policy.wasm') && names.some((n) => n.endsWith('.rego'));
  } catch {
    return false;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The changed decisions as a table, then the counts. */
export function replayTable(r: ReplayReport): string {
  const verdict = (v: Verdict) => (v.code ? `${v.decision} ${v.code}` : v.decision);
  const rows = r.changed.map((c) => [
    c.decision_id ?? '-',
    c.endpoint ?? '-',
    c.tool ?? '-',
    verdict(c.enforced),
    verdict(c.candidate) + (c.masked.length > 0 ? ' (masked)' : ''),
  ]);
  const head = ['DECISION ID', 'ENDPOINT', 'TOOL', 'ENFORCED', 'CANDIDATE'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const s = r.skipped;
  const summary =
    `${r.records} records: ${r.replayed} replayed through ${r.candidate}, ${r.changed.length} would change, ${r.unchanged} unchanged; ` +
    `skipped ${s.no_input} without input, ${s.masked} masked, ${s.not_a_decision} not decisions\n`;
  return (rows.length > 0 ? [line(head), ...rows.map(line)].join('\n') + '\n\n' : '') + summary;
}

/** `mcp-authz replay …`: prints the report; 0 unchanged, 1 changed, 2 could not run. */
export async function replayCommand(args: string[]): Promise<number> {
  let values: Record<string, unknown>;
  let files: string[];
  try {
    const parsed = parseArgs({
      args,
      options: {
        bundle: { type: 'string' },
        config: { type: 'string', short: 'c' },
        json: { type: 'boolean' },
        'skip-masked': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
    });
    values = parsed.values;
    files = parsed.positionals;
  } catch (err) {
    process.stderr.write(`mcp-authz: ${(err as Error).message}\n\n${REPLAY_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(REPLAY_USAGE);
    return 0;
  }
  const usage = (msg: string) => {
    process.stderr.write(`mcp-authz: ${msg}\n\n${REPLAY_USAGE}`);
    return 2;
  };
  if (typeof values.bundle !== 'string') return usage('replay needs --bundle CANDIDATE');
  if (files.length === 0)
    return usage('replay needs at least one file of decision-log records (or - for standard input)');
  try {
    const { loadConfigFile } = await import('../config/load.js');
    const { QUICKSTART_CONFIG } = await import('../config/paths.mjs');
    const loaded = loadConfigFile((values.config as string | undefined) ?? QUICKSTART_CONFIG);
    const events: Event[] = [];
    let notDecisions = 0;
    for (const f of files) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(f === '-' ? 0 : f);
      } catch (err) {
        throw new Error(`cannot read ${f}: ${(err as Error).message}`);
      }
      let read;
      try {
        read = readRecords(bytes);
      } catch (err) {
        throw new Error(`${f}: ${(err as Error).message}`);
      }
      events.push(...read.events);
      notDecisions += read.notDecisions;
    }
    const report = await replay(loaded, values.bundle, events, {
      skipMasked: values['skip-masked'] === true,
      notDecisions,
    });
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : replayTable(report));
    return report.changed.length > 0 ? 1 : 0;
  } catch (err) {
    process.stderr.write(`mcp-authz replay: ${(err as Error).message}\n`);
    return 2;
  }
}
