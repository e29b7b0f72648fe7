// Helpers of the policy tests: principals injected through the tests' authenticator
// stand-in, and fixture Rego compiled with the real opa. The policy, the WASM engine and
// the gRPC server stay real.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { LoadedConfig } from '../../src/config/load.js';
import type { Principal } from '../../src/contracts/principal.js';
import type { Logger } from '../../src/log/logger.js';
import type { ServiceEvents } from '../../src/metrics/hooks.js';
import { buildRuntime } from '../../src/pipeline/build-runtime.js';
import type { Runtime } from '../../src/pipeline/runtime.js';
import { PRINCIPAL_HEADER, TestAuthenticator } from '../fixtures/test-authenticator.js';

export { PRINCIPAL_HEADER };

/** A buildRuntime that keeps everything real except authentication: principals come from the x-test-principal header. */
export function withPrincipals(principals: Record<string, Principal>, events: ServiceEvents = {}) {
  return async (loaded: LoadedConfig, logger: Logger, metrics: Registry): Promise<Runtime> => {
    const rt = await buildRuntime(loaded, logger, metrics, { events });
    rt.authenticator = new TestAuthenticator(principals);
    return rt;
  };
}

/** Writes Rego files into a fresh folder and returns it. */
export function regoDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-rego-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

export function keyPrincipal(id: string, userId: string | undefined, permissions: string[]): Principal {
  return {
    authenticated: true,
    method: 'api_key',
    id,
    keyId: id,
    roles: [],
    permissions,
    scopes: [],
    keyType: userId ? 'private' : 'public',
    ...(userId ? { userId } : {}),
  };
}

export function tokenPrincipal(sub: string, scopes: string[]): Principal {
  return {
    authenticated: true,
    method: 'oauth',
    id: `https://idp.example.com#${sub}`,
    userId: sub,
    subject: sub,
    roles: [],
    permissions: [],
    scopes,
    claims: { sub },
  };
}
