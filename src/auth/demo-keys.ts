// The quickstart's demo API keys (examples/quickstart/keys.yaml) are public: their plaintext is
// printed in the README. Loaded where only this machine can connect they are a demo; loaded on
// an address others can reach they let anyone in, so the service says so, loudly.
import type { KeyRegistry } from './key-registry.js';

/** SHA-256 of the README's demo keys, as in examples/quickstart/keys.yaml (a test keeps them equal). */
export const DEMO_KEY_HASHES: readonly string[] = [
  'd830217d614913fbf1ce802064c1fee0256d809331613a6563273e0943c970f9',
  '680425c69145ace6745f2811262071d2797181c701c51724b4797aeefe1ea483',
  'c1f9d2495812274ad6ba541579ffd78d6bb2a65bf4ee4a3b635d9205f66af704',
];

/** Whether a listen address is reachable from this machine only: loopback hosts and Unix sockets. */
export function isLocalOnly(address: string): boolean {
  if (address.startsWith('unix:') || address.startsWith('/')) return true;
  const host = address
    .replace(/:\d+$/, '')
    .replace(/^\[|\]$/g, '')
    .toLowerCase();
  return (
    host === 'localhost' ||
    host === '::1' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) ||
    /^::ffff:127\./.test(host)
  );
}

export interface DemoKeyWarning {
  /** Ids of the demo keys in the registry. */
  keys: string[];
  /** The listen addresses other machines can reach. */
  exposed: string[];
  message: string;
}

/** The addresses the service listens on. */
export interface ListenAddresses {
  grpc: string;
  http: string;
  extAuthzHttp?: string | undefined;
}

/** The warning for a registry holding demo keys while the service listens beyond loopback; undefined otherwise. */
export function demoKeyWarning(registry: KeyRegistry, listen: ListenAddresses): DemoKeyWarning | undefined {
  const keys = DEMO_KEY_HASHES.flatMap((h) => {
    const r = registry.lookup(h);
    return r ? [r.id] : [];
  });
  // The listening addresses only (listen also holds the socket files' mode).
  const exposed = [listen.grpc, listen.http, listen.extAuthzHttp].filter(
    (a): a is string => a !== undefined && !isLocalOnly(a),
  );
  if (keys.length === 0 || exposed.length === 0) return undefined;
  return {
    keys,
    exposed,
    message:
      `PUBLIC DEMO API KEYS ARE LOADED (${keys.join(', ')}) and the service listens on ${exposed.join(', ')}: ` +
      'their plaintext is published in the README, so anyone who can reach these addresses can use them. ' +
      'Make your own keys (mcp-authz keys create) and remove these, or listen on 127.0.0.1 only.',
  };
}
