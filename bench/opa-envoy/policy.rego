# The benchmark's opa-envoy-plugin policy: the same decisions as mcp-authz's shipped policy
# for the benchmark's requests, written for opa-envoy-plugin's input (attributes,
# parsed_path, parsed_body). Data (written per run by bench/run.ts, under data.bench):
#   endpoints: [{name, segments, owner?, apiKey, oauth, resource?}]
#   keys: {<sha256 hex of the key>: {id, userId?, permissions, disabled}}
#   oauth: {issuer, jwks (JWKS as a JSON string)}
# Query path: envoy/authz/decision (opa-envoy-plugin's object response).
package envoy.authz

http := input.attributes.request.http

# The endpoint: the one whose path segments prefix the request path.
endpoint := ep if {
	some ep in data.bench.endpoints
	array.slice(input.parsed_path, 0, count(ep.segments)) == ep.segments
}

# --- authentication -------------------------------------------------------------------

api_key := http.headers["x-api-key"]

bearer := t if {
	auth := http.headers.authorization
	startswith(auth, "Bearer ")
	t := substring(auth, 7, -1)
}

key_principal := {"method": "api_key", "id": key.id, "userId": object.get(key, "userId", null), "grants": key.permissions} if {
	endpoint.apiKey
	key := data.bench.keys[crypto.sha256(api_key)]
	not key.disabled
}

token_claims := claims if {
	endpoint.oauth
	not api_key
	[valid, _, claims] := io.jwt.decode_verify(bearer, {
		"cert": data.bench.oauth.jwks,
		"iss": data.bench.oauth.issuer,
		"aud": endpoint.resource,
	})
	valid
}

token_principal := {"method": "oauth", "id": token_claims.sub, "userId": token_claims.sub, "grants": split(token_claims.scope, " ")}

principal := key_principal

principal := token_principal if not key_principal

principal := {"method": "anonymous", "id": "anonymous", "userId": null, "grants": []} if {
	not endpoint.apiKey
	not endpoint.oauth
}

# --- authorization --------------------------------------------------------------------

owns_endpoint if not endpoint.owner

owns_endpoint if principal.userId == endpoint.owner

calls := input.parsed_body if is_array(input.parsed_body)

calls := [input.parsed_body] if is_object(input.parsed_body)

calls := [] if not input.parsed_body

granted(_, _) if "*" in principal.grants

granted(kind, name) if {
	some g in principal.grants
	startswith(g, concat("", [kind, ":"]))
	glob.match(substring(g, count(kind) + 1, -1), null, name)
}

needs := {"tools/call": "tools", "prompts/get": "prompts", "resources/read": "resources"}

target(c) := c.params.name if c.method != "resources/read"

target(c) := c.params.uri if c.method == "resources/read"

call_denied if {
	some c in calls
	kind := needs[c.method]
	not granted(kind, target(c))
}

# --- the decision -------------------------------------------------------------------------

outcome := {"status": 404, "error": "not_found", "description": "No MCP endpoint is configured for this path."} if {
	not endpoint
} else := {"status": 401, "error": "invalid_api_key", "description": "The provided API key is invalid or expired"} if {
	api_key
	not principal
} else := {"status": 401, "error": "invalid_token", "description": "The provided OAuth token is invalid or has expired."} if {
	bearer
	not principal
} else := {"status": 401, "error": "authentication_required", "description": "Authentication required."} if {
	not principal
} else := {"status": 403, "error": "access_denied", "description": "You can only access endpoints you own or public endpoints"} if {
	not owns_endpoint
} else := {"status": 403, "error": "access_denied", "description": "This call is not granted."} if {
	call_denied
} else := {"status": 200}

decision := {
	"allowed": true,
	"headers": {
		"x-mcp-principal": principal.id,
		"x-mcp-auth-method": principal.method,
	},
	"request_headers_to_remove": ["x-api-key", "authorization"],
} if outcome.status == 200

decision := {
	"allowed": false,
	"http_status": outcome.status,
	"headers": {"content-type": "application/json"},
	"body": json.marshal({"error": outcome.error, "error_description": outcome.description}),
} if outcome.status != 200
