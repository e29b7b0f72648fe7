// What `mcp-authz --help` and `mcp-authz <command> --help` print.
import { packageVersion } from '../config/version.js';
import { loginExitTable } from './login-exit-codes.js';

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
  replay: `usage: mcp-authz replay --bundle CANDIDATE [--config FILE] [--json] [--skip-masked] FILE...

Runs every captured decision whose policy input is recorded through the candidate policy
(a bundle .tar.gz, a bundle folder or a .rego folder, with the config's entrypoint and data)
and reports each decision that would change: the decision (allow, deny, error) or its code.
FILE holds decision-log events in OPA's shape — as mcp-authz ships them (a JSON array per
upload, gzip-compressed or not) or one event per line — or "-" for standard input.
mcp-authz's own decision lines carry no input: they are counted as not replayable.
An event with masked or erased input paths is replayed on what is left and flagged
"masked" (its policy saw more than the candidate does); --skip-masked leaves them out.

exit code: 0 no decision would change, 1 at least one would, 2 the command could not run
(a bad flag, an unreadable file, a candidate that does not load).

options:
  --bundle CANDIDATE  the candidate policy (required)
  -c, --config FILE   the config whose policy entrypoint, data and endpoints the candidate
                      is given (default: the quickstart)
  --json              one JSON object: counts, and every changed decision
  --skip-masked       leave out events whose input was masked before it was logged
  -h, --help          this help
`,
  main: `usage: mcp-authz <command> [options]

commands:
  serve          run the service (Envoy ext_authz over gRPC, health, metrics)
  check          decide one sample request in-process and print why
  replay         run captured decision-log records through a candidate policy; list what changes
  pins record    pin the tool definitions an MCP server lists (pins file); pins diff: what changed
  keys create    make a new API key and its registry entry (--store postgres: in the database)
  keys revoke    revoke a key in the PostgreSQL store (--store postgres --id ID)
  db migrate     create or update the PostgreSQL store's tables (docs/stores.md)
  login          log in at an OAuth authorization server as an MCP client does; print the token
  connections    list or revoke users' upstream connections (userConnections)
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
                       [--bearer TOKEN|@FILE|-] [--explain] [--rego DIR]
                       [--response JSON|@file|- [--response-type json|sse]] [--shadow BUNDLE]
       mcp-authz check [--config FILE] --check-request JSON|@file|- [--explain] [--response …] [--shadow BUNDLE]

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
  --bearer TOKEN|@FILE|-   send Authorization: Bearer with this token: the token itself, a file,
                      or standard input holding it or the JSON of \`mcp-authz login --json\`
                      (or its --save file). e.g.
                        mcp-authz login --resource URL --json | mcp-authz check --bearer - …
  --shadow BUNDLE     a candidate policy (bundle .tar.gz, bundle folder or .rego folder):
                      evaluated on the same input, never deciding; "shadow" shows both
                      decisions and codes and whether they differ (docs/shadow.md). The exit
                      code stays the enforced decision's
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

       mcp-authz keys create --store postgres --name N [--id ID] [--user U] ... [--json]
       mcp-authz keys revoke --store postgres --id ID
  --store postgres    the key goes to (or is revoked in) the PostgreSQL store; every replica
                      sees it on its next Check (docs/stores.md)
  --database-url URL  postgres://user@host/db (no password in it); default: the config's
                      stores.postgres.url (--config FILE), $MCP_AUTHZ_DATABASE_URL, the PG* variables
  --password-file F   the password, from a file (or PGPASSWORD)
  --schema S          the tables' schema (default mcp_authz)
`,
  db: `usage: mcp-authz db migrate [--database-url URL] [--password-file FILE] [--schema S] [--config FILE] [--json]

Creates or updates the PostgreSQL store's tables (migrations/postgres/*.sql): each migration
not yet recorded in <schema>.schema_migrations, in its own transaction, under an advisory
lock so that replicas or jobs running at once apply each one once (docs/stores.md).

options:
  --database-url URL  postgres://user@host/db (no password in it); default: the config's
                      stores.postgres.url (--config FILE), $MCP_AUTHZ_DATABASE_URL, the PG* variables
  --password-file F   the password, from a file (or PGPASSWORD)
  --schema S          the tables' schema (default mcp_authz)
  --json              print {applied, current} as JSON
  -h, --help          this help
`,
  connections: `usage: mcp-authz connections list [--provider P] [--json] --config FILE
       mcp-authz connections revoke --user U --provider P [--json] --config FILE

Users' upstream connections (endpoints[].upstream.mode: userConnections), read from and
removed in the provider's store.redis. A revoked connection is gone on the next call: the
user is asked to connect again. A provider without store.redis keeps connections in the
running service's memory, which this command cannot reach.

options:
  -c, --config FILE   the service's config (required)
  --provider P        the provider name (list: all providers by default)
  --user U            the principal id the connection belongs to (the key id, "<iss>#<sub>", …)
  --json              print JSON
  -h, --help          this help

exit codes: 0 done, 1 the config has no such provider or its store is in memory, 2 usage,
3 revoke found no connection
`,
  pins: `usage: mcp-authz pins record --endpoint NAME (--from FILE | --url URL) [--pins FILE] [--mode MODE] [--json]
       mcp-authz pins diff   --endpoint NAME (--from FILE | --url URL) [--pins FILE] [--json]
       mcp-authz pins approved --config FILE [--apply] [--json]

record: writes the definitions an MCP server lists (tools; prompts and resource templates
when it has them) as the endpoint's pins in the pins file, replacing its earlier pins of
those kinds and keeping everything else. diff: what changed since they were pinned — text
members as a word diff, schemas as JSON Pointer paths; exit 1 when anything differs.
Ask the MCP server itself (or a route in report mode): a list through an enforcing
mcp-authz has the changed tools removed already.
approved: the changed definitions approvers re-approved on the approval page, read from the
shared pin state (Redis) of the service's config; --apply folds each into the pins file
(only where the file still holds the pin it was reviewed against).

options:
  --endpoint NAME       the endpoint the pins are for (endpoints[].name) (required)
  --from FILE           a saved list response: JSON-RPC, a bare result, several in an array,
                        or an SSE stream's text; - for standard input
  --url URL             the live MCP endpoint (Streamable HTTP): initialize, then every page
                        of tools/list, prompts/list and resources/templates/list
  --bearer-file FILE    a file holding the bearer token to send (Authorization)
  --api-key-file FILE   a file holding an API key to send, in --api-key-header (x-api-key)
  --timeout-ms N        per request to --url (default 30000)
  --pins FILE           the pins file (default pins.yaml); written atomically
  --mode MODE           record: enforce, trust-on-first-use or report (default: the
                        endpoint's mode in the file, else enforce)
  --config FILE         approved: the service's config (its pins file and Redis)
  --apply               approved: write the re-approved definitions into the pins file
  --json                machine-readable output
  -h, --help            this help
`,
  login: `usage: mcp-authz login (--resource URL | --issuer URL | both) [--scope S]...
                       [--client-id ID [--client-secret-file FILE] | --client-metadata-url URL]
                       [--port N] [--no-browser] [--json] [--save FILE] [--timeout SECONDS] [--allow-http]

Logs in the way MCP clients do (OAuth 2.1, MCP authorization 2025-11-25) and prints the access
token, to try \`mcp-authz check --bearer\` (or curl) with a real token from the real IdP.

  1. discovery: --resource URL is an MCP endpoint. An unauthenticated POST finds its 401
     challenge's resource_metadata; without one, the RFC 9728 document at
     /.well-known/oauth-protected-resource<path>, then at the root. Its first
     authorization_servers entry is the issuer; its "resource" is the token's RFC 8707
     resource. --issuer URL names the authorization server instead (with --resource too, the
     MCP endpoint is not contacted and URL is sent as the resource as given). The issuer's
     metadata: /.well-known/oauth-authorization-server, then openid-configuration (path
     inserted, then appended); its issuer must match, and it must list PKCE S256.
  2. client: --client-id (a registered client; public, or confidential with
     --client-secret-file), else --client-metadata-url (an https Client ID Metadata Document,
     when the server advertises client_id_metadata_document_supported), else RFC 7591 dynamic
     registration of a native public client, when the server has a registration_endpoint.
  3. authorization code with PKCE S256, state, resource and scopes; the browser returns to
     http://127.0.0.1:<port>/callback, a listener that takes one callback. state must match;
     iss (RFC 9207) must be the issuer when present, and is required when advertised.
  4. the code is exchanged (with the verifier and the resource); the token is printed.

options:
  --resource URL      the MCP endpoint (e.g. https://mcp.example.com/mcp/files)
  --issuer URL        the authorization server (skips the MCP endpoint's metadata)
  --scope S           a scope to ask for (repeatable, or space-separated). Default: the
                      challenge's scope, else the metadata's scopes_supported, else none
  --client-id ID      a client registered at the authorization server. Its redirect URI is
                      http://127.0.0.1:<port>/callback (servers that follow RFC 8252 accept any
                      port for a loopback redirect; others need --port)
  --client-secret-file FILE   the client's secret (for a confidential client), alone in FILE;
                      sent as client_secret_basic, or client_secret_post when only that is listed
  --client-metadata-url URL   use this Client ID Metadata Document URL as the client_id
  --port N            the loopback port (default: one the system picks)
  --no-browser        do not open a browser: print the URL to open (on standard error)
  --json              print JSON: access_token, token_type, expires_in, expires_at, scopes,
                      issuer, resource, client_id (and saved_to)
  --save FILE         also write that JSON, with the refresh token when one was issued, to FILE
                      (mode 0600, through a new file renamed into place). Refused when FILE is
                      a symlink, not a regular file, someone else's, or readable by others.
                      Without --save nothing is written to disk; the refresh token is never printed
  --timeout SECONDS   give up after this long, browser included (default 300)
  --allow-http        allow plain http to an authorization server off loopback (test servers)
  -h, --help          this help

The URL and progress go to standard error; standard output holds only the token (or --json).
$BROWSER, when set, is the command that opens the URL (its first entry when it is a list; %s
stands for the URL, else the URL is appended); else xdg-open, open, or url.dll.

exit codes:
${loginExitTable()}
`,
  policy: `usage: mcp-authz policy build [--src DIR] [--out FILE] [--entrypoint E] [--visible-entrypoint V] [--force]
       mcp-authz policy test [--src DIR] [--cases DIR] [--min-coverage PCT]

  build   opa build -t wasm of the Rego (default: the shipped policy) into a bundle
  test    opa check --strict, opa test and coverage of the Rego (default: the shipped policy)

Both use the pinned opa: $OPA, else ./.tools/bin/opa, else opa on PATH.
mcp-authz policy build --help / policy test --help for their options.
`,
} as const;
