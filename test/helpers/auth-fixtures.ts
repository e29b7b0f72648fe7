// Shared pieces of the authentication tests: registry entries made with the real
// `keys create` code, and the authorizer stand-in that admits any authenticated principal,
// so allowed requests can be inspected end to end.
import { stringify } from 'yaml';
import { createKey, type CreateKeyOptions, type CreatedKey } from '../../src/cli/keys-command.js';
import { admitAuthenticated } from '../fixtures/test-authenticator.js';
import type { TestService } from './service.js';

/** Replaces the policy phase of a running service (the runtime is a plain object). */
export function admitAuthenticatedOn(svc: TestService): void {
  svc.runtime.authorizer = admitAuthenticated;
}

export function makeKey(o: Partial<CreateKeyOptions> & { id: string }): CreatedKey {
  return createKey({ name: o.id, ...o });
}

/** A keys file (YAML) holding these entries; `extra` fields are merged into each entry by id. */
export function keysFile(keys: CreatedKey[], extra: Record<string, Record<string, unknown>> = {}): string {
  return stringify({ keys: keys.map((k) => ({ ...k.entry, ...extra[k.entry.id] })) });
}
