// The OpenID AuthZEN Authorization API 1.0 on the HTTP port (docs/authzen.md): access
// evaluation, access evaluations (batch, with the three evaluation semantics) and the PDP
// metadata document. Callers authenticate with a shared secret from a file (a bearer token)
// or, on an mTLS port, with a client certificate whose SPIFFE ID is listed. A client's
// mistake is a 4xx with a message saying what is wrong (the spec's plain error string); a
// failure of the service is a 500 with a request id, never a stack.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AuthzenConfig } from '../config/decision-point-schema.js';
import { trimSlash } from '../contracts/trim-slash.js';
import type { Logger } from '../log/logger.js';
import type { Runtime } from '../pipeline/runtime.js';
import { scanJson } from '../request/json-body-scan.js';
import { SecretFile } from '../upstream/secret-file.js';
import { evaluate, type EvaluationResult } from './evaluate.js';
import { AuthzenBadRequest, readEvaluation, readEvaluations, type Evaluation } from './evaluation-request.js';

export const EVALUATION_PATH = '/access/v1/evaluation';
export const EVALUATIONS_PATH = '/access/v1/evaluations';
export const METADATA_PATH = '/.well-known/authzen-configuration';

/** A failure answered with a status and a message. */
class HttpFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface AuthzenServiceOptions {
  runtime: Runtime;
  config: AuthzenConfig;
  publicBaseUrl: string | undefined;
  logger: Logger;
  /** Re-read the secret file when it changes (serve: yes). */
  watch: boolean;
}

export class AuthzenService {
  private readonly secret: SecretFile<Buffer> | undefined;
  private readonly clients: readonly string[];

  private constructor(private readonly opts: AuthzenServiceOptions) {
    const { config } = opts;
    this.clients = config.mtlsClients ?? [];
    this.secret =
      config.secretFile === undefined
        ? undefined
        : new SecretFile<Buffer>({
            path: config.secretFile,
            what: 'the AuthZEN shared secret',
            parse: (text) => digest(text),
            pollIntervalMs: 5000,
            logger: opts.logger,
          });
  }

  static async create(opts: AuthzenServiceOptions): Promise<AuthzenService> {
    const s = new AuthzenService(opts);
    await s.secret?.load(opts.watch);
    return s;
  }

  /** The paths this service answers. */
  handles(path: string): boolean {
    return path === EVALUATION_PATH || path === EVALUATIONS_PATH || path === METADATA_PATH;
  }

  handle(req: IncomingMessage, res: ServerResponse, path: string): void {
    const requestId = headerOf(req, 'x-request-id');
    const send = (status: number, body: string, type: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, {
        'content-type': type,
        'cache-control': 'no-store',
        ...(requestId !== undefined ? { 'x-request-id': requestId } : {}),
        ...headers,
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    this.answer(req, path, requestId).then(
      (json) => send(200, JSON.stringify(json), 'application/json'),
      (err: unknown) => {
        if (err instanceof HttpFailure) {
          send(err.status, `${err.message}\n`, 'text/plain; charset=utf-8', err.headers);
          return;
        }
        const id = requestId ?? randomUUID();
        this.opts.logger.error({ err, request_id: id }, 'AuthZEN request failed');
        send(500, `internal error (request id ${id})\n`, 'text/plain; charset=utf-8');
      },
    );
  }

  close(): Promise<void> {
    return this.secret?.close() ?? Promise.resolve();
  }

  private async answer(req: IncomingMessage, path: string, requestId: string | undefined): Promise<unknown> {
    if (path === METADATA_PATH) {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpFailure(405, 'use GET', { allow: 'GET, HEAD' });
      return this.metadata(req);
    }
    if (req.method !== 'POST') throw new HttpFailure(405, `${path} takes POST`, { allow: 'POST' });
    this.authenticate(req);
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') throw new HttpFailure(400, 'the request must have Content-Type: application/json');
    const body = await this.readJson(req);
    const peer = { address: req.socket.remoteAddress ?? '', requestId };
    try {
      if (path === EVALUATION_PATH) return decision(await evaluate(this.opts.runtime, readEvaluation(body), peer));
      const batch = readEvaluations(body, this.opts.config.maxEvaluations);
      if (batch.single) {
        const only = batch.evaluations[0]!;
        if (only instanceof AuthzenBadRequest) throw only;
        return decision(await evaluate(this.opts.runtime, only, peer));
      }
      return { evaluations: await this.evaluateAll(batch.evaluations, batch.semantic, peer) };
    } catch (err) {
      if (err instanceof AuthzenBadRequest) throw new HttpFailure(400, err.message);
      throw err;
    }
  }

  /** In order; the short-circuit semantics stop after the first deny (or permit), which is the last answer. */
  private async evaluateAll(
    list: readonly (Evaluation | AuthzenBadRequest)[],
    semantic: 'execute_all' | 'deny_on_first_deny' | 'permit_on_first_permit',
    peer: { address: string; requestId: string | undefined },
  ): Promise<unknown[]> {
    const out: unknown[] = [];
    for (const e of list) {
      let answer: { decision: boolean; context?: unknown };
      try {
        if (e instanceof AuthzenBadRequest) throw e;
        answer = decision(await evaluate(this.opts.runtime, e, peer));
      } catch (err) {
        // One evaluation the service cannot map is a deny of that evaluation, with why.
        if (!(err instanceof AuthzenBadRequest)) throw err;
        answer = { decision: false, context: { error: { status: 400, message: err.message } } };
      }
      out.push(answer);
      if (semantic === 'deny_on_first_deny' && !answer.decision) break;
      if (semantic === 'permit_on_first_permit' && answer.decision) break;
    }
    return out;
  }

  private metadata(req: IncomingMessage): Record<string, unknown> {
    const base = trimSlash(
      this.opts.config.issuer ??
        this.opts.publicBaseUrl ??
        `${(req.socket as Partial<TLSSocket>).encrypted ? 'https' : 'http'}://${req.headers.host ?? 'localhost'}`,
    );
    return {
      policy_decision_point: base,
      access_evaluation_endpoint: `${base}${EVALUATION_PATH}`,
      access_evaluations_endpoint: `${base}${EVALUATIONS_PATH}`,
    };
  }

  /** A listed mTLS client, or the shared secret as a bearer token; anything else is a 401. */
  private authenticate(req: IncomingMessage): void {
    if (this.clients.length > 0 && this.mtlsClientListed(req)) return;
    if (this.secret) {
      const auth = headerOf(req, 'authorization');
      const m = auth === undefined ? null : /^Bearer +([!-~]+) *$/i.exec(auth);
      if (m) {
        const expected = this.secret.current;
        if (expected === undefined)
          throw new HttpFailure(503, 'the AuthZEN shared secret is not loaded (see the service log)');
        if (timingSafeEqual(digest(m[1]!), expected)) return;
      }
    }
    throw new HttpFailure(
      401,
      this.secret
        ? 'authenticate with the shared secret: Authorization: Bearer <secret>'
        : 'a listed client certificate is required',
      this.secret ? { 'www-authenticate': 'Bearer realm="mcp-authz AuthZEN"' } : {},
    );
  }

  private mtlsClientListed(req: IncomingMessage): boolean {
    const socket = req.socket as Partial<TLSSocket>;
    if (!socket.encrypted || !socket.authorized || typeof socket.getPeerCertificate !== 'function') return false;
    const san = socket.getPeerCertificate().subjectaltname ?? '';
    const uris = san
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.startsWith('URI:'))
      .map((s) => s.slice(4));
    // A certificate with several URI SANs names no one workload: refused, as the Check refuses it.
    if (uris.length !== 1) return false;
    const id = uris[0]!;
    return this.clients.some((p) => (p.endsWith('/*') ? id.startsWith(p.slice(0, -1)) : id === p));
  }

  private async readJson(req: IncomingMessage): Promise<unknown> {
    const max = this.opts.config.maxBodyBytes;
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max)
      throw new HttpFailure(413, `the request body is larger than ${max} bytes (authzen.maxBodyBytes)`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) throw new HttpFailure(413, `the request body is larger than ${max} bytes (authzen.maxBodyBytes)`);
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
    if (!Buffer.from(text, 'utf8').equals(bytes)) throw new HttpFailure(400, 'the request body is not valid UTF-8');
    // Read one way only: a repeated or case-folded key, a lone surrogate or a deep nesting is refused, not guessed at.
    const finding = scanJson(text, this.opts.runtime.config.limits.maxJsonDepth);
    if (finding) throw new HttpFailure(400, `the request body is refused: ${finding.code} at ${finding.path}`);
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new HttpFailure(400, `the request body is not valid JSON: ${(err as Error).message}`);
    }
  }
}

/** An evaluation's answer: `{decision}`, with the deny's code, status and decision id as context. */
function decision(r: EvaluationResult): { decision: boolean; context?: Record<string, unknown> } {
  if (r.allow) return { decision: true };
  return { decision: false, context: { reason: r.code, status: r.status, decision_id: r.decisionId } };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
