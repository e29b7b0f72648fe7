// Tells approvers of a pending approval: one JSON POST per request, with a Slack-compatible
// `text` and the approval's facts (never its arguments: they may hold what only the page,
// behind sign-in, may show). Fire and forget: a slow or failing webhook never holds a Check.
import type { Logger } from '../log/logger.js';
import type { ApprovalRequest } from './approval-store.js';

export interface WebhookOptions {
  url: string;
  timeoutMs: number;
  logger: Logger;
}

export function webhookNotifier(opts: WebhookOptions): (request: ApprovalRequest, pageUrl: string) => void {
  return (request, pageUrl) => {
    const who = request.userId ?? request.principal;
    const body = JSON.stringify({
      text: `Approval needed: ${who} wants to call ${request.tool} on ${request.endpoint}. ${request.reason} — ${pageUrl}`,
      approval: {
        id: request.id,
        url: pageUrl,
        endpoint: request.endpoint,
        tool: request.tool,
        principal: request.principal,
        user: request.userId,
        reason: request.reason,
        group: request.group,
        rule: request.rule,
        digest: request.digest,
        expires_at: new Date(request.expiresAt).toISOString(),
      },
    });
    fetch(opts.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(opts.timeoutMs),
      redirect: 'error',
    })
      .then(async (res) => {
        await res.body?.cancel();
        if (!res.ok)
          opts.logger.warn({ approval_id: request.id, status: res.status }, 'the approvals webhook refused the notice');
      })
      .catch((err: Error) =>
        opts.logger.warn({ approval_id: request.id, err: { message: err.message } }, 'the approvals webhook failed'),
      );
  };
}
