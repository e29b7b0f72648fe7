// The live state a Check call reads: config, endpoints and the phases, built whole by
// build-runtime.ts. Reloads swap parts inside the phases (a new key registry, a new policy
// engine) atomically; a call in flight keeps what it read. A live change of the endpoint set
// replaces the whole runtime (live-runtime.ts).
import type {
  Approvals,
  Authenticator,
  Authorizer,
  CheckTracing,
  DirectResponder,
  HttpPages,
  Limiter,
  Observer,
  UpstreamCredentials,
} from '../decision/phases.js';
import type { Config } from '../config/schema.js';
import type { Request } from '../contracts/request.js';
import type { OriginCheck } from '../endpoints/origin-check.js';
import type { EndpointRegistry } from '../endpoints/registry.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import type { ShadowEvaluator } from '../shadow/shadow-evaluator.js';
import type { SubjectPrincipals } from '../auth/subject-principals.js';
import type { PinGuard } from '../pins/pin-guard.js';

export interface Runtime {
  config: Config;
  endpoints: EndpointRegistry;
  /** Which browser origins each endpoint admits. */
  origins: OriginCheck;
  authenticator: Authenticator;
  authorizer: Authorizer;
  limiter: Limiter;
  directResponder: DirectResponder;
  /** The MCP servers' own credentials (endpoints[].upstream); undefined when no endpoint has one. */
  upstreamCredentials?: UpstreamCredentials;
  /** Tool-definition pinning (pins.file); undefined when nothing is pinned. */
  pins?: PinGuard;
  /** userConnections' /connect/<provider> pages, served on the HTTP port; undefined when no endpoint uses them. */
  pages?: HttpPages;
  /** Calls the policy holds for a person's approval (approvals); undefined when not configured. */
  approvals?: Approvals;
  observer: Observer;
  /** Spans for sampled Checks; undefined when tracing is off (the default). */
  tracing?: CheckTracing;
  events: ServiceEvents;
  logger: Logger;
  /** The principals AuthZEN subjects name (docs/authzen.md). */
  subjects?: SubjectPrincipals;
  /** The shadow policy's evaluator, when one is configured (docs/shadow.md). */
  shadow?: ShadowEvaluator;
  clientAddress: (request: Request) => string;
  /** Set when the endpoint set changes live: the runtime in force, which calls read once when they start (inForce). */
  live?: { readonly current: Runtime };
  /** Why the runtime cannot decide yet (e.g. no policy loaded); empty when ready. */
  notReady(): string[];
  /** Tells the service when readiness may have changed (a policy load finished). */
  onReadinessChange(listener: () => void): void;
  /** Stops watchers and timers the phases own. */
  close(): Promise<void>;
}
