// What the cluster primary and its workers tell each other over the IPC channel, as one
// union and one guard: anything else arriving on the channel is ignored.
import { isBucketMessage, type BucketMessage } from '../limits/cluster-buckets.js';
import { isFailureMessage, type FailureMessage } from '../limits/cluster-failures.js';
import type { LockoutMessage } from '../limits/lockouts.js';
import type { ServingStatus } from './health.js';

/** A remote bundle's two-step activation across workers (src/server/cluster-bundles.ts). */
export type BundleMessage =
  | { type: 'mcp-authz:bundle-sync' }
  | { type: 'mcp-authz:bundle-prepare'; seq: number; origin: string; bundle: string; activate?: boolean }
  | { type: 'mcp-authz:bundle-prepared'; seq: number; revision?: string; error?: string }
  | { type: 'mcp-authz:bundle-activate'; seq: number }
  | { type: 'mcp-authz:bundle-activated'; seq: number }
  | { type: 'mcp-authz:bundle-discard'; seq: number }
  | { type: 'mcp-authz:bundle-request'; result: 'modified' | 'not_modified' | 'failure' };

export type ClusterMessage =
  /** A worker serves Check on this port (and Envoy's HTTP authorization service on the other, 0 when off). */
  | { type: 'mcp-authz:worker-ready'; grpcPort: number; extAuthzHttpPort?: number }
  /** A worker's own serving state (NOT_SERVING while it has no policy), sent on every change. */
  | { type: 'mcp-authz:worker-health'; status: ServingStatus; reasons: string[] }
  /** The primary tells a worker to drain and exit. */
  | { type: 'mcp-authz:shutdown' }
  /** A lockout a worker recorded, relayed by the primary to every other worker. */
  | LockoutMessage
  /** A new worker asks the primary for the lockouts already running. */
  | { type: 'mcp-authz:lockout-sync' }
  /** The primary has sent every lockout running when the worker asked. */
  | { type: 'mcp-authz:lockout-synced' }
  /** Failed authentications counted on the primary's ledger (src/limits/cluster-failures.ts). */
  | FailureMessage
  /** Rate and quota buckets taken on the primary (src/limits/cluster-buckets.ts). */
  | BucketMessage
  | BundleMessage;

export function asClusterMessage(m: unknown): ClusterMessage | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const o = m as Record<string, unknown>;
  switch (o.type) {
    case 'mcp-authz:worker-ready':
      return typeof o.grpcPort === 'number' ? (o as ClusterMessage) : undefined;
    case 'mcp-authz:worker-health':
      return (o.status === 'SERVING' || o.status === 'NOT_SERVING') &&
        Array.isArray(o.reasons) &&
        o.reasons.every((r) => typeof r === 'string')
        ? (o as ClusterMessage)
        : undefined;
    case 'mcp-authz:lockout':
      return typeof o.key === 'string' && typeof o.until === 'number' ? (o as ClusterMessage) : undefined;
    case 'mcp-authz:bundle-prepared':
    case 'mcp-authz:bundle-activated':
      return typeof o.seq === 'number' ? (o as ClusterMessage) : undefined;
    case 'mcp-authz:shutdown':
    case 'mcp-authz:lockout-sync':
    case 'mcp-authz:bundle-sync':
    case 'mcp-authz:lockout-synced':
      return o as ClusterMessage;
    default:
      return isFailureMessage(o) || isBucketMessage(o) ? (o as ClusterMessage) : undefined;
  }
}
