// The one-shot loopback listener that receives the authorization server's redirect
// (RFC 8252 §7.3): 127.0.0.1 only, one path, the first callback ends it. The browser gets a
// page saying how the login ended once the terminal knows.
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LoginFailure } from '../oauth-client/login-failure.js';

export const CALLBACK_PATH = '/callback';

export interface Callback {
  /** The redirect's query string, without "?". */
  query: string;
  /** Answers the browser and closes the listener. */
  respond(ok: boolean, message: string): Promise<void>;
}

export interface CallbackListener {
  redirectUri: string;
  port: number;
  /** The first callback; rejects with the signal's reason when it aborts first. */
  next(signal: AbortSignal): Promise<Callback>;
  close(): Promise<void>;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function resultPage(ok: boolean, message: string): string {
  const title = ok ? 'mcp-authz: logged in' : 'mcp-authz: login failed';
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1><p id="message">${escapeHtml(message)}</p><p>You can close this tab and return to the terminal.</p></body></html>\n`;
}

export async function listenForCallback(port: number): Promise<CallbackListener> {
  let deliver: ((c: Callback) => void) | undefined;
  const arrived = new Promise<Callback>((resolve) => (deliver = resolve));
  let taken = false;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== CALLBACK_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (taken) {
      res.writeHead(409, { 'content-type': 'text/plain' }).end('this login has already received its callback\n');
      return;
    }
    taken = true;
    deliver!({ query: url.search.slice(1), respond: (ok, message) => answer(res, ok, message) });
  });
  const answer = (res: ServerResponse, ok: boolean, message: string) =>
    new Promise<void>((resolve) => {
      res.writeHead(ok ? 200 : 400, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'close',
      });
      res.end(resultPage(ok, message), () => resolve());
    }).then(close);
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE')
        reject(
          new LoginFailure(
            'port_in_use',
            `port ${port} on 127.0.0.1 is in use: free it, choose another with --port, or leave --port out to let the system pick one`,
          ),
        );
      else if (err.code === 'EACCES')
        reject(
          new LoginFailure(
            'port_in_use',
            `not allowed to listen on 127.0.0.1:${port}: choose a port above 1023 with --port`,
          ),
        );
      else reject(err);
    });
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    redirectUri: `http://127.0.0.1:${bound}${CALLBACK_PATH}`,
    next(signal) {
      if (signal.aborted) return Promise.reject(signal.reason);
      return new Promise<Callback>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        arrived.then((c) => {
          signal.removeEventListener('abort', onAbort);
          resolve(c);
        });
      });
    },
    close: () => (server.listening ? close() : Promise.resolve()),
  };
}
