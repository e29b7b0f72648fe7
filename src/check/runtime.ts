// The live state a Check call reads: config, endpoints and the phases. Reloads swap
// parts of it atomically (a new object replaces the old; a call in flight keeps its own).
import type { Config } from '../config/schema.js';
import { EndpointRegistry } from '../endpoints/registry.js';
import { PendingAuthenticator } from '../auth/pending-authenticator.js';
import { PendingAuthorizer } from '../policy/pending-authorizer.js';
import { noLimits } from '../limits/no-limits.js';
import type { Logger } from '../log/logger.js';
import type { Request } from '../request/types.js';
import type { Authenticator, Authorizer, DirectResponder, Limiter, Observer } from './phases.js';

export interface Runtime {
  config: Config;
  endpoints: EndpointRegistry;
  authenticator: Authenticator;
  authorizer: Authorizer;
  limiter: Limiter;
  directResponder: DirectResponder | undefined;
  observer: Observer;
  logger: Logger;
  clientAddress: (request: Request) => string;
  /** Why the runtime cannot decide yet (e.g. no policy loaded); empty when ready. */
  notReady?(): string[];
  /** Tells the service when readiness may have changed (a policy load finished). */
  onReadinessChange?(listener: () => void): void;
  /** Stops watchers and timers the phases own. */
  close(): Promise<void>;
}

export function createRuntime(config: Config, logger: Logger, overrides: Partial<Runtime> = {}): Runtime {
  return {
    config,
    endpoints: new EndpointRegistry(config.endpoints),
    authenticator: new PendingAuthenticator(),
    authorizer: new PendingAuthorizer(),
    limiter: noLimits,
    directResponder: undefined,
    observer: { decided: () => undefined },
    logger,
    clientAddress: (r) => r.sourceAddress,
    close: async () => undefined,
    ...overrides,
  };
}
