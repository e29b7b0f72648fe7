// The MCP list methods whose results are filtered per caller, and where each result keeps
// its items: the array member of the result and the member that names one item.
import type { WithheldReason } from '../contracts/codes.js';

export type ListMethod = 'tools/list' | 'prompts/list' | 'resources/list' | 'resources/templates/list';

export interface ListShape {
  /** The result member holding the array of items. */
  readonly arrayKey: 'tools' | 'prompts' | 'resources' | 'resourceTemplates';
  /** The item member the visibility rule is decided on. */
  readonly itemKey: 'name' | 'uri' | 'uriTemplate';
}

export const LIST_SHAPES: ReadonlyMap<ListMethod, ListShape> = new Map<ListMethod, ListShape>([
  ['tools/list', { arrayKey: 'tools', itemKey: 'name' }],
  ['prompts/list', { arrayKey: 'prompts', itemKey: 'name' }],
  ['resources/list', { arrayKey: 'resources', itemKey: 'uri' }],
  ['resources/templates/list', { arrayKey: 'resourceTemplates', itemKey: 'uriTemplate' }],
]);

export function isListMethod(method: string): method is ListMethod {
  return LIST_SHAPES.has(method as ListMethod);
}

/** A JSON-RPC request id. */
export type RequestId = string | number;

/** The list calls of one HTTP request: JSON-RPC request id → list method. */
export type ListCalls = ReadonlyMap<RequestId, ListMethod>;

/** One listed item as the visibility rule sees it: a tool or prompt name, a resource URI or a URI template. */
export interface ListedItem {
  readonly method: ListMethod;
  readonly key: string;
  /** The listed object itself, as parsed (its definition, for pins); absent where only the key is known. */
  readonly item?: Readonly<Record<string, unknown>>;
}

/** Whether the caller may see one item. */
export type Visibility = (item: ListedItem) => boolean;

/** Why a list cannot be shown; the list is then withheld, never passed on unfiltered. */
export interface FilterFailure {
  readonly ok: false;
  readonly code: WithheldReason;
  /** Why, for logs; never sent to the client. */
  readonly detail: string;
}

/**
 * Decides the visibility of every item of one response at once, so the policy is
 * evaluated once per list response, never once per item; a failure withholds the list.
 */
export type VisibilityFor = (items: readonly ListedItem[]) => Visibility | FilterFailure;
