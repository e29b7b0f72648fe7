// Sends a scenario's request once and checks the decision — with a grpc-js client, or over
// HTTP/1.1 for Envoy's HTTP ext_authz shape — so an allow scenario that is denied (or a deny
// that allows) fails instead of timing a fast error.
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { clientConstructors } from '../../src/envoy/protos.js';
import { deniedStatus, type CheckResponse } from '../../test/helpers/service.js';
import type { Expectation, HttpShape } from './scenarios.js';

export interface Observed {
  allow: boolean;
  grpcStatus: number;
  status: number;
  error?: string;
  description?: string;
}

export interface Verdict {
  ok: boolean;
  expected: Expectation;
  observed?: Observed;
  /** Transport failure: no CheckResponse at all. */
  failure?: string;
}

export class CheckClient {
  private readonly client: grpc.Client & Record<string, any>;

  constructor(target: string) {
    const { Authorization } = clientConstructors();
    this.client = new Authorization(target, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
  }

  check(req: Record<string, unknown>, timeoutMs = 5000): Promise<CheckResponse> {
    return new Promise((resolve, reject) => {
      this.client.Check(
        req,
        { deadline: Date.now() + timeoutMs },
        (err: grpc.ServiceError | null, res: CheckResponse) => (err ? reject(err) : resolve(res)),
      );
    });
  }

  async verify(req: Record<string, unknown>, expected: Expectation): Promise<Verdict> {
    let res: CheckResponse;
    try {
      res = await this.check(req);
    } catch (err) {
      return { ok: false, expected, failure: (err as Error).message };
    }
    const observed = observe(res);
    const ok =
      observed.allow === expected.allow &&
      (expected.allow ||
        (observed.status === expected.status && (expected.error === undefined || observed.error === expected.error)));
    return { ok, expected, observed };
  }

  /** Polls until the server answers a Check (any decision) or the deadline passes. */
  async waitReady(req: Record<string, unknown>, deadlineMs: number, alive: () => boolean): Promise<void> {
    const until = Date.now() + deadlineMs;
    let last = '';
    while (Date.now() < until) {
      if (!alive()) throw new Error('server exited before it was ready');
      try {
        await this.check(req, 1000);
        return;
      } catch (err) {
        last = (err as Error).message;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    throw new Error(`server not answering Check after ${deadlineMs} ms: ${last}`);
  }

  close(): void {
    this.client.close();
  }
}

function observe(res: CheckResponse): Observed {
  const grpcStatus = res.status?.code ?? 0;
  if (grpcStatus === 0 && !res.denied_response) return { allow: true, grpcStatus, status: 200 };
  let error: string | undefined;
  let description: string | undefined;
  try {
    const body = JSON.parse(res.denied_response?.body ?? '');
    error = typeof body?.error === 'string' ? body.error : undefined;
    description = typeof body?.error_description === 'string' ? body.error_description : undefined;
  } catch {
    /* not JSON */
  }
  return {
    allow: false,
    grpcStatus,
    status: deniedStatus(res) ?? 0,
    ...(error ? { error } : {}),
    ...(description ? { description } : {}),
  };
}

/** One line: what was expected and what came back. */
export function describe(v: Verdict): string {
  const want = v.expected.allow
    ? 'allow'
    : `deny ${v.expected.status}${v.expected.error ? ` ${v.expected.error}` : ''}`;
  if (v.failure) return `expected ${want}, the call failed: ${v.failure}`;
  const o = v.observed!;
  const got = o.allow
    ? 'allow'
    : `deny ${o.status}${o.error ? ` ${o.error}` : ''}${o.description ? ` ("${o.description}")` : ''}`;
  return `expected ${want}, got ${got}`;
}

/**
 * The HTTP ext_authz shape (Envoy's `http_service`): the client's request forwarded as it
 * came; 200 is an allow, any other status a deny whose body goes to the client.
 */
export class HttpCheckClient {
  private readonly agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });

  constructor(private readonly origin: string) {}

  check(
    shape: HttpShape,
    timeoutMs = 5000,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
    const url = new URL(shape.path, this.origin);
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        url,
        {
          method: shape.method,
          headers: { ...shape.headers, host: shape.host },
          agent: this.agent,
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(shape.body);
    });
  }

  async verify(shape: HttpShape, expected: Expectation): Promise<Verdict> {
    let res: Awaited<ReturnType<HttpCheckClient['check']>>;
    try {
      res = await this.check(shape);
    } catch (err) {
      return { ok: false, expected, failure: (err as Error).message };
    }
    let error: string | undefined;
    try {
      const body = JSON.parse(res.body);
      error = typeof body?.error === 'string' ? body.error : undefined;
    } catch {
      /* not JSON (an allow has no body) */
    }
    const observed: Observed = {
      allow: res.status === 200,
      grpcStatus: -1,
      status: res.status,
      ...(error ? { error } : {}),
    };
    const ok =
      observed.allow === expected.allow &&
      (expected.allow ||
        (observed.status === expected.status && (expected.error === undefined || observed.error === expected.error)));
    return { ok, expected, observed };
  }

  close(): void {
    this.agent.destroy();
  }
}
