// The CheckRequest's AttributeContext as opa-envoy-plugin shows it to a policy (protojson:
// lowerCamelCase names, Timestamps as RFC 3339, bytes as base64, Structs as plain JSON),
// built from proto-loader's decoded message. Credentials are not removed here: the policy
// input redacts them (src/policy/redact-attributes.ts).

const camelCache = new Map<string, string>();
function camel(k: string): string {
  let c = camelCache.get(k);
  if (c === undefined) {
    c = k.replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());
    camelCache.set(k, c);
  }
  return c;
}

/** The attributes in protojson form; `{}` when there are none. */
export function protojsonAttributes(wire: unknown): Record<string, unknown> {
  if (!wire || typeof wire !== 'object') return {};
  return convert(wire, '') as Record<string, unknown>;
}

function convert(v: unknown, key: string): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map((x) => convert(x, key));
  const o = v as Record<string, unknown>;
  if (key === 'time' && ('seconds' in o || 'nanos' in o)) return timestamp(o);
  if (key === 'filter_metadata') {
    const m: Record<string, unknown> = {};
    for (const k of Object.keys(o)) m[k] = struct(o[k]);
    return m;
  }
  // Free-form maps keep their keys as sent.
  const keepKeys = key === 'headers' || key === 'context_extensions';
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) {
    const val = o[k];
    // proto-loader's `oneofs: true` adds the name of the set field; protojson has no such field.
    if (typeof val === 'string' && !keepKeys && Object.hasOwn(o, val) && val !== k) continue;
    out[keepKeys ? k : camel(k)] = keepKeys ? val : convert(val, k);
  }
  return out;
}

function timestamp(o: Record<string, unknown>): string {
  const ms = Number(o.seconds ?? 0) * 1000 + Math.floor(Number(o.nanos ?? 0) / 1e6);
  const d = new Date(ms);
  return Number.isFinite(d.getTime()) ? d.toISOString().replace('.000Z', 'Z') : '';
}

/** google.protobuf.Struct / Value in proto-loader's object form → plain JSON. */
function struct(s: unknown): unknown {
  const fields = (s as { fields?: Record<string, unknown> } | null)?.fields;
  if (!fields) return {};
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(fields)) out[k] = value(fields[k]);
  return out;
}

// The decoded Value names its field in lowerCamelCase (`stringValue`), whatever `keepCase`
// says for the envoy messages: protobufjs bundles google.protobuf.Struct with its own names.
// The snake_case spelling is read too, for messages built by hand.
function value(v: unknown): unknown {
  // biome-ignore lint/suspicious/noExplicitAny: a decoded google.protobuf.Value, read field by field below
  const o = v as Record<string, any> | null;
  if (!o) return null;
  if ('stringValue' in o) return o.stringValue;
  if ('string_value' in o) return o.string_value;
  if ('numberValue' in o) return o.numberValue;
  if ('number_value' in o) return o.number_value;
  if ('boolValue' in o) return o.boolValue;
  if ('bool_value' in o) return o.bool_value;
  if ('structValue' in o) return struct(o.structValue);
  if ('struct_value' in o) return struct(o.struct_value);
  const list = o.listValue ?? o.list_value;
  if (list !== undefined) return (list?.values ?? []).map(value);
  return null;
}
