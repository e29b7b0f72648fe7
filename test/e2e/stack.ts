// One end-to-end stack: a real MCP server behind the Envoy-like ext_authz proxy, which asks
// the real mcp-authz (real gRPC) about every request. The service starts last so its config
// can name the proxy's URL (`publicBaseUrl`, endpoint `resource`s).
import { startTestService, type TestService } from '../helpers/service.js';
import { startExtAuthzProxy, type ExtAuthzProxy, type ProxyOptions } from './ext-authz-proxy.js';
import { startMcpServer, type TestMcpServer } from './mcp-server.js';

export interface Stack {
  proxy: ExtAuthzProxy;
  mcp: TestMcpServer;
  svc: TestService;
  /** The client-facing URL of an endpoint path, e.g. url('/mcp/files'). */
  url(path: string): URL;
  stop(): Promise<void>;
}

export async function startStack(opts: {
  config: (proxyUrl: string) => Record<string, unknown>;
  files?: Record<string, string>;
  proxy?: ProxyOptions;
}): Promise<Stack> {
  const mcp = await startMcpServer();
  const proxy = await startExtAuthzProxy(opts.proxy);
  let svc: TestService;
  try {
    svc = await startTestService(opts.config(proxy.url), { files: opts.files ?? {} });
  } catch (err) {
    await Promise.all([proxy.stop(), mcp.stop()]);
    throw err;
  }
  proxy.attach({ authz: `127.0.0.1:${svc.grpcPort}`, upstream: mcp.url });
  return {
    proxy,
    mcp,
    svc,
    url: (path) => new URL(path, proxy.url),
    stop: async () => {
      await proxy.stop();
      await Promise.all([svc.stop(), mcp.stop()]);
    },
  };
}
