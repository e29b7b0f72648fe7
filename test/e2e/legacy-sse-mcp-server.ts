// An MCP server on the 2024-11-05 HTTP+SSE transport, as the official TypeScript SDK still
// ships it (SSEServerTransport): `GET <prefix>/sse` opens the event stream, whose first event
// (`endpoint`) names `<prefix>/messages?sessionId=…`; the client POSTs its requests there,
// each answered 202, and every result arrives as a `message` event on the GET stream. Tools
// `search`, `read_file` and `delete_file`. Every handler call and HTTP request is recorded.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { z } from 'zod';

export const LEGACY_TOOLS = ['search', 'read_file', 'delete_file'];

export interface LegacySseMcpServer {
  url: string;
  /** Every HTTP request that reached the server (method and URL). */
  httpRequests: { method: string; url: string }[];
  /** Every event stream the server opened (one per GET it answered). */
  streamsOpened: number;
  /** Tools that ran, in order. */
  toolsRun: string[];
  stop(): Promise<void>;
}

export async function startLegacySseMcpServer(): Promise<LegacySseMcpServer> {
  const transports = new Map<string, SSEServerTransport>();
  const state: LegacySseMcpServer = {
    url: '',
    httpRequests: [],
    streamsOpened: 0,
    toolsRun: [],
    stop: async () => {},
  };
  const build = () => {
    const server = new McpServer({ name: 'e2e-legacy-sse', version: '1.0.0' });
    for (const name of LEGACY_TOOLS) {
      server.registerTool(
        name,
        { description: `The ${name} tool`, inputSchema: { arg: z.string().optional() } },
        async () => {
          state.toolsRun.push(name);
          return { content: [{ type: 'text', text: `${name} ran` }] };
        },
      );
    }
    return server;
  };

  const httpServer = http.createServer((req, res) => {
    state.httpRequests.push({ method: req.method ?? '', url: req.url ?? '' });
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname.endsWith('/sse')) {
      const prefix = url.pathname.slice(0, -'/sse'.length);
      const transport = new SSEServerTransport(`${prefix}/messages`, res);
      transports.set(transport.sessionId, transport);
      state.streamsOpened++;
      res.on('close', () => transports.delete(transport.sessionId));
      const server = build();
      server.connect(transport).catch(() => res.destroy());
      return;
    }
    if (req.method === 'POST' && url.pathname.endsWith('/messages')) {
      const transport = transports.get(url.searchParams.get('sessionId') ?? '');
      if (!transport) {
        res.writeHead(404).end('no such session');
        return;
      }
      void transport.handlePostMessage(req, res).catch(() => undefined);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
  state.stop = async () => {
    httpServer.closeAllConnections();
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
  };
  return state;
}
