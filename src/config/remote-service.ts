// One configured service (OPA's `services` entry): its URL, its bearer token read from a
// file, its TLS settings, and a request that never waits or reads without bound. Bundles,
// decision logs and status reports reach their servers through it, off the Check path.
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ServiceConfig } from './management.js';

export interface ServiceRequest {
  method: 'GET' | 'POST';
  /** Path under the service URL ("bundles/authz", "/logs"). */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Extra time the server may hold the request before answering (long polling). */
  holdMs?: number;
  /** A response body longer than this is abandoned. */
  maxBytes: number;
  /** Aborts the request (the service is closing). */
  signal?: AbortSignal;
}

export interface ServiceResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export class ServiceError extends Error {
  readonly code = 'ERR_REMOTE_SERVICE';
}

export class RemoteService {
  private readonly base: URL;

  constructor(
    readonly name: string,
    private readonly cfg: ServiceConfig,
  ) {
    this.base = new URL(cfg.url.endsWith('/') ? cfg.url : `${cfg.url}/`);
  }

  /** The service's URL for a resource path, as OPA joins them. */
  url(path: string): URL {
    return new URL(path.replace(/^\/+/, ''), this.base);
  }

  async request(req: ServiceRequest): Promise<ServiceResponse> {
    const url = this.url(req.path);
    const headers: Record<string, string> = { ...this.cfg.headers, ...req.headers };
    const bearer = this.cfg.credentials?.bearer;
    if (bearer?.token_path !== undefined) {
      let token: string;
      try {
        token = (await readFile(bearer.token_path, 'utf8')).trim();
      } catch (err) {
        throw new ServiceError(
          `service ${this.name}: cannot read the bearer token file ${bearer.token_path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
      }
      headers.authorization = `${bearer.scheme} ${token}`;
    }
    if (req.body) headers['content-length'] = String(req.body.length);
    const tls = url.protocol === 'https:' ? await this.tlsOptions() : {};
    const timeoutMs = this.cfg.response_header_timeout_seconds * 1000 + (req.holdMs ?? 0);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<ServiceResponse>((resolve, reject) => {
      let settled = false;
      const fail = (message: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        r.destroy();
        reject(new ServiceError(`service ${this.name} (${url.origin}): ${message}`));
      };
      // One deadline for headers and body: a server that trickles bytes is abandoned too.
      const timer = setTimeout(() => fail(`no complete answer within ${timeoutMs} ms`), timeoutMs);
      const r = send(
        url,
        { method: req.method, headers, ...tls, ...(req.signal ? { signal: req.signal } : {}) },
        (res) => {
          const declared = Number(res.headers['content-length']);
          if (Number.isFinite(declared) && declared > req.maxBytes) {
            fail(`the answer is ${declared} bytes, more than the limit of ${req.maxBytes}`);
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > req.maxBytes) fail(`the answer is more than the limit of ${req.maxBytes} bytes`);
            else chunks.push(c);
          });
          res.on('error', (err) => fail(err.message));
          res.on('end', () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
          });
        },
      );
      r.on('error', (err: NodeJS.ErrnoException) => fail(err.code ? `${err.code} ${err.message}` : err.message));
      r.end(req.body);
    });
  }

  private async tlsOptions(): Promise<Record<string, Buffer>> {
    const out: Record<string, Buffer> = {};
    const read = async (what: string, file: string) => {
      try {
        return await readFile(file);
      } catch (err) {
        throw new ServiceError(
          `service ${this.name}: cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
      }
    };
    if (this.cfg.tls?.ca_cert !== undefined) out.ca = await read('tls.ca_cert', this.cfg.tls.ca_cert);
    const client = this.cfg.credentials?.client_tls;
    if (client) {
      out.cert = await read('client_tls.cert', client.cert);
      out.key = await read('client_tls.private_key', client.private_key);
    }
    return out;
  }
}
