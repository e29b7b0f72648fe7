// The definitions an MCP server lists, for `mcp-authz pins`: read from a saved response (a
// JSON-RPC response or batch, a bare result, several of them in an array, or an SSE stream's
// text), or asked of a live Streamable HTTP endpoint (initialize, then every page of
// tools/list — and prompts/list, resources/templates/list when the server offers them).
import type { PinKind } from '../pins/definition.js';
import { packageVersion } from '../config/version.js';

export type Listed = Partial<Record<PinKind, Record<string, unknown>[]>>;

const ARRAY_KEYS: Record<string, PinKind> = {
  tools: 'tools',
  prompts: 'prompts',
  resourceTemplates: 'resourceTemplates',
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Adds the items of one list result to `into`; false when it holds no list. */
function addResult(result: unknown, into: Listed): boolean {
  if (!isObject(result)) return false;
  let found = false;
  for (const [key, kind] of Object.entries(ARRAY_KEYS)) {
    const items = result[key];
    if (!Array.isArray(items)) continue;
    found = true;
    const list = (into[kind] ??= []);
    items.forEach((item, i) => {
      if (!isObject(item)) throw new Error(`${key}[${i}] is not an object`);
      list.push(item);
    });
  }
  return found;
}

/** The SSE events' data, joined per event, as JSON values. */
function sseMessages(text: string): unknown[] {
  const out: unknown[] = [];
  let data: string[] = [];
  for (const line of `${text}\n`.split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data.length > 0) out.push(JSON.parse(data.join('\n')));
      data = [];
    } else if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
  }
  return out;
}

/** Reads a saved list response. Throws naming what it could not read. */
export function listedFromText(text: string, what: string): Listed {
  const trimmed = text.trimStart();
  let values: unknown[];
  try {
    values = trimmed.startsWith('{') || trimmed.startsWith('[') ? [JSON.parse(text)] : sseMessages(text);
  } catch (err) {
    throw new Error(`${what}: not JSON or an SSE stream of JSON: ${(err as Error).message}`);
  }
  const listed: Listed = {};
  let found = false;
  const visit = (v: unknown) => {
    if (Array.isArray(v)) {
      for (const e of v) visit(e);
      return;
    }
    if (!isObject(v)) return;
    if (isObject(v.error)) throw new Error(`${what}: the server answered an error: ${JSON.stringify(v.error)}`);
    if (addResult('result' in v ? v.result : v, listed)) found = true;
  };
  try {
    for (const v of values) visit(v);
  } catch (err) {
    throw new Error(
      (err as Error).message.startsWith(what) ? (err as Error).message : `${what}: ${(err as Error).message}`,
    );
  }
  if (!found) throw new Error(`${what}: no tools/list, prompts/list or resources/templates/list result in it`);
  return listed;
}

export interface LiveOptions {
  url: string;
  /** Extra request headers (Authorization, X-API-Key). Never printed. */
  headers: Record<string, string>;
  timeoutMs: number;
  /** At most this many pages per list (a server that pages forever). */
  maxPages?: number;
}

/** Lists a live endpoint's definitions over Streamable HTTP. Throws with what went wrong (never a credential). */
export async function listedFromEndpoint(o: LiveOptions): Promise<Listed> {
  let session: string | undefined;
  let protocol: string | undefined;
  let nextId = 1;
  const post = async (body: Record<string, unknown>): Promise<unknown> => {
    const headers: Record<string, string> = {
      ...o.headers,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    if (session) headers['mcp-session-id'] = session;
    if (protocol) headers['mcp-protocol-version'] = protocol;
    const res = await fetch(o.url, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    const sid = res.headers.get('mcp-session-id');
    if (sid) session = sid;
    const text = await res.text();
    if (!('id' in body)) return undefined;
    if (!res.ok) throw new Error(`${body.method}: HTTP ${res.status} ${text.slice(0, 200)}`);
    const type = res.headers.get('content-type') ?? '';
    const messages = type.startsWith('text/event-stream') ? sseMessages(text) : [JSON.parse(text)];
    const answer = messages.flat().find((m) => isObject(m) && m.id === body.id) as Record<string, unknown> | undefined;
    if (!answer) throw new Error(`${body.method}: no answer to the request in the response`);
    if (isObject(answer.error)) throw new Error(`${body.method}: ${JSON.stringify(answer.error)}`);
    return answer.result;
  };
  const init = (await post({
    jsonrpc: '2.0',
    id: nextId++,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'mcp-authz pins', version: packageVersion() },
    },
  })) as Record<string, unknown> | undefined;
  protocol = typeof init?.protocolVersion === 'string' ? init.protocolVersion : '2025-11-25';
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  const caps = isObject(init?.capabilities) ? init.capabilities : {};
  const listed: Listed = {};
  const lists: [string, boolean][] = [
    ['tools/list', true],
    ['prompts/list', isObject(caps.prompts)],
    ['resources/templates/list', isObject(caps.resources)],
  ];
  for (const [method, offered] of lists) {
    if (!offered) continue;
    let cursor: string | undefined;
    const pages = o.maxPages ?? 1000;
    for (let page = 0; page < pages; page++) {
      const result = await post({ jsonrpc: '2.0', id: nextId++, method, params: cursor ? { cursor } : {} });
      if (!addResult(result, listed)) throw new Error(`${method}: the result holds no list`);
      const next = isObject(result) ? result.nextCursor : undefined;
      if (typeof next !== 'string' || next === '') break;
      cursor = next;
    }
  }
  return listed;
}
