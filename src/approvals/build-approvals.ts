// Builds the approvals phase from the config: the store (Redis when configured, else the
// process), the receipt signer, the webhook.
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { LocalApprovalStore, RedisApprovalStore, type ApprovalStore } from './approval-store.js';
import { ApprovalService } from './approval-service.js';
import { ReceiptSigner } from './receipt.js';
import { webhookNotifier } from './webhook.js';

export interface BuildApprovalsOptions {
  logger: Logger;
  events: ServiceEvents;
  /** Connect to Redis when configured (default true; `mcp-authz check` keeps everything in the process). */
  shared?: boolean;
  now?: () => number;
}

export async function buildApprovals(
  config: Config,
  opts: BuildApprovalsOptions,
): Promise<ApprovalService | undefined> {
  const cfg = config.approvals;
  if (cfg === undefined) return undefined;
  let pem: string;
  try {
    pem = await readFile(cfg.receiptKeyFile, 'utf8');
  } catch (err) {
    throw new Error(`approvals.receiptKeyFile: cannot read ${cfg.receiptKeyFile}: ${(err as Error).message}`);
  }
  let signer: ReceiptSigner;
  try {
    signer = await ReceiptSigner.fromPem(pem, cfg.publicUrl);
  } catch (err) {
    throw new Error(`approvals.receiptKeyFile: ${(err as Error).message}`);
  }
  const redisCfg = cfg.redis ?? config.rateLimit.redis;
  let store: ApprovalStore;
  if (redisCfg !== undefined && opts.shared !== false) {
    const { SharedRedis } = await import('../config/redis-client.js');
    const redis = new SharedRedis(redisCfg, {
      feature: 'approvals',
      logger: opts.logger,
      whileDown: 'calls held for approval are denied (approval_unavailable) until it is back',
    });
    store = new RedisApprovalStore(redis, redisCfg.keyPrefix);
  } else {
    store = new LocalApprovalStore(opts.now);
  }
  return new ApprovalService({
    config: cfg,
    store,
    signer,
    events: opts.events,
    logger: opts.logger,
    ...(cfg.webhook ? { notify: webhookNotifier({ ...cfg.webhook, logger: opts.logger }) } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
}
