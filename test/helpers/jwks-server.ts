// A real identity provider's key endpoints on loopback: JWKS and discovery documents over
// node:http, with RSA, EC (P-256) and Ed25519 keys made by jose, for OAuth tests.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import {
  exportJWK,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  importPKCS8,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTHeaderParameters,
} from 'jose';

export type SignAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';
type KeyFamily = 'RS256' | 'ES256' | 'EdDSA';

export interface JwksServer {
  /** http://127.0.0.1:<port>[issuerPath] */
  issuer: string;
  jwksUri: string;
  /** JWKS requests received so far (answered or not). */
  readonly fetches: number;
  /** Discovery requests received so far (any .well-known path). */
  readonly discoveryFetches: number;
  /** JWKS responses sent so far (a held or delayed request is not answered yet). */
  readonly jwksAnswered: number;
  /**
   * Signs a JWT with the current key of the alg's family. Defaults: RS256, iat now, exp +1 h,
   * iss = issuer; a claim given as `undefined` is left out (e.g. `{ exp: undefined }`).
   * `kid` overrides the header kid (the signature still uses the current key); `header`
   * adds protected header members (`{ kid: undefined }` leaves the kid out).
   */
  sign(
    claims: Record<string, unknown>,
    opts?: { alg?: SignAlg; kid?: string; header?: Record<string, unknown> },
  ): Promise<string>;
  /** Replaces the key of that family (default RS256) with a new one; returns the new kid. */
  rotate(alg?: KeyFamily): Promise<string>;
  /** SPKI PEM of the current public key of the alg's family (default RS256). */
  publicKeyPem(alg?: string): string;
  /** true: every endpoint answers 503. */
  setDown(down: boolean): void;
  /** Delays JWKS responses by `ms`; Infinity holds them until `stop`. */
  setDelay(ms: number): void;
  stop(): Promise<void>;
}

interface ServedKey {
  kid: string;
  privateKey: CryptoKey;
  /** WebCrypto binds a key to one algorithm: the same RSA key again, for PS256. */
  pssKey?: CryptoKey;
  jwk: JWK;
  pem: string;
}

const GENERATE: Record<KeyFamily, [string, { crv?: string; extractable: true }]> = {
  RS256: ['RS256', { extractable: true }],
  ES256: ['ES256', { extractable: true }],
  EdDSA: ['EdDSA', { crv: 'Ed25519', extractable: true }],
};

function family(alg: string | undefined): KeyFamily {
  if (alg === undefined || alg.startsWith('RS') || alg.startsWith('PS')) return 'RS256';
  if (alg.startsWith('ES')) return 'ES256';
  if (alg === 'EdDSA' || alg === 'Ed25519') return 'EdDSA';
  throw new Error(`no test key for alg ${alg}`);
}

async function makeKey(fam: KeyFamily): Promise<ServedKey> {
  const [alg, options] = GENERATE[fam];
  const { privateKey, publicKey } = await generateKeyPair(alg, options);
  const kid = `${fam.toLowerCase()}-${randomUUID()}`;
  // No "alg" member: one RSA key then serves both RS256 and PS256, as many IdPs publish.
  const jwk = { ...(await exportJWK(publicKey)), kid, use: 'sig' };
  const pssKey = fam === 'RS256' ? await importPKCS8(await exportPKCS8(privateKey), 'PS256') : undefined;
  return { kid, privateKey, pssKey, jwk, pem: await exportSPKI(publicKey) };
}

export async function startJwksServer(
  opts: { discovery?: 'openid' | 'oauth' | 'none'; issuerPath?: string } = {},
): Promise<JwksServer> {
  const discovery = opts.discovery ?? 'openid';
  const issuerPath = (opts.issuerPath ?? '').replace(/\/+$/, '');
  const keys = new Map<KeyFamily, ServedKey>();
  for (const fam of Object.keys(GENERATE) as KeyFamily[]) keys.set(fam, await makeKey(fam));

  let fetches = 0;
  let jwksAnswered = 0;
  let discoveryFetches = 0;
  let down = false;
  let delayMs = 0;
  const timers = new Set<NodeJS.Timeout>();
  let issuer = '';
  let jwksUri = '';
  const jwksPath = `${issuerPath}/protocol/jwks.json`;

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };

  const metadataPaths = new Set<string>();
  if (discovery === 'openid') metadataPaths.add(`${issuerPath}/.well-known/openid-configuration`);
  // RFC 8414 §3.1 inserted form only, so clients that just append are caught out.
  if (discovery === 'oauth') metadataPaths.add(`/.well-known/oauth-authorization-server${issuerPath}`);

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path.includes('/.well-known/')) discoveryFetches++;
    if (path === jwksPath) fetches++;
    if (down) return send(res, 503, { error: 'temporarily_unavailable' });
    if (req.method !== 'GET') return send(res, 405, { error: 'method_not_allowed' });
    if (metadataPaths.has(path)) {
      return send(res, 200, {
        issuer,
        jwks_uri: jwksUri,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        response_types_supported: ['code'],
      });
    }
    if (path === jwksPath) {
      const body = { keys: [...keys.values()].map((k) => k.jwk) };
      const answer = () => {
        jwksAnswered++;
        // Gone down while the answer was delayed: the late answer is the outage's.
        if (down) return send(res, 503, { error: 'temporarily_unavailable' });
        send(res, 200, body);
      };
      if (delayMs <= 0) return answer();
      if (delayMs === Infinity) return; // held until stop() drops the connection
      const timer = setTimeout(() => {
        timers.delete(timer);
        answer();
      }, delayMs);
      timers.add(timer);
      return;
    }
    send(res, 404, { error: 'not_found' });
  };

  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  issuer = `${origin}${issuerPath}`;
  jwksUri = `${origin}${jwksPath}`;

  return {
    issuer,
    jwksUri,
    get fetches() {
      return fetches;
    },
    get discoveryFetches() {
      return discoveryFetches;
    },
    get jwksAnswered() {
      return jwksAnswered;
    },
    async sign(claims, signOpts = {}) {
      const alg = signOpts.alg ?? 'RS256';
      const key = keys.get(family(alg))!;
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = { iss: issuer, iat: now, exp: now + 3600, ...claims };
      for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
      const header: Record<string, unknown> = { kid: key.kid, ...signOpts.header, alg };
      if (signOpts.kid !== undefined) header.kid = signOpts.kid;
      if (header.kid === undefined) delete header.kid;
      return new SignJWT(payload)
        .setProtectedHeader(header as JWTHeaderParameters)
        .sign(alg === 'PS256' ? key.pssKey! : key.privateKey);
    },
    async rotate(alg = 'RS256') {
      const key = await makeKey(family(alg));
      keys.set(family(alg), key);
      return key.kid;
    },
    publicKeyPem(alg) {
      return keys.get(family(alg))!.pem;
    },
    setDown(value) {
      down = value;
    },
    setDelay(ms) {
      delayMs = ms;
    },
    async stop() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
