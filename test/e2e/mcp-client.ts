// The MCP client side of the end-to-end tests: the SDK's Client over its Streamable HTTP
// transport, with a fetch that keeps a copy of every HTTP response, so tests can assert
// exactly what the client saw (status, WWW-Authenticate, JSON body).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

export interface SeenResponse {
  method: string;
  url: string;
  status: number;
  headers: Headers;
  /** The response itself, unread (for the SDK's own parsers, e.g. extractWWWAuthenticateParams). */
  response: Response;
  /** The body text; undefined for streams (SSE), which are left to the SDK. */
  text?: string;
}

export interface RecordingFetch {
  fetch: typeof fetch;
  seen: SeenResponse[];
  /** The last response with this status. */
  last(status: number): SeenResponse | undefined;
}

const NULL_BODY = new Set([101, 204, 205, 304]);

export function recordingFetch(): RecordingFetch {
  const seen: SeenResponse[] = [];
  const wrapped = (async (input: string | URL | Request, init?: RequestInit) => {
    const res = await fetch(input, init);
    const url = input instanceof Request ? input.url : String(input);
    const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
    const entry: SeenResponse = { method, url, status: res.status, headers: res.headers, response: res };
    if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      seen.push(entry);
      return res;
    }
    const text = await res.text();
    const copy = () =>
      new Response(NULL_BODY.has(res.status) ? null : text, {
        status: res.status,
        statusText: res.statusText,
        headers: res.headers,
      });
    entry.text = text;
    entry.response = copy();
    seen.push(entry);
    return copy();
  }) as typeof fetch;
  return { fetch: wrapped, seen, last: (status) => seen.filter((s) => s.status === status).at(-1) };
}

export interface McpSession {
  client: Client;
  transport: StreamableHTTPClientTransport;
  http: RecordingFetch;
  close(): Promise<void>;
}

/** A client for `url`, not yet connected; `connect()` sends initialize. */
export function mcpClient(
  url: URL,
  opts: { headers?: Record<string, string>; authProvider?: OAuthClientProvider } = {},
): McpSession & { connect(): Promise<void> } {
  const http = recordingFetch();
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: opts.headers ?? {} },
    fetch: http.fetch,
    ...(opts.authProvider ? { authProvider: opts.authProvider } : {}),
  });
  const client = new Client({ name: 'e2e-client', version: '1.0.0' });
  return {
    client,
    transport,
    http,
    connect: () => client.connect(transport),
    close: () => client.close(),
  };
}

/** A connected client; throws what the SDK throws when initialize fails. */
export async function connectedClient(
  url: URL,
  opts: { headers?: Record<string, string>; authProvider?: OAuthClientProvider } = {},
): Promise<McpSession> {
  const s = mcpClient(url, opts);
  await s.connect();
  return s;
}

/** The JSON body of a response the client saw. */
export function jsonBody(seen: SeenResponse | undefined): Record<string, any> {
  return JSON.parse(seen?.text ?? 'null');
}
