// A real MCP 2026-07-28 server for the end-to-end tests: the v2 TypeScript SDK's
// createMcpHandler (modern only: a legacy request is its -32022), served over node:http.
// Its execute_sql tool mirrors `region` into the Mcp-Param-Region header (x-mcp-header).
// Every request that reaches it and every tool call are recorded, with the headers it got.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';

export interface ModernMcpServer {
  url: string;
  /** Every HTTP request that reached the server: method, path, lower-cased headers and body. */
  requests: { method: string; url: string; headers: Record<string, string>; body: string }[];
  /** Every execute_sql call, with the arguments the handler ran with. */
  sqlCalls: { region: string; query: string }[];
  stop(): Promise<void>;
}

/** `descriptions`: tool descriptions read on every request, which a test may change between two lists. */
export async function startModernMcpServer(
  opts: { descriptions?: Record<string, string> } = {},
): Promise<ModernMcpServer> {
  const requests: ModernMcpServer['requests'] = [];
  const sqlCalls: ModernMcpServer['sqlCalls'] = [];
  const handler = createMcpHandler(
    () => {
      const server = new McpServer({ name: 'e2e-modern', version: '1.0.0' });
      server.registerTool(
        'execute_sql',
        {
          description: opts.descriptions?.execute_sql ?? 'Run SQL in a region',
          inputSchema: z.object({ region: z.string().meta({ 'x-mcp-header': 'Region' }), query: z.string() }),
        },
        async ({ region, query }) => {
          sqlCalls.push({ region, query });
          return { content: [{ type: 'text', text: `${region}: ${query}` }] };
        },
      );
      server.registerTool(
        'drop_table',
        { description: 'Drop a table', inputSchema: z.object({ table: z.string() }) },
        async () => ({ content: [{ type: 'text', text: 'dropped' }] }),
      );
      return server;
    },
    { legacy: 'reject' },
  );

  const server = http.createServer(async (req, res) => {
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      const headers = new Headers();
      const seen: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v === undefined) continue;
        const value = Array.isArray(v) ? v.join(', ') : v;
        headers.set(k, value);
        seen[k] = value;
      }
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: seen, body: body.toString('utf8') });
      const hasBody = body.length > 0 && req.method !== 'GET' && req.method !== 'HEAD';
      const response = await handler.fetch(
        new Request(`http://127.0.0.1${req.url}`, { method: req.method, headers, ...(hasBody ? { body } : {}) }),
      );
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(Buffer.from(await response.arrayBuffer()));
    } catch (err) {
      res.writeHead(500).end(String(err));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    sqlCalls,
    stop: async () => {
      await handler.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
