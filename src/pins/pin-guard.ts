// Tool-definition pinning (docs/pinning.md), both halves:
//   - a list response (ext_proc): each tool, prompt and resource template of a pinned
//     endpoint is shown only when its definition is its pin (`enforce`), or the first one
//     seen (`trust-on-first-use`); `report` hides nothing. What a list showed is recorded
//     before the client sees it, so a call that follows finds it on any replica;
//   - a call (ext_authz): tools/call of a tool whose last listed definition is not its pin,
//     that has no pin, or that no list has shown yet is refused. Fail closed: a pin state
//     that does not answer refuses the call.
// A pinned tool's annotations enter the policy input (input.mcp.calls[i].tool).
import type { Config } from '../config/schema.js';
import { readSource, WatchedFile, type ReloadResult } from '../config/watched-file.js';
import { deny, type Deny } from '../contracts/outcome.js';
import type { McpCall } from '../contracts/request.js';
import type { CheckContext } from '../decision/context.js';
import type { DriftRecord, Observer, Pinning } from '../decision/phases.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { DEFAULT_HINTS, DigestCache, itemName, pinnedDefinition, toolHints, type PinKind } from './definition.js';
import { parsePinsFile, PinSet, PinsFileError, type EndpointPins, type Pin, type PinMode } from './pins-file.js';
import { createHash } from 'node:crypto';
import {
  LocalPinState,
  pinKey,
  RedisPinState,
  type FirstSeen,
  type PinState,
  type Repin,
  type Review,
  type Seen,
} from './pin-state.js';

export interface PinGuardOptions {
  file: string;
  pollIntervalMs: number;
  logger: Logger;
  events: ServiceEvents;
  observer: () => Observer;
  watch: boolean;
  state: PinState;
  /** Changed definitions can be re-approved on the approval page by this group (pins.approverGroup). */
  review?: { group: string; publicUrl: string };
}

/** The review of one changed definition: the same change listed again is the same review. */
export function reviewId(endpoint: string, kind: PinKind, name: string, listed: string): string {
  return createHash('sha256').update(`${endpoint}\0${kind}\0${name}\0${listed}`).digest('hex').slice(0, 32);
}

/** The pin in force: a re-approved definition replaces the pin it was reviewed against, and only that one. */
export function effectivePin(base: Pin | undefined, repin: Repin | undefined): Pin | undefined {
  return repin !== undefined && repin.replaces === base?.sha256 ? repin : base;
}

/** The pins configuration section (`pins`), as the schema reads it. */
export type PinsConfig = NonNullable<Config['pins']>;

/** Builds the guard from the config: Redis when `pins.redis` (or `rateLimit.redis`) is set, else this process. */
export function pinGuardFromConfig(
  config: Config,
  opts: Omit<PinGuardOptions, 'file' | 'pollIntervalMs' | 'state'> & { sharedState?: boolean },
): PinGuard | undefined {
  const pins = config.pins;
  if (!pins) return undefined;
  if (pins.approverGroup !== undefined && config.approvals === undefined)
    throw new Error('pins.approverGroup: re-approving changed definitions needs the approval page (approvals)');
  const redis = pins.redis ?? config.rateLimit.redis;
  const state: PinState = redis && opts.sharedState !== false ? new RedisPinState(redis) : new LocalPinState();
  return new PinGuard({
    ...opts,
    file: pins.file,
    pollIntervalMs: pins.pollIntervalMs,
    state,
    ...(pins.approverGroup !== undefined
      ? { review: { group: pins.approverGroup, publicUrl: config.approvals!.publicUrl } }
      : {}),
  });
}

export class PinGuard implements Pinning {
  private readonly source: WatchedFile<PinSet>;
  /** Digests of listed definitions by their JSON text, shared by every list of every endpoint. */
  private readonly digests = new DigestCache();

  constructor(private readonly opts: PinGuardOptions) {
    let snapshot;
    try {
      snapshot = readSource(opts.file);
    } catch (err) {
      throw new PinsFileError(opts.file, [
        `cannot read the pins file (pins.file): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      ]);
    }
    const build = (s: { content: Buffer | undefined }) =>
      parsePinsFile((s.content ?? Buffer.alloc(0)).toString('utf8'), opts.file);
    this.source = new WatchedFile({
      path: opts.file,
      build,
      pollIntervalMs: opts.pollIntervalMs,
      log: opts.logger,
      what: 'the pins file',
      initial: { value: build(snapshot), digest: snapshot.digest },
    });
    this.source.onReload((r) => this.reloaded(r));
    if (opts.watch) this.source.start();
    opts.events.pinsReload?.('success', this.current.size);
  }

  get current(): PinSet {
    return this.source.current ?? PinSet.EMPTY;
  }

  get state(): PinState {
    return this.opts.state;
  }

  /** Who re-approves changed definitions, and where; undefined when only the pins file decides. */
  get review(): PinGuardOptions['review'] {
    return this.opts.review;
  }

  /** The page where a changed definition is reviewed. */
  reviewUrl(id: string): string {
    return `${this.opts.review?.publicUrl ?? ''}/approvals/pins/${id}`;
  }

  /** Re-reads the pins file now. */
  async reload(): Promise<void> {
    await this.source.reload();
  }

  async close(): Promise<void> {
    await this.source.close();
    await this.opts.state.close();
  }

  private reloaded(r: ReloadResult<PinSet>): void {
    const { logger, events } = this.opts;
    if (r.ok) {
      logger.info({ pins_file: this.opts.file, pins: r.value.size }, 'pins reloaded');
      events.pinsReload?.('success', r.value.size);
      return;
    }
    const err = r.error as NodeJS.ErrnoException;
    const problems = r.unreadable
      ? [`cannot read the pins file: ${err.code ?? err.message}`]
      : err instanceof PinsFileError
        ? err.problems
        : [err.message];
    logger.warn(
      { pins_file: this.opts.file, problems, pins: this.current.size },
      'pins reload failed; the previous pins stay in force',
    );
    events.pinsReload?.('failure', this.current.size);
  }

  // ---- the call ----

  checkCalls(ctx: CheckContext): Promise<Deny | undefined> | undefined {
    const name = ctx.endpoint?.name;
    const ep = name === undefined ? undefined : this.current.endpoints.get(name);
    if (!ep) return undefined;
    let checked: McpCall[] | undefined;
    for (const c of ctx.mcp.calls) {
      if (c.kind !== 'request') continue;
      if (c.method === 'tools/call' || (c.method === 'prompts/get' && ep.pins.prompts.size > 0)) {
        (checked ??= []).push(c);
      }
    }
    if (!checked) return undefined;
    return this.checkAll(ctx, name!, ep, checked);
  }

  private async checkAll(
    ctx: CheckContext,
    endpoint: string,
    ep: EndpointPins,
    calls: McpCall[],
  ): Promise<Deny | undefined> {
    for (const call of calls) {
      const refused = await this.checkOne(ctx, endpoint, ep, call);
      if (refused) return refused;
    }
    return undefined;
  }

  private async checkOne(
    ctx: CheckContext,
    endpoint: string,
    ep: EndpointPins,
    call: McpCall,
  ): Promise<Deny | undefined> {
    const kind: PinKind = call.method === 'tools/call' ? 'tools' : 'prompts';
    const what = kind === 'tools' ? 'tool' : 'prompt';
    const name = call.name;
    const enforce = ep.mode !== 'report';
    if (kind === 'tools') call.tool = { pinned: false, annotations: DEFAULT_HINTS };
    if (name === undefined) {
      return enforce
        ? deny(
            'tool_definition_unseen',
            `The ${what} call names no ${what}, so its definition cannot be checked against its pin.`,
          )
        : undefined;
    }
    const filePin = ep.pins[kind].get(name);
    let seen: string | undefined;
    let pin: Pin | undefined = filePin;
    try {
      const found = await this.opts.state.lookup(
        endpoint,
        kind,
        name,
        filePin === undefined && ep.mode === 'trust-on-first-use',
        this.opts.review !== undefined,
      );
      seen = found.seen;
      pin = effectivePin(pin ?? found.firstSeen, found.repin);
    } catch (err) {
      this.opts.logger.error(
        { err: { message: (err as Error).message }, request_id: ctx.request.id, endpoint },
        'the pin state did not answer; a call to a pinned endpoint is refused',
      );
      return enforce
        ? deny(
            'pin_state_unavailable',
            `The definition of ${what} "${name}" cannot be checked now (the shared pin state did not answer); try again.`,
          )
        : undefined;
    }
    const drift = (change: DriftRecord['change']) =>
      this.opts.observer().drifted?.({
        endpoint,
        kind,
        name,
        mode: ep.mode,
        change,
        pinned: pin?.sha256,
        listed: seen,
        where: 'call',
        requestId: ctx.request.id,
      });
    if (pin === undefined) {
      if (ep.mode === 'trust-on-first-use' || seen === undefined) {
        return enforce
          ? deny(
              'tool_definition_unseen',
              `No list from this MCP server has shown ${what} "${name}" yet: list the ${what}s (${kind === 'tools' ? 'tools/list' : 'prompts/list'}) first, then call it.`,
            )
          : undefined;
      }
      drift('unpinned');
      return enforce
        ? deny(
            'tool_not_pinned',
            `The ${what} "${name}" has no pin for this endpoint: it was never reviewed, so it may not be called.${this.reviewNote(endpoint, kind, name, seen)}`,
            this.reviewExtra(endpoint, kind, name, seen),
          )
        : undefined;
    }
    if (seen === undefined) {
      return enforce
        ? deny(
            'tool_definition_unseen',
            `No list from this MCP server has shown ${what} "${name}" yet: list the ${what}s (${kind === 'tools' ? 'tools/list' : 'prompts/list'}) first, then call it.`,
          )
        : undefined;
    }
    if (seen !== pin.sha256) {
      drift('changed');
      return enforce
        ? deny(
            'tool_definition_changed',
            `The definition of ${what} "${name}" changed since it was pinned (pinned ${pin.sha256.slice(0, 12)}, listed ${seen.slice(0, 12)}); it may not be called until the change is reviewed.${this.reviewNote(endpoint, kind, name, seen)}`,
            this.reviewExtra(endpoint, kind, name, seen),
          )
        : undefined;
    }
    if (kind === 'tools') call.tool = { pinned: true, annotations: toolHints(pin.definition) };
    return undefined;
  }

  private reviewNote(endpoint: string, kind: PinKind, name: string, listed: string): string {
    const r = this.opts.review;
    return r === undefined
      ? ''
      : ` A person of ${r.group} can review it at ${this.reviewUrl(reviewId(endpoint, kind, name, listed))}.`;
  }

  private reviewExtra(endpoint: string, kind: PinKind, name: string, listed: string) {
    return this.opts.review === undefined
      ? {}
      : { extra: { review_url: this.reviewUrl(reviewId(endpoint, kind, name, listed)) } };
  }

  // ---- the list ----

  /** What one list response of an endpoint is judged by; undefined when the endpoint pins nothing. */
  async forList(endpoint: string | undefined, requestId: string | undefined): Promise<ListPins | undefined> {
    const ep = endpoint === undefined ? undefined : this.current.endpoints.get(endpoint);
    if (!ep) return undefined;
    let firstSeen: Map<string, Pin> | undefined;
    let repins: ReadonlyMap<string, Repin> | undefined;
    let degraded = false;
    if (this.opts.review !== undefined) {
      try {
        repins = await this.opts.state.repins(endpoint!);
      } catch (err) {
        // Without the re-approved definitions only the pins file (and first-seen pins) decide.
        repins = undefined;
        this.opts.logger.error(
          { err: { message: (err as Error).message }, endpoint, request_id: requestId },
          'the pin state did not answer: re-approved definitions are not shown in this list',
        );
      }
    }
    if (ep.mode === 'trust-on-first-use') {
      try {
        firstSeen = await this.opts.state.firstSeen(endpoint!);
      } catch (err) {
        // Without the first-seen pins nothing new can be trusted: only the file's pins show.
        degraded = true;
        firstSeen = new Map();
        this.opts.logger.error(
          { err: { message: (err as Error).message }, endpoint, request_id: requestId },
          'the pin state did not answer: only the pins file decides this list',
        );
      }
    }
    return new ListPins(endpoint!, ep, firstSeen, degraded, this.opts, requestId, this.digests, repins);
  }
}

/** One list response's pin decisions: synchronous for the filters, recorded afterwards in one write. */
export class ListPins {
  private readonly seen: Seen[] = [];
  private readonly first: FirstSeen[] = [];
  private readonly reviews: Review[] = [];
  /** Items hidden because of their pins, for the log line. */
  hidden = 0;

  constructor(
    private readonly endpoint: string,
    private readonly ep: EndpointPins,
    private readonly firstSeen: Map<string, Pin> | undefined,
    private readonly degraded: boolean,
    private readonly opts: Pick<PinGuardOptions, 'observer' | 'logger' | 'review'>,
    private readonly requestId: string | undefined,
    private readonly digests: DigestCache = new DigestCache(),
    private readonly repins?: ReadonlyMap<string, Repin>,
  ) {}

  get mode(): PinMode {
    return this.ep.mode;
  }

  /** Whether a listed item may be shown. Items of kinds the endpoint does not pin (resources) always may. */
  judge(kind: PinKind, item: Readonly<Record<string, unknown>>): boolean {
    const pins = this.ep.pins[kind];
    // Prompts and templates are pinned only where the file pins some, or on first use.
    if (kind !== 'tools' && pins.size === 0 && this.ep.mode !== 'trust-on-first-use') return true;
    const name = itemName(kind, item);
    if (name === undefined) return false;
    let digest: string;
    try {
      digest = this.digests.digest(kind, item);
    } catch {
      return this.ep.mode === 'report';
    }
    this.seen.push({ kind, name, sha256: digest });
    let pin = pins.get(name);
    if (pin === undefined && this.firstSeen) {
      const k = pinKey(kind, name);
      pin = this.firstSeen.get(k);
      if (pin === undefined && !this.degraded) {
        const definition = pinnedDefinition(kind, item);
        pin = Object.freeze({ sha256: digest, definition });
        this.firstSeen.set(k, pin);
        this.first.push({ kind, name, sha256: digest, definition });
        this.opts.logger.info(
          { endpoint: this.endpoint, kind, name, sha256: digest, request_id: this.requestId },
          'pinned on first use',
        );
      }
    }
    if (this.repins !== undefined) pin = effectivePin(pin, this.repins.get(pinKey(kind, name)));
    if (pin !== undefined && pin.sha256 === digest) return true;
    if (this.opts.review !== undefined && this.ep.mode !== 'report') {
      const review: Review = {
        id: reviewId(this.endpoint, kind, name, digest),
        endpoint: this.endpoint,
        kind,
        name,
        listed: digest,
        definition: pinnedDefinition(kind, item),
        requestedAt: Date.now(),
      };
      if (pin !== undefined) review.pinned = pin.sha256;
      if (pin?.definition !== undefined) review.pinnedDefinition = pin.definition;
      this.reviews.push(review);
    }
    this.opts.observer().drifted?.({
      endpoint: this.endpoint,
      kind,
      name,
      mode: this.ep.mode,
      change: pin === undefined ? 'unpinned' : 'changed',
      pinned: pin?.sha256,
      listed: digest,
      where: 'list',
      requestId: this.requestId,
    });
    if (this.ep.mode === 'report') return true;
    this.hidden++;
    return false;
  }

  /** Records what was listed (and pinned first): awaited before the client sees the list. */
  async flush(state: PinState): Promise<void> {
    const reviews = this.reviews.splice(0);
    for (const r of reviews) {
      // Told once per change, not on every list that shows it.
      if (!(await state.requestReview(r))) continue;
      this.opts.logger.info(
        {
          endpoint: r.endpoint,
          kind: r.kind,
          name: r.name,
          pinned: r.pinned,
          listed: r.listed,
          review_url: `${this.opts.review!.publicUrl}/approvals/pins/${r.id}`,
          request_id: this.requestId,
        },
        'a changed definition waits for review',
      );
    }
    if (this.seen.length === 0 && this.first.length === 0) return;
    const seen = this.seen.splice(0);
    const first = this.first.splice(0);
    await state.record(this.endpoint, seen, first);
  }
}
