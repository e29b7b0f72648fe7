// Credentials made fresh for each run: API keys (written to the keys file as SHA-256 only)
// and RS256 tokens from a JWKS server on loopback. Plaintext lives only in memory and in
// the gitignored bench/out/.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { BENCH_USER, GRANTS, OAUTH_RESOURCE, OAUTH_SCOPE } from './scenarios.js';
import { run } from './processes.js';

export const sha256Hex = (s: string) => createHash('sha256').update(s).digest('hex');

export interface KeyEntry {
  id: string;
  sha256: string;
  name: string;
  userId?: string;
  role: string;
  permissions: string[];
}

/**
 * A new API key. Uses `mcp-authz keys create` when the CLI has it (so the key carries the
 * product's checksum); otherwise `mcp_` + 256 random bits, base64url.
 */
export async function newApiKey(cli: string[]): Promise<{ key: string; source: string }> {
  const r = await run(cli[0]!, [...cli.slice(1), 'keys', 'create', '--name', 'bench', '--user', BENCH_USER], {
    timeoutMs: 30_000,
  });
  const m = /\bmcp_[A-Za-z0-9_-]{20,}/.exec(r.stdout);
  if (r.code === 0 && m) return { key: m[0], source: 'mcp-authz keys create' };
  return { key: `mcp_${randomBytes(32).toString('base64url')}`, source: 'random (mcp-authz keys create unavailable)' };
}

/** The keys file entries: the bench key plus filler keys, so lookups hit a realistic registry. */
export function keyEntries(apiKey: string, fillers = 200): KeyEntry[] {
  const entries: KeyEntry[] = [
    {
      id: 'bench-owner',
      sha256: sha256Hex(apiKey),
      name: 'Benchmark owner key',
      userId: BENCH_USER,
      role: 'user',
      permissions: GRANTS,
    },
  ];
  for (let i = 0; i < fillers; i++) {
    entries.push({
      id: `filler-${i}`,
      sha256: sha256Hex(`mcp_${randomBytes(32).toString('base64url')}`),
      name: `Filler ${i}`,
      userId: `user-${i}`,
      role: 'user',
      permissions: ['tools:search'],
    });
  }
  return entries;
}

export interface Issuer {
  issuer: string;
  jwksUri: string;
  jwks: { keys: JWK[] };
  sign(opts?: { jti?: string }): Promise<string>;
  close(): Promise<void>;
}

/** A loopback OAuth issuer: discovery document and JWKS over HTTP, RS256 keys from jose. */
export async function startIssuer(): Promise<Issuer> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-rs256', alg: 'RS256', use: 'sig' };
  const jwks = { keys: [jwk] };
  const server: Server = createServer((req, res) => {
    const body =
      req.url === '/.well-known/openid-configuration' || req.url === '/.well-known/oauth-authorization-server'
        ? JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks.json` })
        : req.url === '/jwks.json'
          ? JSON.stringify(jwks)
          : undefined;
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(body ?? '{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const key: CryptoKey = privateKey;
  return {
    issuer,
    jwksUri: `${issuer}/jwks.json`,
    jwks,
    sign: ({ jti } = {}) =>
      new SignJWT({ scope: OAUTH_SCOPE })
        .setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'JWT' })
        .setIssuer(issuer)
        .setAudience(OAUTH_RESOURCE)
        .setSubject(BENCH_USER)
        .setIssuedAt()
        .setExpirationTime('3h')
        .setJti(jti ?? randomUUID())
        .sign(key),
    close: () => new Promise((r) => server.close(() => r())),
  };
}
