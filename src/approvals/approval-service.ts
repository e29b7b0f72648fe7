// The approvals phase: a call the policy holds is bound to its digest and looked up. A grant
// with uses left lets it through with a signed receipt; a rejection denies it; anything else
// asks (again) for an approval and answers the caller with the page's URL as an MCP URL-mode
// elicitation. Runs only when the policy asked for approval.
import { randomFillSync } from 'node:crypto';
import type { ApprovalRequirement } from '../contracts/approval.js';
import { deny, type Deny } from '../contracts/outcome.js';
import type { CheckContext } from '../decision/context.js';
import type { ApprovalGrant, Approvals } from '../decision/phases.js';
import type { ApprovalsConfig } from '../config/approvals-schema.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { canElicitUrl, urlElicitationMessage } from '../mcp-response/url-elicitation.js';
import {
  ApprovalStoreUnavailable,
  type ApprovalDecision,
  type ApprovalRequest,
  type ApprovalStore,
  type StoredApproval,
} from './approval-store.js';
import { bindCall, type BoundCall } from './call-digest.js';
import type { ReceiptSigner } from './receipt.js';

export interface ApprovalServiceOptions {
  config: ApprovalsConfig;
  store: ApprovalStore;
  signer: ReceiptSigner;
  events: ServiceEvents;
  logger: Logger;
  /** Told of each new pending approval (the webhook); never awaited by a Check. */
  notify?: (request: ApprovalRequest, url: string) => void;
  now?: () => number;
}

/** An approval id: 128 random bits, base64url; unguessable, so a page URL is not a grant. */
export function newApprovalId(): string {
  // 16 bytes from a pool the CSPRNG refills every 256 ids (as randomUUID does): one
  // randomBytes(16) per held call cost more than the rest of asking for an approval.
  if (idPoolAt === ID_POOL.length) {
    randomFillSync(ID_POOL);
    idPoolAt = 0;
  }
  const id = ID_POOL.toString('base64url', idPoolAt, idPoolAt + 16);
  // Each byte is handed out once: zeroed as it is used.
  ID_POOL.fill(0, idPoolAt, idPoolAt + 16);
  idPoolAt += 16;
  return id;
}
const ID_POOL = Buffer.alloc(16 * 256);
let idPoolAt = ID_POOL.length;
export const APPROVAL_ID = /^[A-Za-z0-9_-]{22}$/;
const KEEP_EXPIRED_MS = 3600_000;

/** A grant still in its window (its uses are counted by the store). */
function usable(found: Readonly<StoredApproval>, now: number): boolean {
  return found.decision !== undefined && found.decision.validUntil > now;
}

/** A used grant's evidence: the answer's metadata and the decision log's value, made once. */
export function approvalGrant(id: string, digest: string, approver: string, receipt: string): ApprovalGrant {
  return Object.freeze({
    kind: 'approved',
    approvalId: id,
    receipt,
    approver,
    digest,
    metadata: Object.freeze({ id, digest, approver, receipt }),
    logJson: JSON.stringify({ id, approver, receipt }),
  });
}

export class ApprovalService implements Approvals {
  private readonly now: () => number;
  /** Per stored decision, the evidence its calls carry. */
  private readonly grants = new WeakMap<ApprovalDecision, ApprovalGrant>();

  constructor(private readonly opts: ApprovalServiceOptions) {
    this.now = opts.now ?? Date.now;
  }

  get store(): ApprovalStore {
    return this.opts.store;
  }

  get signer(): ReceiptSigner {
    return this.opts.signer;
  }

  urlOf(id: string): string {
    return `${this.opts.config.publicUrl}/approvals/${id}`;
  }

  /**
   * The answer for a held call. A usable grant in an in-process store is answered at once; any
   * other case (and every lookup in Redis) waits for the store.
   */
  check(
    ctx: CheckContext,
    requirement: ApprovalRequirement,
    policyRevision: string,
    decisionId: string,
  ): ApprovalGrant | Deny | Promise<ApprovalGrant | Deny> {
    const bound = bindCall(ctx, policyRevision);
    if ('unbindable' in bound)
      return deny(
        'approval_not_bindable',
        `The policy requires a person to approve this call, and it cannot be bound to an approval: ${bound.unbindable}.`,
      );
    const { instant } = this.opts.store;
    if (instant !== undefined) {
      const found = instant.peek(bound.digest);
      if (found !== undefined && found.state === 'granted') {
        const now = this.now();
        if (usable(found, now) && instant.take(found.request.id)) return this.granted(found, bound, now, decisionId);
      }
    }
    return this.lookUp(ctx, bound, requirement, policyRevision, decisionId);
  }

  private async lookUp(
    ctx: CheckContext,
    bound: BoundCall,
    requirement: ApprovalRequirement,
    policyRevision: string,
    decisionId: string,
  ): Promise<ApprovalGrant | Deny> {
    try {
      const found = await this.opts.store.byDigest(bound.digest);
      const now = this.now();
      if (found !== undefined) {
        const answered = await this.answerFound(ctx, found, bound, requirement, decisionId, now);
        if (answered !== undefined) return answered;
      }
      return await this.request(ctx, bound, requirement, policyRevision, now);
    } catch (err) {
      if (!(err instanceof ApprovalStoreUnavailable)) throw err;
      this.opts.logger.warn(
        { request_id: ctx.request.id, endpoint: bound.endpoint, err: { message: err.message } },
        'the approval store is unreachable: the held call is denied',
      );
      return deny(
        'approval_unavailable',
        'The policy requires a person to approve this call, and the approval store cannot be reached; denied. Retry later.',
      );
    }
  }

  /** The answer for a call whose digest has an approval; undefined: ask for a new one. */
  private async answerFound(
    ctx: CheckContext,
    found: StoredApproval,
    bound: BoundCall,
    requirement: ApprovalRequirement,
    decisionId: string,
    now: number,
  ): Promise<ApprovalGrant | Deny | undefined> {
    const { request, decision } = found;
    switch (found.state) {
      case 'granted': {
        if (!usable(found, now)) return undefined;
        if (!(await this.opts.store.consume(request.id))) return undefined;
        return this.granted(found, bound, now, decisionId);
      }
      case 'rejected':
        if (decision === undefined || decision.validUntil <= now) return undefined;
        return deny(
          'approval_rejected',
          `${decision.approver} rejected this call (${request.tool} on ${request.endpoint}); it is denied. A call with other arguments asks again.`,
          { extra: { approval_id: request.id } },
        );
      default:
        if (request.expiresAt <= now) {
          this.opts.events.approval?.('expired');
          return undefined;
        }
        // Still waiting: the same page again, no second notification.
        return this.elicitation(ctx, request.id, requirement, bound);
    }
  }

  /** A grant whose use was just taken: counted, and the evidence the allow carries. */
  private granted(found: Readonly<StoredApproval>, bound: BoundCall, now: number, decisionId: string): ApprovalGrant {
    const { request } = found;
    const decision = found.decision!;
    this.opts.events.approval?.('used');
    // A grant stored without a receipt (by an older version) is signed now, for this decision.
    if (decision.receipt === undefined)
      return approvalGrant(
        request.id,
        bound.digest,
        decision.approver,
        this.receipt(request, decision, now, decisionId),
      );
    // Signed when the approver decided: the evidence is the same for every call the grant lets
    // through, made once (the in-process store hands out the same frozen decision each time).
    let grant = this.grants.get(decision);
    if (grant === undefined || grant.digest !== bound.digest) {
      grant = approvalGrant(request.id, bound.digest, decision.approver, decision.receipt);
      this.grants.set(decision, grant);
    }
    return grant;
  }

  /**
   * Records an approver's decision on a pending approval; a grant carries its receipt, signed
   * here, once, so that the calls it lets through only read it. False when it was not pending.
   */
  async decide(stored: StoredApproval, granted: boolean, approver: string, now: number): Promise<boolean> {
    const { request } = stored;
    const keepSeconds = granted ? request.windowSeconds : this.opts.config.pendingSeconds;
    const decision: ApprovalDecision = {
      state: granted ? 'granted' : 'rejected',
      approver,
      decidedAt: now,
      validUntil: now + keepSeconds * 1000,
    };
    if (granted) decision.receipt = this.receipt(request, decision, now);
    return this.opts.store.decide(request.id, decision, request.uses, keepSeconds * 1000);
  }

  private receipt(request: ApprovalRequest, decision: ApprovalDecision, now: number, decisionId?: string): string {
    return this.opts.signer.sign(
      {
        approvalId: request.id,
        digest: request.digest,
        approver: decision.approver,
        approvedAt: decision.decidedAt,
        rule: request.rule,
        principal: request.principal,
        endpoint: request.endpoint,
        tool: request.tool,
        policyRevision: request.policyRevision,
        ...(decisionId === undefined ? {} : { decisionId }),
      },
      now,
    );
  }

  private async request(
    ctx: CheckContext,
    bound: BoundCall,
    requirement: ApprovalRequirement,
    policyRevision: string,
    now: number,
  ): Promise<Deny> {
    const { config } = this.opts;
    const id = newApprovalId();
    const request: ApprovalRequest = {
      id,
      digest: bound.digest,
      principal: bound.principal,
      endpoint: bound.endpoint,
      tool: bound.tool,
      arguments: bound.canonicalArguments,
      reason: requirement.reason,
      group: requirement.group,
      rule: requirement.rule,
      uses: requirement.uses,
      windowSeconds: requirement.windowSeconds ?? config.grantSeconds,
      policyRevision,
      createdAt: now,
      expiresAt: now + config.pendingSeconds * 1000,
    };
    if (ctx.principal.userId !== undefined) request.userId = ctx.principal.userId;
    // Kept an hour past its expiry, so the page can say it expired and the expiry is counted.
    await this.opts.store.create(request, config.pendingSeconds * 1000 + KEEP_EXPIRED_MS);
    this.opts.events.approval?.('requested');
    this.opts.logger.info(
      {
        request_id: ctx.request.id,
        approval_id: id,
        endpoint: bound.endpoint,
        tool: bound.tool,
        principal: bound.principal,
        digest: bound.digest,
        rule: requirement.rule,
      },
      'call held for approval',
    );
    this.opts.notify?.(request, this.urlOf(id));
    return this.elicitation(ctx, id, requirement, bound);
  }

  private elicitation(ctx: CheckContext, id: string, requirement: ApprovalRequirement, bound: BoundCall): Deny {
    const url = this.urlOf(id);
    const rpc = ctx.parsedBody as { id?: unknown; params?: unknown } | undefined;
    const rpcId = rpc?.id;
    const { body } = urlElicitationMessage({
      urlCapable: canElicitUrl(ctx.mcp.protocolVersion, 'tools/call', rpc?.params),
      message: `Approval required: ${requirement.reason}`,
      url,
      elicitationId: id,
      protocolVersion: ctx.mcp.protocolVersion,
      requestId: typeof rpcId === 'string' || typeof rpcId === 'number' ? rpcId : undefined,
    });
    return deny('approval_required', `A person must approve this call at ${url}: ${requirement.reason}`, {
      rawBody: body,
      contentType: 'application/json',
      extra: { approval_id: id },
      dynamicMetadata: { approval: { id, digest: bound.digest, state: 'pending' } },
    });
  }
}
