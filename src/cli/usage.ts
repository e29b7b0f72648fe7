// What `mcp-authz --help` and `mcp-authz <command> --help` print.
import { packageVersion } from '../config/version.js';

/** The package's version (package.json), for --version and the logs. */
export const version = packageVersion;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const ENVIRONMENT = `environment:
  MCP_AUTHZ_LOG_LEVEL   service log level: ${LOG_LEVELS.join(', ')} (default info; decision lines are info)
  MCP_AUTHZ_LOG_BUFFER_BYTES   log lines held while stderr is not read, per process (default 4194304);
                        lines past it are dropped and counted, never waited for
  MCP_API_KEYS          development keys, a JSON map {"<key>": {name, userId, role, permissions}}, hashed at load
  MCP_OAUTH_ISSUER, MCP_OAUTH_AUDIENCE, MCP_OAUTH_JWKS_URI   one OAuth issuer
  MCP_RATE_LIMIT_RPS, MCP_RATE_LIMIT_BURST                    per-client rate limit
  MCP_REDIS_URL         Redis for limits shared by replicas (redis:// or rediss://)
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, …   OpenTelemetry tracing
                        over OTLP/HTTP, off unless set (docs/tracing.md lists every variable)`;

export const USAGE = {
  main: `usage: mcp-authz <command> [options]

commands:
  serve          run the service (Envoy ext_authz over gRPC, health, metrics)
  check          decide one sample request in-process and print why
  keys create    make a new API key and its registry entry
  policy build   compile Rego to the WASM bundle the service loads (opa build -t wasm)
  policy test    check and test Rego with opa (opa check --strict, opa test, coverage)

  mcp-authz <command> --help    options of one command
  mcp-authz --version           the version

${ENVIRONMENT}
`,
  serve: `usage: mcp-authz serve [--config FILE] [--workers N] [--check-config [--json]]

Runs the service: gRPC ext_authz Check, ext_proc and health on listen.grpc, HTTP /healthz,
/readyz, /metrics and the OAuth discovery documents on listen.http.
SIGTERM/SIGINT: health turns NOT_SERVING, in-flight Checks finish.

What reloads without a restart: the API keys file (apiKeys.file) and the policy (the
bundle file or the .rego folder), on change; a bad reload keeps the previous state. The
config file itself — endpoints, listen, limits, OAuth issuers, MCP_* variables — is read
once at start: restart to change it (in Kubernetes, a rolling restart; the Helm chart rolls
the pods when the rendered config changes).

options:
  -c, --config FILE   the config file (default: examples/quickstart/config.yaml, on loopback)
  -w, --workers N     worker processes sharing the gRPC port (default: the number of cores,
                      capped by the container's CPU quota — cgroup cpu.max or
                      cpu.cfs_quota_us, rounded up; 1 runs one process)
  --check-config      validate the config, open the API keys file and load the policy bundle
                      (or compile the .rego folder) exactly as serve does, print what loaded,
                      and exit: 0 when everything loads, 1 naming what does not
  --json              with --check-config: print one JSON object instead (ok, config,
                      apiKeys, policy, tracing, problems [{part, message}], warnings)
  -h, --help          this help

${ENVIRONMENT}
`,
  check: `usage: mcp-authz check [--config FILE] --path P [--method M] [-H 'name: value']... [--body JSON|@file|-]
                       [--host H] [--source ADDR] [--peer-principal SPIFFE_ID] [--peer-certificate @PEM]
                       [--explain] [--rego DIR]
                       [--response JSON|@file|- [--response-type json|sse]]
       mcp-authz check [--config FILE] --check-request JSON|@file|- [--explain] [--response …]

Runs the same pipeline as the server, in-process, on one sample request and prints the
decision as JSON: allow/deny, status, body, headers, endpoint, principal, MCP calls, the
policy input and result, the CheckResponse, and why authentication failed (authFailure,
authDetail, authWhy). Exit code 0 on allow, 3 on deny (or a discovery answer).

options:
  -c, --config FILE   the config file (default: the quickstart)
  --path P            the request path, with its query (required)
  -X, --method M      the HTTP method (default POST)
  -H, --header 'name: value'   a request header (repeatable)
  -d, --body JSON     the request body, @file to read it from a file, - from standard input
  --host H            the :authority (default localhost)
  --source ADDR       the client address (default 127.0.0.1)
  --peer-principal ID the mTLS peer Envoy verified (source.principal), e.g.
                      spiffe://cluster.local/ns/agents/sa/planner (default: none, plain TCP)
  --peer-certificate @FILE   the peer's PEM certificate (source.certificate)
  --explain           add the policy's rule trace: the real \`opa eval --explain=full\` on the
                      same input and data, from the policy's .rego source (policy.explain)
  --rego DIR          the .rego source the bundle was built from, for --explain. Not needed
                      with policy.rego or the shipped bundle; a bundle built by
                      \`opa build -t wasm\` alone does not carry its entrypoint's source
  --response TEXT     a sample upstream response to the request (or @file): explain how the
                      ext_proc service filters its lists — each item, the call it stands for,
                      visible or not, and the body Envoy would send on (response)
  --response-type T   json, sse (an event stream) or auto (default: JSON when it starts with
                      "{" or "[")
  --check-request J   the whole request as Envoy sent it: an envoy.service.auth.v3.CheckRequest
                      in protobuf's JSON form (lowerCamelCase or .proto field names, rawBody as
                      base64, time as RFC 3339), @file or - for standard input; decoded as a
                      Check from Envoy is. Replaces --path, --host, --source, -H, --body and
                      the --peer flags (--method is ignored)

Only one flag can read standard input (-).
  -h, --help          this help
`,
  keys: `usage: mcp-authz keys create --name N [--id ID] [--user U] [--role R] [--permission P]...
                            [--expires DATE] [--append FILE] [--json]

Makes a new API key (mcp_ + 256 random bits + a checksum) and prints it once, with the
registry entry that holds only its SHA-256.

options:
  --name N            what the key is for (required)
  --id ID             its id in logs and metrics (default: the name's slug + 6 hex digits)
  --user U            the owner (userId); without it the key is a public key
  --role R            a role handed to the policy
  --permission P      a grant such as tools:search or tools:read_* (repeatable)
  --expires DATE      an ISO 8601 date or time in the future
  --append FILE       add the entry to this keys file (YAML, keys: list), keeping its other
                      entries and comments; written to a temporary file and renamed over it,
                      so the service never reads half a file. Refuses a duplicate id or hash
  --json              print {key, entry} as JSON
  -h, --help          this help
`,
  policy: `usage: mcp-authz policy build [--src DIR] [--out FILE] [--entrypoint E] [--visible-entrypoint V] [--force]
       mcp-authz policy test [--src DIR] [--cases DIR] [--min-coverage PCT]

  build   opa build -t wasm of the Rego (default: the shipped policy) into a bundle
  test    opa check --strict, opa test and coverage of the Rego (default: the shipped policy)

Both use the pinned opa: $OPA, else ./.tools/bin/opa, else opa on PATH.
mcp-authz policy build --help / policy test --help for their options.
`,
} as const;
