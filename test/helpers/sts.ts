// A real RFC 8693 security token service on loopback: test/sts, a small program on
// zitadel/oidc's OpenID provider (built by scripts/install-tools.sh sts into .build/bin).
// It accepts the tests' IdP's access tokens as subject and actor tokens, authenticates the
// service as the client "mcp-authz" (client_secret_basic) or "mcp-authz-jwt"
// (private_key_jwt), and counts every request to its token endpoint.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createRemoteJWKSet, exportPKCS8, exportSPKI, generateKeyPair, jwtVerify, type JWTPayload } from 'jose';
import { projectRoot } from '../../src/config/paths.mjs';

export type StsMode = 'normal' | 'garbage' | 'refuse' | 'hang' | 'hold' | 'error500';

export interface StsStats {
  token: number;
  exchange: number;
  client_credentials: number;
}

export interface Sts {
  issuer: string;
  tokenEndpoint: string;
  jwksUri: string;
  /** The client secret of "mcp-authz". */
  clientSecret: string;
  /** PKCS#8 PEM private key of "mcp-authz-jwt" (private_key_jwt). */
  clientKeyPem: string;
  stats(): Promise<StsStats>;
  setMode(m: StsMode): Promise<void>;
  /** Answers the requests mode "hold" keeps waiting. */
  release(): Promise<void>;
  /** Verifies a token this STS issued (signature, issuer, expiry) and returns its claims. */
  verify(token: string): Promise<JWTPayload>;
  stop(): Promise<void>;
}

export const STS_BINARY = join(projectRoot, '.build', 'bin', 'sts');

export async function startSts(
  idp: { issuer: string; jwksUri: string },
  opts: { lifetime?: string } = {},
): Promise<Sts> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-sts-'));
  const clientSecret = `sts-secret-${Math.random().toString(36).slice(2)}`;
  writeFileSync(join(dir, 'secret'), clientSecret);
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  writeFileSync(join(dir, 'client.pub'), await exportSPKI(publicKey));
  const clientKeyPem = await exportPKCS8(privateKey);
  const args = [
    '-subject-issuer',
    idp.issuer,
    '-subject-jwks',
    idp.jwksUri,
    '-client-secret-file',
    join(dir, 'secret'),
    '-client-key-file',
    join(dir, 'client.pub'),
    '-lifetime',
    opts.lifetime ?? '5m',
  ];
  const child: ChildProcess = spawn(STS_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const first = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`sts exited (${code}) before listening: ${stderr}`)));
    child.once('error', reject);
  });
  const info = JSON.parse(first) as { issuer: string; token_endpoint: string; jwks_uri: string };
  const jwks = createRemoteJWKSet(new URL(info.jwks_uri));
  return {
    issuer: info.issuer,
    tokenEndpoint: info.token_endpoint,
    jwksUri: info.jwks_uri,
    clientSecret,
    clientKeyPem,
    stats: async () => (await (await fetch(`${info.issuer}/stats`)).json()) as StsStats,
    setMode: async (m) => {
      const res = await fetch(`${info.issuer}/mode?m=${m}`, { method: 'POST' });
      if (res.status !== 204) throw new Error(`sts mode ${m}: HTTP ${res.status}`);
    },
    release: async () => {
      const res = await fetch(`${info.issuer}/release`, { method: 'POST' });
      if (res.status !== 204) throw new Error(`sts release: HTTP ${res.status}`);
    },
    verify: async (token) => (await jwtVerify(token, jwks, { issuer: info.issuer })).payload,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
