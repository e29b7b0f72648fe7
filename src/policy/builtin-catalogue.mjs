// Which of OPA's builtins a policy can use in mcp-authz: the one list that the capabilities
// file (policies/wasm-capabilities.json, written by `mcp-authz policy build`), the engine's
// load-time check, the build's error message and docs/policies.md#builtins are made from.
// Every builtin of the pinned opa (`opa capabilities --current`) is in exactly one group;
// a test checks that, and that each HOST builtin has an implementation in src/policy/builtins/.
// Plain JavaScript so that the policy scripts can import it from an installed package.

/** Compiled into the policy module by `opa build -t wasm` (OPA's C library). */
export const NATIVE = [
  'abs',
  'all',
  'and',
  'any',
  'array.concat',
  'array.flatten',
  'array.reverse',
  'array.slice',
  'base64.decode',
  'base64.encode',
  'base64.is_valid',
  'base64url.decode',
  'base64url.encode',
  'bits.and',
  'bits.lsh',
  'bits.negate',
  'bits.or',
  'bits.rsh',
  'bits.xor',
  'ceil',
  'concat',
  'contains',
  'count',
  'div',
  'endswith',
  'equal',
  'floor',
  'format_int',
  'glob.match',
  'graph.reachable',
  'gt',
  'gte',
  'indexof',
  'internal.member_2',
  'internal.member_3',
  'internal.template_string',
  'intersection',
  'is_array',
  'is_boolean',
  'is_null',
  'is_number',
  'is_object',
  'is_set',
  'is_string',
  'json.filter',
  'json.is_valid',
  'json.marshal',
  'json.remove',
  'json.unmarshal',
  'lower',
  'lt',
  'lte',
  'max',
  'min',
  'minus',
  'mul',
  'neq',
  'net.cidr_contains',
  'net.cidr_intersects',
  'net.cidr_overlap',
  'numbers.range',
  'object.filter',
  'object.get',
  'object.keys',
  'object.remove',
  'object.union',
  'object.union_n',
  'or',
  'plus',
  'product',
  're_match',
  'regex.find_all_string_submatch_n',
  'regex.is_valid',
  'regex.match',
  'rem',
  'replace',
  'round',
  'set_diff',
  'sort',
  'split',
  'startswith',
  'strings.replace_n',
  'strings.reverse',
  'substring',
  'sum',
  'to_number',
  'trim',
  'trim_left',
  'trim_prefix',
  'trim_right',
  'trim_space',
  'trim_suffix',
  'type_name',
  'union',
  'upper',
  'walk',
];

/** Resolved by the compiler (assignment, unification, print, rule metadata): no call at run time. */
export const COMPILED_AWAY = ['assign', 'eq', 'print', 'internal.print', 'rego.metadata.chain', 'rego.metadata.rule'];

/** Provided by mcp-authz to the policy module (src/policy/builtins/), with OPA's semantics. */
export const HOST = [
  'base64url.encode_no_pad',
  'crypto.hmac.equal',
  'crypto.hmac.md5',
  'crypto.hmac.sha1',
  'crypto.hmac.sha256',
  'crypto.hmac.sha512',
  'crypto.md5',
  'crypto.sha1',
  'crypto.sha256',
  'glob.quote_meta',
  'hex.decode',
  'hex.encode',
  'indexof_n',
  'io.jwt.decode',
  'io.jwt.decode_verify',
  'io.jwt.verify_eddsa',
  'io.jwt.verify_es256',
  'io.jwt.verify_es384',
  'io.jwt.verify_es512',
  'io.jwt.verify_hs256',
  'io.jwt.verify_hs384',
  'io.jwt.verify_hs512',
  'io.jwt.verify_ps256',
  'io.jwt.verify_ps384',
  'io.jwt.verify_ps512',
  'io.jwt.verify_rs256',
  'io.jwt.verify_rs384',
  'io.jwt.verify_rs512',
  'net.cidr_contains_matches',
  'net.cidr_expand',
  'net.cidr_is_valid',
  'numbers.range_step',
  'rand.intn',
  'semver.compare',
  'semver.is_valid',
  'sprintf',
  'strings.any_prefix_match',
  'strings.any_suffix_match',
  'strings.count',
  'strings.split_n',
  'time.add_date',
  'time.clock',
  'time.date',
  'time.diff',
  'time.format',
  'time.now_ns',
  'time.parse_duration_ns',
  'time.parse_rfc3339_ns',
  'time.weekday',
  'trace',
  'urlquery.decode',
  'urlquery.decode_object',
  'urlquery.encode',
  'urlquery.encode_object',
  'uuid.rfc4122',
];

const NETWORK =
  "a network call per Check: the decision would wait on another service and fail with it; hand the policy what it needs as data (policy.data, the bundle's data.json)";
const DEPRECATED = 'deprecated: OPA refuses it in Rego v1, which policy build compiles';
const YAML = "Go's YAML reader and writer (YAML 1.1 rules, its formatting), which mcp-authz does not reproduce exactly";
const GO_STRUCTS = "its result is Go's parsed structures field by field, which mcp-authz does not reproduce exactly";

/** Not available in mcp-authz, and why. `mcp-authz policy build` refuses a policy that calls one. */
export const REFUSED = {
  'http.send': NETWORK,
  'net.lookup_ip_addr':
    'a DNS lookup per Check: the decision would wait on a resolver and fail with it; hand the policy addresses as data',
  'providers.aws.sign_req': 'signs requests for http.send, which is not available',
  'opa.runtime':
    'mcp-authz is not an OPA runtime: there is no OPA configuration to report, and the process environment is not handed to policies',
  'graphql.is_valid': "needs OPA's GraphQL parser and its syntax tree, which mcp-authz does not reproduce",
  'graphql.parse': "needs OPA's GraphQL parser and its syntax tree, which mcp-authz does not reproduce",
  'graphql.parse_and_verify': "needs OPA's GraphQL parser and its syntax tree, which mcp-authz does not reproduce",
  'graphql.parse_query': "needs OPA's GraphQL parser and its syntax tree, which mcp-authz does not reproduce",
  'graphql.parse_schema': "needs OPA's GraphQL parser and its syntax tree, which mcp-authz does not reproduce",
  'graphql.schema_is_valid': "needs OPA's GraphQL parser and its syntax tree, which mcp-authz does not reproduce",
  'json.match_schema':
    "JSON Schema validation with OPA's validator and its error messages, which mcp-authz does not reproduce",
  'json.verify_schema':
    "JSON Schema validation with OPA's validator and its error messages, which mcp-authz does not reproduce",
  'json.patch': 'not provided yet',
  'json.marshal_with_options': 'not provided yet',
  'rego.parse_module': "needs OPA's Rego parser",
  'strings.render_template': "Go's text/template language, which mcp-authz does not reproduce",
  'internal.test_case': 'used by opa test only',
  'io.jwt.encode_sign': 'signing tokens is not provided: a policy decides on tokens, it does not issue them',
  'io.jwt.encode_sign_raw': 'signing tokens is not provided: a policy decides on tokens, it does not issue them',
  'crypto.x509.parse_certificates': GO_STRUCTS,
  'crypto.x509.parse_and_verify_certificates': GO_STRUCTS,
  'crypto.x509.parse_and_verify_certificates_with_options': GO_STRUCTS,
  'crypto.x509.parse_certificate_request': GO_STRUCTS,
  'crypto.x509.parse_keypair': GO_STRUCTS,
  'crypto.x509.parse_rsa_private_key': GO_STRUCTS,
  'crypto.parse_private_keys': GO_STRUCTS,
  'regex.split': 'not provided yet',
  'regex.find_n': 'not provided yet',
  'regex.replace': 'not provided yet',
  'regex.globs_match': 'not provided yet',
  'regex.template_match': 'not provided yet',
  'graph.reachable_paths': 'not provided yet',
  'uri.is_valid': 'not provided yet',
  'uri.parse': 'not provided yet',
  'net.cidr_merge': 'not provided yet',
  cast_array: DEPRECATED,
  cast_boolean: DEPRECATED,
  cast_null: DEPRECATED,
  cast_object: DEPRECATED,
  cast_set: DEPRECATED,
  cast_string: DEPRECATED,
  'units.parse': 'not provided yet',
  'units.parse_bytes': 'not provided yet',
  'object.subset': 'not provided yet',
  'uuid.parse': 'not provided yet',
  'time.parse_ns': "not provided yet: Go's layout parser (time.parse_rfc3339_ns is)",
  'yaml.is_valid': YAML,
  'yaml.marshal': YAML,
  'yaml.unmarshal': YAML,
};

/** The builtins a policy can call: the capabilities `policy build` compiles against. */
export function availableBuiltins() {
  return [...NATIVE, ...COMPILED_AWAY, ...HOST].sort();
}

/**
 * The message for a build that failed on builtins the capabilities leave out: from opa's
 * `undefined function NAME` errors, each name with why it is not available, then the lists.
 * Returns undefined when the output names no such builtin.
 * @param {string} opaOutput
 * @returns {string | undefined}
 */
export function explainUnavailable(opaOutput) {
  const names = [...new Set([...opaOutput.matchAll(/undefined function ([A-Za-z0-9_.]+)/g)].map((m) => m[1]))];
  if (names.length === 0) return undefined;
  const refused = /** @type {Record<string, string>} */ (REFUSED);
  const lines = names
    .sort()
    .map((n) => `  ${n}: ${refused[n] ?? 'not an OPA builtin of this opa version (nor a function of the policy)'}`);
  const unavailable = Object.keys(refused).sort();
  return [
    `the policy calls builtins mcp-authz does not provide:`,
    ...lines,
    ``,
    `Not available in mcp-authz: ${unavailable.join(', ')}.`,
    `Available (${availableBuiltins().length}): ${availableBuiltins().join(', ')}.`,
    `See docs/policies.md#builtins.`,
  ].join('\n');
}
