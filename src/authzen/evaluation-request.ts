// Reads AuthZEN Authorization API 1.0 request bodies (docs/authzen.md): the single evaluation
// and the batch with its defaults and options. What the spec requires is checked here, with
// an error naming the field; unknown fields are ignored, as the spec requires of receivers.

/** A client's mistake in the request: answered 400 with this message. */
export class AuthzenBadRequest extends Error {}

export interface Entity {
  type: string;
  id: string;
  properties: Record<string, unknown>;
}

export interface Action {
  name: string;
  properties: Record<string, unknown>;
}

export interface Evaluation {
  subject: Entity;
  action: Action;
  resource: Entity;
  context: Record<string, unknown>;
}

export type Semantic = 'execute_all' | 'deny_on_first_deny' | 'permit_on_first_permit';
const SEMANTICS: readonly Semantic[] = ['execute_all', 'deny_on_first_deny', 'permit_on_first_permit'];

export interface EvaluationsRequest {
  /** Each evaluation, or why it cannot be read (answered as a deny of that item, with the error). */
  evaluations: (Evaluation | AuthzenBadRequest)[];
  semantic: Semantic;
  /** No `evaluations` array (or an empty one): answered as a single evaluation, `{decision}`. */
  single: boolean;
}

/** The body of POST /access/v1/evaluation. */
export function readEvaluation(body: unknown): Evaluation {
  const o = object(body, 'the request body');
  return evaluation(o, {}, '');
}

/** The body of POST /access/v1/evaluations, defaults applied to each evaluation. */
export function readEvaluations(body: unknown, maxEvaluations: number): EvaluationsRequest {
  const o = object(body, 'the request body');
  const list = o.evaluations;
  const options = o.options === undefined ? {} : object(o.options, 'options');
  const semantic = options.evaluations_semantic ?? 'execute_all';
  if (typeof semantic !== 'string' || !SEMANTICS.includes(semantic as Semantic))
    throw new AuthzenBadRequest(`options.evaluations_semantic must be one of ${SEMANTICS.join(', ')}`);
  if (list === undefined || (Array.isArray(list) && list.length === 0))
    return { evaluations: [evaluation(o, {}, '')], semantic: semantic as Semantic, single: true };
  if (!Array.isArray(list)) throw new AuthzenBadRequest('evaluations must be an array');
  if (list.length > maxEvaluations)
    throw new AuthzenBadRequest(`evaluations holds ${list.length} evaluations; at most ${maxEvaluations} are accepted`);
  // Defaults that are there must be well-formed: a bad default is the whole request's mistake.
  if (o.subject !== undefined) entity(o.subject, 'subject');
  if (o.action !== undefined) actionOf(o.action, 'action');
  if (o.resource !== undefined) entity(o.resource, 'resource');
  if (o.context !== undefined) object(o.context, 'context');
  return {
    evaluations: list.map((e, i) => {
      try {
        return evaluation(object(e, `evaluations[${i}]`), o, `evaluations[${i}].`);
      } catch (err) {
        if (err instanceof AuthzenBadRequest) return err;
        throw err;
      }
    }),
    semantic: semantic as Semantic,
    single: false,
  };
}

function evaluation(o: Record<string, unknown>, defaults: Record<string, unknown>, at: string): Evaluation {
  // A missing entity is named where it is missing (the evaluation), a bad default where it is (the top level).
  const pick = (key: string) =>
    (o[key] !== undefined
      ? [o[key], `${at}${key}`]
      : [defaults[key], defaults[key] === undefined ? `${at}${key}` : key]) as [unknown, string];
  const [subject, subjectAt] = pick('subject');
  const [action, actionAt] = pick('action');
  const [resource, resourceAt] = pick('resource');
  const [context, contextAt] = pick('context');
  return {
    subject: entity(subject, subjectAt),
    action: actionOf(action, actionAt),
    resource: entity(resource, resourceAt),
    context: context === undefined ? {} : object(context, contextAt),
  };
}

function entity(v: unknown, at: string): Entity {
  if (v === undefined) throw new AuthzenBadRequest(`${at} is required`);
  const o = object(v, at);
  return { type: string(o.type, `${at}.type`), id: string(o.id, `${at}.id`), properties: properties(o, at) };
}

function actionOf(v: unknown, at: string): Action {
  if (v === undefined) throw new AuthzenBadRequest(`${at} is required`);
  const o = object(v, at);
  return { name: string(o.name, `${at}.name`), properties: properties(o, at) };
}

function properties(o: Record<string, unknown>, at: string): Record<string, unknown> {
  return o.properties === undefined ? {} : object(o.properties, `${at}.properties`);
}

function object(v: unknown, at: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new AuthzenBadRequest(`${at} must be a JSON object`);
  return v as Record<string, unknown>;
}

function string(v: unknown, at: string): string {
  if (v === undefined) throw new AuthzenBadRequest(`${at} is required`);
  if (typeof v !== 'string') throw new AuthzenBadRequest(`${at} must be a string`);
  if (v.length === 0) throw new AuthzenBadRequest(`${at} must not be empty`);
  return v;
}
