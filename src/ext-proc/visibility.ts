// Which items of a list response the caller sees. Each item stands for a call — tools/call of
// the tool, prompts/get of the prompt, resources/read of the resource URI (normalized as a
// resources/read of it would be) or of the URI template (normalized and granted as
// completion/complete's ref/resource is) — and the authorizer's visibility rule
// decides all of them in one evaluation, in the context of the list request. Dry-run is
// applied here, once: nothing is hidden, and what would have been is counted.
import type { CheckTrace, ListTally, VisibilityRecord } from '../decision/context.js';
import { RequestRejected } from '../contracts/request-rejected.js';
import type { McpCall } from '../contracts/request.js';
import { normalizeResourceTemplate, normalizeResourceUri } from '../request/normalize-resource-uri.js';
import { failure } from '../mcp-response/list-filter.js';
import type { ListedItem, ListMethod, Visibility, VisibilityFor } from '../mcp-response/list-methods.js';
import type { Runtime } from '../pipeline/runtime.js';
import { KIND_OF_METHOD } from '../pins/definition.js';
import type { ListPins } from '../pins/pin-guard.js';

/** The call a listed item stands for; a template is marked so a policy can tell it from a URI. */
export type ListedCall = McpCall & { template?: true };

/** The call a listed item stands for, or undefined when no such call could be allowed (a URI the service refuses). */
export function callOfItem(item: ListedItem): ListedCall | undefined {
  switch (item.method) {
    case 'tools/list':
      return { method: 'tools/call', kind: 'request', name: item.key };
    case 'prompts/list':
      return { method: 'prompts/get', kind: 'request', name: item.key };
    case 'resources/list':
    case 'resources/templates/list': {
      let uri: string;
      try {
        // A template is normalized as completion/complete's ref/resource names it: a listed item
        // is visible exactly when its own handlers (read, subscribe, complete) are callable.
        uri = item.method === 'resources/list' ? normalizeResourceUri(item.key) : normalizeResourceTemplate(item.key);
      } catch (err) {
        if (err instanceof RequestRejected) return undefined;
        throw err;
      }
      return item.method === 'resources/list'
        ? { method: 'resources/read', kind: 'request', uri }
        : { method: 'resources/read', kind: 'request', uri, template: true };
    }
  }
}

const keyOf = (item: ListedItem) => `${item.method}\0${item.key}`;

/** One item's visibility, for `mcp-authz check --response`. */
export interface ItemDecision {
  method: ListMethod;
  key: string;
  /** The call it stands for; undefined when none could be allowed (a URI the service refuses). */
  call: ListedCall | undefined;
  visible: boolean;
}

/** The visibility decisions of one list request's response, with what they showed and hid. */
export class ListVisibility {
  readonly tallies: ListTally[];
  readonly evaluations: VisibilityRecord[] = [];
  readonly dryRun: boolean;
  /** Every item decided, when asked to keep them (`mcp-authz check`). */
  readonly decisions: ItemDecision[] | undefined;
  /** The endpoint's pins, judging each listed definition before the policy sees it. */
  readonly pins: ListPins | undefined;

  constructor(
    private readonly rt: Runtime,
    private readonly trace: CheckTrace,
    methods: Iterable<ListMethod>,
    opts: { keepDecisions?: boolean; pins?: ListPins } = {},
  ) {
    this.pins = opts.pins;
    if (opts.keepDecisions) this.decisions = [];
    this.tallies = [...new Set(methods)].map((method) => ({ method, shown: 0, hidden: 0 }));
    this.dryRun = rt.config.policy?.dryRun === true;
  }

  /** For the list filters (src/mcp-response/): one policy evaluation per call, whatever the number of items. */
  readonly visibleFor: VisibilityFor = (items) => {
    const ctx = this.trace.ctx;
    const authorizer = this.rt.authorizer;
    if (!ctx || !authorizer.visible) return failure('visibility_unavailable', 'the authorizer has no visibility rule');
    const calls: ListedCall[] = [];
    const asked: ListedItem[] = [];
    const answers = new Map<string, boolean>();
    // A key any of whose listed definitions is not its pin stays hidden, whatever else is listed under it.
    let unpinned: Set<string> | undefined;
    const pins = this.pins;
    for (const item of items) {
      const call = callOfItem(item);
      const kind = pins && KIND_OF_METHOD[item.method];
      if (kind && !pins.judge(kind, item.item ?? {})) {
        (unpinned ??= new Set()).add(keyOf(item));
        continue;
      }
      if (call === undefined) answers.set(keyOf(item), false);
      else {
        calls.push(call);
        asked.push(item);
      }
    }
    if (calls.length > 0) {
      // The input the request was decided on: with raw credentials, the one the policy evaluated.
      const policy = this.trace.policy;
      const r = authorizer.visible(ctx, calls, policy?.credentials?.input() ?? policy?.input);
      if (r.record) this.evaluations.push(r.record);
      if (!r.ok) return failure(r.reason, r.detail);
      asked.forEach((item, i) => {
        answers.set(keyOf(item), r.visible[i]!);
      });
    }
    if (unpinned) for (const k of unpinned) answers.set(k, false);
    for (const item of items) {
      const shown = answers.get(keyOf(item)) === true;
      this.decisions?.push({ method: item.method, key: item.key, call: callOfItem(item), visible: shown });
      const tally = this.tallies.find((t) => t.method === item.method);
      if (!tally) continue;
      if (shown) tally.shown++;
      else tally.hidden++;
    }
    // Dry-run is the policy's: what the pins hide stays hidden (their own `report` mode hides nothing).
    if (this.dryRun) return unpinned ? (item) => !unpinned.has(keyOf(item)) : SHOW_ALL;
    const visible: Visibility = (item) => answers.get(keyOf(item)) === true;
    return visible;
  };
}

const SHOW_ALL: Visibility = () => true;
