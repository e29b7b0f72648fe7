// The response to one request with list calls, filtered for its caller: a buffered
// `application/json` body, or a `text/event-stream` passed through chunk by chunk. Fail
// closed: what cannot be filtered is replaced by a JSON-RPC error for each list call
// (`data.reason` from the catalogue's withheld reasons), never passed on. Reports one
// ListTrace to the observers when the response is over, whatever way it ends.
import type { CheckTrace, ListTrace } from '../decision/context.js';
import type { WithheldReason } from '../contracts/codes.js';
import { ListVisibility } from './visibility.js';
import type { Runtime } from '../pipeline/runtime.js';
import { failure, withheldListResponse, type FilterFailure } from '../mcp-response/list-filter.js';
import { filterJsonBytes } from '../mcp-response/list-body-reader.js';
import type { ListCalls } from '../mcp-response/list-methods.js';
import { SseListRewriter } from '../mcp-response/sse-list-rewriter.js';
import type { ListPins } from '../pins/pin-guard.js';

export type ResponseForm = 'json' | 'sse';

export interface JsonOutcome {
  /** The body to send instead of the upstream's; undefined: the upstream's, unchanged. */
  body?: Buffer;
  /** The body is the JSON-RPC error of a withheld list: it must be sent as application/json. */
  withheld: boolean;
}

export interface SseOutcome {
  /** The bytes to send in place of this chunk (possibly none). */
  out: Buffer;
  /** The stream must stop after `out`: the list was withheld mid-stream. */
  failed?: FilterFailure;
}

/** Streams read only to keep lists out of them (quiet) whose body Envoy never sent: said once per runtime. */
const unseenWarned = new WeakSet<Runtime>();

export class ListResponse {
  readonly visibility: ListVisibility;
  /** A stream of a request without list calls (a GET stream): reported only when something is withheld. */
  private readonly quiet: boolean;
  private readonly rewriter: SseListRewriter | undefined;
  private spentNs = 0n;
  private reported = false;
  /** Whether any body reached the service. */
  private sawBody = false;

  constructor(
    private readonly rt: Runtime,
    private readonly trace: CheckTrace,
    private readonly calls: ListCalls,
    private readonly batch: boolean,
    readonly form: ResponseForm,
    opts: { keepDecisions?: boolean; quiet?: boolean; pins?: ListPins } = {},
  ) {
    this.quiet = opts.quiet === true;
    this.visibility = new ListVisibility(rt, trace, calls.values(), opts);
    this.rewriter = form === 'sse' ? new SseListRewriter({ calls, visibleFor: this.visibility.visibleFor }) : undefined;
  }

  /** The whole `application/json` body. */
  json(body: Buffer): JsonOutcome {
    const started = process.hrtime.bigint();
    this.sawBody = true;
    let out: JsonOutcome;
    const filtered = filterJsonBytes(body, this.calls, this.visibility.visibleFor);
    if (!filtered.ok) {
      out = { body: this.withheldBody(filtered), withheld: true };
      this.spentNs += process.hrtime.bigint() - started;
      this.report('withheld', filtered);
    } else {
      out = { withheld: false, ...(filtered.body !== undefined ? { body: filtered.body } : {}) };
      this.spentNs += process.hrtime.bigint() - started;
      this.report('filtered');
    }
    return out;
  }

  /** One chunk of a `text/event-stream` body; `last` on the end_of_stream chunk. */
  sse(chunk: Buffer, last: boolean): SseOutcome {
    const started = process.hrtime.bigint();
    this.sawBody = true;
    const rewriter = this.rewriter!;
    let step = rewriter.push(chunk);
    let out = step.out;
    if (step.ok && last) {
      const end = rewriter.end();
      out = out.length === 0 ? end.out : end.out.length === 0 ? out : Buffer.concat([out, end.out]);
      step = end.ok ? { ok: true, out } : { ...end, out };
    }
    this.spentNs += process.hrtime.bigint() - started;
    if (!step.ok) {
      const body = step.errorEvent.length > 0 ? Buffer.concat([step.out, step.errorEvent]) : step.out;
      this.report('withheld', step.failure);
      // At the end of the stream the error event closes it cleanly; before, the stream must stop.
      return last ? { out: body } : { out: body, failed: step.failure };
    }
    if (last) this.report('filtered');
    return { out };
  }

  /**
   * Records what the list showed (the digests each item was listed with, first-seen pins)
   * where calls are checked: awaited before the filtered bytes go to the client, so a call
   * that follows them finds the list on any replica. A failure is logged: calls then find
   * nothing listed and are refused.
   */
  async recordPins(): Promise<void> {
    const pins = this.visibility.pins;
    const state = this.rt.pins?.state;
    if (!pins || !state) return;
    try {
      await pins.flush(state);
    } catch (err) {
      this.rt.logger.error(
        {
          err: { message: (err as Error).message },
          request_id: this.trace.ctx?.request.id,
          endpoint: this.trace.ctx?.endpoint?.name,
        },
        'the pin state did not record a list: calls to its tools will be refused until a list is recorded',
      );
    }
  }

  /** A response that cannot be read at all (compressed): the JSON-RPC error to send instead. */
  withheldNow(code: WithheldReason, detail: string): Buffer {
    const f = failure(code, detail);
    this.report('withheld', f);
    return this.withheldBody(f);
  }

  /** The exchange ended before the response did; or Envoy never sent the body. */
  ended(): void {
    if (this.reported) return;
    if (this.quiet) {
      if (!this.sawBody && !unseenWarned.has(this.rt)) {
        unseenWarned.add(this.rt);
        this.rt.logger.error(
          { request_id: this.trace.ctx?.request.id, endpoint: this.trace.ctx?.endpoint?.name },
          'ext_proc: Envoy passed a GET event stream without sending its body, so lists on it (the MCP 2024-11-05 HTTP+SSE transport) pass unfiltered: set allow_mode_override: true on the ext_proc filter (docs/ext_proc.md)',
        );
      }
      this.reported = true;
      return;
    }
    if (!this.sawBody) {
      this.rt.logger.error(
        { request_id: this.trace.ctx?.request.id, endpoint: this.trace.ctx?.endpoint?.name },
        'ext_proc: Envoy passed a list response without sending its body: set allow_mode_override: true on the ext_proc filter (docs/ext_proc.md)',
      );
      this.report('unfiltered');
    } else {
      this.report('aborted');
    }
  }

  private withheldBody(f: FilterFailure): Buffer {
    return Buffer.from(JSON.stringify(withheldListResponse(this.calls, f, { batch: this.batch })), 'utf8');
  }

  private report(result: ListTrace['result'], why?: FilterFailure): void {
    if (this.reported || !this.trace.ctx) return;
    this.reported = true;
    if (this.quiet && result !== 'withheld') return;
    if (why) {
      this.rt.logger.warn(
        {
          request_id: this.trace.ctx.request.id,
          endpoint: this.trace.ctx.endpoint?.name,
          principal: this.trace.ctx.principal.id,
          reason: why.code,
          detail: why.detail,
        },
        'list response withheld: it could not be filtered for this caller',
      );
    }
    const listed: ListTrace = {
      ctx: this.trace.ctx,
      form: this.form,
      result,
      methods: this.visibility.tallies,
      policy: this.visibility.evaluations,
      dryRun: this.visibility.dryRun,
      durationNs: this.spentNs,
    };
    if (why) {
      listed.reason = why.code;
      listed.detail = why.detail;
    }
    this.rt.observer.listed?.(listed);
  }
}
