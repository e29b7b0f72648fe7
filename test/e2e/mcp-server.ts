// A real MCP server for the end-to-end tests: the SDK's McpServer over Streamable HTTP
// (stateless: one server and transport per HTTP request; SSE responses, or JSON ones on the
// paths the caller picks), with tools, prompts, resources and a resource template. Every
// handler call is recorded with the HTTP headers the server received, so tests can assert
// what reached it — and that a refused call never ran.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { completable } from '@modelcontextprotocol/sdk/server/completable.js';
import {
  ListToolsRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type ListToolsResult,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

export interface HandlerCall {
  kind: 'tool' | 'prompt' | 'resource' | 'completion' | 'subscription';
  /** Tool or prompt name, or resource URI (or template, for a completion of its argument). */
  name: string;
  /** Lower-cased HTTP request headers as the MCP server received them. */
  headers: Record<string, string>;
  /** The request URL path and query as the MCP server received them. */
  url: string;
}

export interface TestMcpServer {
  /** http://127.0.0.1:port — mount the MCP endpoint at any path: every path serves it. */
  url: string;
  /** Every handler call, in order. */
  calls: HandlerCall[];
  /** Every HTTP request that reached the server (method and URL). */
  httpRequests: { method: string; url: string; headers: Record<string, string> }[];
  /** Calls of one tool/prompt/resource. */
  callsOf(name: string): HandlerCall[];
  /**
   * `wait_for_release` — and tools/list when the client asks for progress — sends a progress
   * notification and then waits until the test calls this: a client that sees the
   * notification before the result proves the response is streamed end to end, not buffered.
   */
  release(): void;
  stop(): Promise<void>;
}

/** Every tool, prompt, resource and resource template the server exposes. */
export const EXPOSED = {
  tools: ['search', 'read_file', 'delete_file', 'wait_for_release'],
  prompts: ['summarize', 'draft_release_notes'],
  resources: ['file:///README.md', 'file:///secrets/keys.txt'],
  resourceTemplates: ['file:///docs/{name}'],
};

export interface McpServerOptions {
  /** Request paths answered with `application/json` instead of an SSE stream. */
  jsonResponse?: (path: string) => boolean;
  /**
   * Also expose a prompt `payroll_lookup` and a template `file:///hr/{employee}` whose
   * `employee` argument completes (to EMPLOYEES), and take resources/subscribe and
   * resources/unsubscribe: each completion and subscription is recorded.
   */
  completions?: boolean;
  /**
   * Tool descriptions the server lists, read on every request: a test changes one between two
   * lists as a server that changes a reviewed tool would (docs/pinning.md).
   */
  descriptions?: Record<string, string>;
  /** Tool annotations (search, delete_file) the server lists. */
  annotations?: Record<string, { readOnlyHint?: boolean; destructiveHint?: boolean }>;
}

/** The values the completable arguments complete to. */
export const EMPLOYEES = ['alice', 'alex', 'bob'];

export async function startMcpServer(opts: McpServerOptions = {}): Promise<TestMcpServer> {
  const calls: HandlerCall[] = [];
  const httpRequests: TestMcpServer['httpRequests'] = [];
  let releaseWaiters: (() => void)[] = [];

  const record = (
    kind: HandlerCall['kind'],
    name: string,
    extra: { requestInfo?: { headers: Record<string, string | string[] | undefined>; url?: URL } },
  ) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(extra.requestInfo?.headers ?? {})) {
      if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
    }
    const u = extra.requestInfo?.url;
    calls.push({ kind, name, headers, url: u ? u.pathname + u.search : '' });
  };

  const build = () => {
    const server = new McpServer({ name: 'e2e-files', version: '1.0.0' });
    server.registerTool(
      'search',
      {
        description: opts.descriptions?.search ?? 'Search files',
        inputSchema: { query: z.string() },
        ...(opts.annotations?.search ? { annotations: opts.annotations.search } : {}),
      },
      async ({ query }, extra) => {
        record('tool', 'search', extra);
        return { content: [{ type: 'text', text: `results for ${query}` }] };
      },
    );
    server.registerTool(
      'read_file',
      { description: 'Read a file', inputSchema: { path: z.string() } },
      async ({ path }, extra) => {
        record('tool', 'read_file', extra);
        return { content: [{ type: 'text', text: `contents of ${path}` }] };
      },
    );
    server.registerTool(
      'delete_file',
      {
        description: opts.descriptions?.delete_file ?? 'Delete a file',
        inputSchema: { path: z.string() },
        ...(opts.annotations?.delete_file ? { annotations: opts.annotations.delete_file } : {}),
      },
      async ({ path }, extra) => {
        record('tool', 'delete_file', extra);
        return { content: [{ type: 'text', text: `deleted ${path}` }] };
      },
    );
    server.registerTool(
      'wait_for_release',
      { description: 'Reports progress, then waits for the test' },
      async (extra) => {
        record('tool', 'wait_for_release', extra);
        const progressToken = extra._meta?.progressToken;
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken, progress: 1, total: 2, message: 'started' },
          });
        }
        await new Promise<void>((resolve) => releaseWaiters.push(resolve));
        return { content: [{ type: 'text', text: 'released' }] };
      },
    );
    server.registerPrompt(
      'summarize',
      { description: 'Summarize a file', argsSchema: { path: z.string() } },
      ({ path }, extra) => {
        record('prompt', 'summarize', extra);
        return { messages: [{ role: 'user', content: { type: 'text', text: `Summarize ${path}` } }] };
      },
    );
    server.registerPrompt('draft_release_notes', { description: 'Draft release notes' }, (extra) => {
      record('prompt', 'draft_release_notes', extra);
      return { messages: [{ role: 'user', content: { type: 'text', text: 'Draft the notes' } }] };
    });
    server.registerResource(
      'readme',
      'file:///README.md',
      { description: 'The README', mimeType: 'text/plain' },
      (uri, extra) => {
        record('resource', uri.href, extra);
        return { contents: [{ uri: uri.href, text: '# hello' }] };
      },
    );
    server.registerResource(
      'keys',
      'file:///secrets/keys.txt',
      { description: 'Signing keys', mimeType: 'text/plain' },
      (uri, extra) => {
        record('resource', uri.href, extra);
        return { contents: [{ uri: uri.href, text: 'secret' }] };
      },
    );
    server.registerResource(
      'docs',
      new ResourceTemplate('file:///docs/{name}', { list: undefined }),
      { description: 'A document' },
      (uri, _vars, extra) => {
        record('resource', uri.href, extra);
        return { contents: [{ uri: uri.href, text: 'doc' }] };
      },
    );
    if (opts.completions) {
      const employee = (item: string) => (value: string) => {
        calls.push({ kind: 'completion', name: item, headers: {}, url: '' });
        return EMPLOYEES.filter((e) => e.startsWith(value));
      };
      server.registerPrompt(
        'payroll_lookup',
        {
          description: "Look up an employee's pay",
          argsSchema: { employee: completable(z.string(), employee('payroll_lookup')) },
        },
        ({ employee: who }, extra) => {
          record('prompt', 'payroll_lookup', extra);
          return { messages: [{ role: 'user', content: { type: 'text', text: `Pay of ${who}` } }] };
        },
      );
      server.registerResource(
        'hr',
        new ResourceTemplate('file:///hr/{employee}', {
          list: undefined,
          complete: { employee: employee('file:///hr/{employee}') },
        }),
        { description: 'An employee file' },
        (uri, _vars, extra) => {
          record('resource', uri.href, extra);
          return { contents: [{ uri: uri.href, text: 'pay' }] };
        },
      );
      server.server.registerCapabilities({ resources: { subscribe: true } });
      for (const schema of [SubscribeRequestSchema, UnsubscribeRequestSchema]) {
        server.server.setRequestHandler(schema, (req, extra) => {
          record('subscription', req.params.uri, extra as never);
          return {};
        });
      }
    }
    // tools/list as the SDK answers it, after a progress notification and the test's release
    // when the client asks for progress.
    const lists = (
      server.server as unknown as {
        _requestHandlers: Map<string, (req: unknown, extra: unknown) => Promise<ListToolsResult>>;
      }
    )._requestHandlers;
    const listTools = lists.get('tools/list')!;
    server.server.setRequestHandler(ListToolsRequestSchema, async (req, extra) => {
      const progressToken = req.params?._meta?.progressToken;
      if (progressToken !== undefined) {
        await extra.sendNotification({
          method: 'notifications/progress',
          params: { progressToken, progress: 1, total: 2, message: 'listing' },
        });
        await new Promise<void>((resolve) => releaseWaiters.push(resolve));
      }
      return listTools(req, extra);
    });
    return server;
  };

  const httpServer = http.createServer((req, res) => {
    httpRequests.push({ method: req.method ?? '', url: req.url ?? '', headers: flatHeaders(req.headers) });
    if (req.method !== 'POST') {
      // Stateless server: no standalone SSE stream and no sessions to delete.
      res.writeHead(405, { allow: 'POST', 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null }));
      return;
    }
    const server = build();
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: opts.jsonResponse?.(req.url ?? '') ?? false,
    });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    server
      .connect(transport)
      .then(() => transport.handleRequest(req, res))
      .catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500).end(err.message);
      });
  });

  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    httpRequests,
    callsOf: (name) => calls.filter((c) => c.name === name),
    release() {
      const waiting = releaseWaiters;
      releaseWaiters = [];
      for (const w of waiting) w();
    },
    stop: async () => {
      for (const w of releaseWaiters) w();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}

function flatHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}
