// One end-to-end stack: a real MCP server behind the Envoy stand-in's ext_authz (or ext_proc) filter (demo/envoy-stand-in/), which asks
// the real mcp-authz (real gRPC) about every request. The service starts last so its config
// can name the proxy's URL (`publicBaseUrl`, endpoint `resource`s). The upstream is the SDK's
// TypeScript server unless the caller starts another (e.g. the Go server).
import { startTestService, type TestService } from '../helpers/service.js';
import type { BuildOptions } from '../../src/pipeline/build-runtime.js';
import {
  startExtAuthzProxy,
  type ExtAuthzProxy,
  type ProxyOptions,
} from '../../demo/envoy-stand-in/ext-authz-proxy.js';
import {
  RECOMMENDED_EXT_PROC,
  startExtProcProxy,
  type ExtProcProxy,
  type ExtProcProxyOptions,
} from '../../demo/envoy-stand-in/ext-proc-proxy.js';
import { startMcpServer, type McpServerOptions, type TestMcpServer } from './mcp-server.js';

/** An MCP server the proxy forwards allowed requests to. */
export interface Upstream {
  /** http://host:port */
  url: string;
  stop(): Promise<void>;
}

export interface Stack<U extends Upstream = TestMcpServer> {
  proxy: ExtAuthzProxy;
  mcp: U;
  svc: TestService;
  /** The client-facing URL of an endpoint path, e.g. url('/mcp/files'). */
  url(path: string): URL;
  stop(): Promise<void>;
}

export function startStack(opts: StackOptions): Promise<Stack>;
export function startStack<U extends Upstream>(opts: StackOptions & { upstream: () => Promise<U> }): Promise<Stack<U>>;
export async function startStack(
  opts: StackOptions & { upstream?: () => Promise<Upstream> },
): Promise<Stack<Upstream>> {
  const mcp = await (opts.upstream ?? startMcpServer)();
  let proxy: ExtAuthzProxy;
  let svc: TestService;
  try {
    proxy = await startExtAuthzProxy(opts.proxy);
  } catch (err) {
    await mcp.stop();
    throw err;
  }
  try {
    svc = await startTestService(opts.config(proxy.url), {
      files: opts.files ?? {},
      ...(opts.runtime ? { runtime: opts.runtime } : {}),
    });
  } catch (err) {
    await Promise.all([proxy.stop(), mcp.stop()]);
    throw err;
  }
  proxy.attach({ authz: `127.0.0.1:${svc.grpcPort}`, upstream: mcp.url, service: `http://127.0.0.1:${svc.httpPort}` });
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

export interface StackOptions {
  config: (proxyUrl: string) => Record<string, unknown>;
  files?: Record<string, string>;
  /** Options for the service's runtime (a fake clock for upstream credentials). */
  runtime?: BuildOptions;
  proxy?: ProxyOptions;
}

export { RECOMMENDED_EXT_PROC };

export interface ExtProcStack<U extends Upstream = TestMcpServer> {
  proxy: ExtProcProxy;
  mcp: U;
  svc: TestService;
  url(path: string): URL;
  stop(): Promise<void>;
}

/** The same stack with the Envoy-like ext_proc filter in front instead: mcp-authz decides requests and filters lists. */
export async function startExtProcStack<U extends Upstream = TestMcpServer>(opts: {
  config: (proxyUrl: string) => Record<string, unknown>;
  files?: Record<string, string>;
  runtime?: BuildOptions;
  proxy?: ExtProcProxyOptions;
  server?: McpServerOptions;
  /** Another MCP server than the SDK's 2025-11-25 one (the 2026-07-28 server). */
  upstream?: () => Promise<U>;
}): Promise<ExtProcStack<U>> {
  const mcp = (await (opts.upstream ? opts.upstream() : startMcpServer(opts.server))) as U;
  let proxy: ExtProcProxy;
  let svc: TestService;
  try {
    proxy = await startExtProcProxy(opts.proxy ?? RECOMMENDED_EXT_PROC);
  } catch (err) {
    await mcp.stop();
    throw err;
  }
  try {
    svc = await startTestService(opts.config(proxy.url), {
      files: opts.files ?? {},
      ...(opts.runtime ? { runtime: opts.runtime } : {}),
    });
  } catch (err) {
    await Promise.all([proxy.stop(), mcp.stop()]);
    throw err;
  }
  proxy.attach({ processor: `127.0.0.1:${svc.grpcPort}`, upstream: mcp.url });
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
