// The benchmark's requests: CheckRequests shaped as Envoy's ext_authz filter sends them
// (test/helpers/service.ts), each with the decision every system must answer.
import { checkRequest, rpc } from '../../test/helpers/service.js';

export const BENCH_USER = 'bench-user';
export const GRANTS = ['tools:search', 'tools:read_*'];
export const OAUTH_SCOPE = 'tools:search tools:read_file';
export const HOST = 'mcp.example.com';
export const PATHS = {
  apiKey: '/mcp/files',
  oauth: '/mcp/oauth',
  open: '/mcp/open',
  apiKeyExchanged: '/mcp/files-upstream',
  oauthExchanged: '/mcp/oauth-upstream',
  /** The files endpoint with its 50 tools pinned (enforce): bench/run.ts writes the pins file. */
  pinned: '/mcp/files-pinned',
} as const;
export const OAUTH_RESOURCE = `https://${HOST}${PATHS.oauth}`;

export interface Expectation {
  allow: boolean;
  /** HTTP status of the denied response (200 for an allow). */
  status: number;
  /** The JSON body's `error`, when denied. */
  error?: string;
}

export interface Scenario {
  name: string;
  what: string;
  /** One request, or several sent round-robin (distinct tokens), as CheckRequests. */
  requests: Record<string, unknown>[];
  /** The same requests as the client sent them: what Envoy's HTTP ext_authz forwards. */
  http: HttpShape[];
  expect: Expectation;
  /** What of mcp-authz this scenario exercises beyond the pipeline. */
  needs: string[];
  /** Run only when named in --scenarios (other systems have no such endpoint). */
  optIn?: boolean;
  /** The same requests to an endpoint without this scenario's extra step: `--in-process --interleave` measures the two side by side. */
  comparesWith?: { name: string; requests: Record<string, unknown>[] };
}

// Headers an MCP client sends through Envoy, so the CheckRequest has a realistic size.
const clientHeaders = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-06-18',
  'mcp-session-id': '6f1c1a52-2b7e-4c59-9d55-0f7a3b4f2d10',
  'user-agent': 'claude-code/1.0.88 (bench)',
  'x-forwarded-proto': 'https',
  'x-request-id': 'c1d9a0f4-6e43-4a8e-9d7e-3b1f0a2c5e77',
};

const readFile = rpc('tools/call', { name: 'read_file', arguments: { path: '/docs/README.md' } }, 7);
const deleteFile = rpc('tools/call', { name: 'delete_file', arguments: { path: '/docs/README.md' } }, 7);
const toolsList = rpc('tools/list', {}, 3);

/** An MCP client's POST as it reaches Envoy. */
export interface HttpShape {
  method: string;
  path: string;
  host: string;
  headers: Record<string, string>;
  body: string;
}

function post(path: string, body: string, headers: Record<string, string>): HttpShape {
  return { method: 'POST', path, host: HOST, body, headers: { ...clientHeaders, ...headers } };
}

/** The requests of a scenario, in both shapes. */
function sent(shapes: HttpShape[]): Pick<Scenario, 'requests' | 'http'> {
  return { requests: shapes.map((h) => checkRequest(h)), http: shapes };
}

export interface Credentials {
  apiKey: string;
  unknownApiKey: string;
  token: string;
  distinctTokens: string[];
}

export function scenarios(c: Credentials): Scenario[] {
  const apiKeyAllow = sent([post(PATHS.apiKey, readFile, { 'x-api-key': c.apiKey })]);
  const oauthCached = sent([post(PATHS.oauth, readFile, { authorization: `Bearer ${c.token}` })]);
  return [
    {
      name: 'anonymous_open',
      what: 'auth-off endpoint, tools/list (pipeline only: no authentication, no policy)',
      ...sent([post(PATHS.open, toolsList, {})]),
      expect: { allow: true, status: 200 },
      needs: [],
    },
    {
      name: 'apikey_tool_allow',
      what: 'X-API-Key of the owner + tools/call read_file, granted by tools:read_*',
      ...apiKeyAllow,
      expect: { allow: true, status: 200 },
      needs: ['api keys', 'policy'],
    },
    {
      name: 'apikey_tool_deny',
      what: 'same key + tools/call delete_file, not granted',
      ...sent([post(PATHS.apiKey, deleteFile, { 'x-api-key': c.apiKey })]),
      expect: { allow: false, status: 403, error: 'access_denied' },
      needs: ['api keys', 'policy'],
    },
    {
      name: 'invalid_key',
      what: 'well-formed but unknown API key',
      ...sent([post(PATHS.apiKey, readFile, { 'x-api-key': c.unknownApiKey })]),
      expect: { allow: false, status: 401, error: 'invalid_api_key' },
      needs: ['api keys'],
    },
    {
      name: 'oauth_cached',
      what: 'one RS256 bearer token repeated (verified-token cache hit) + tools/call read_file',
      ...oauthCached,
      expect: { allow: true, status: 200 },
      needs: ['oauth', 'policy'],
    },
    {
      name: 'oauth_distinct',
      what: `${c.distinctTokens.length} distinct RS256 tokens round-robin (cache misses) + tools/call read_file`,
      ...sent(c.distinctTokens.map((t) => post(PATHS.oauth, readFile, { authorization: `Bearer ${t}` }))),
      expect: { allow: true, status: 200 },
      needs: ['oauth', 'policy'],
    },
    {
      name: 'apikey_tool_allow_exchanged',
      what: "apikey_tool_allow on an endpoint whose upstream gets the service's client-credentials token (cache warm) and the caller in a header",
      ...sent([post(PATHS.apiKeyExchanged, readFile, { 'x-api-key': c.apiKey })]),
      expect: { allow: true, status: 200 },
      needs: ['api keys', 'policy', 'upstream credentials'],
      optIn: true,
      comparesWith: { name: 'apikey_tool_allow', requests: apiKeyAllow.requests },
    },
    {
      name: 'oauth_exchanged',
      what: 'oauth_cached on an endpoint whose upstream gets an RFC 8693 exchanged token (cache warm)',
      ...sent([post(PATHS.oauthExchanged, readFile, { authorization: `Bearer ${c.token}` })]),
      expect: { allow: true, status: 200 },
      needs: ['oauth', 'policy', 'upstream credentials'],
      optIn: true,
      comparesWith: { name: 'oauth_cached', requests: oauthCached.requests },
    },
  ];
}
