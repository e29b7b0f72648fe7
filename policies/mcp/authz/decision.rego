# The shipped authorization policy: endpoint ownership, public/private endpoints, per-tool
# access and argument constraints (arguments.rego). Entrypoint: mcp/authz/decision. Input
# and decision: docs/policies.md.
package mcp.authz

# Deny by default: anything the rules below do not explicitly allow.
default decision := {
	"allow": false,
	"status": 403,
	"error": "access_denied",
	"error_description": "Access denied by policy.",
}

decision := approval_decision if {
	endpoint_access
	count(denied_calls) == 0
	count(argument_violations) == 0
	count(held_rules) > 0
} else := {"allow": true} if {
	endpoint_access
	count(denied_calls) == 0
	count(argument_violations) == 0
} else := endpoint_denial if {
	not endpoint_access
} else := missing_target_denial if {
	count(missing_targets) > 0
} else := call_denial_token if {
	count(denied_calls) > 0
	input.principal.method == "oauth"
} else := call_denial_key if {
	count(denied_calls) > 0
	input.principal.method == "api_key"
} else := call_denial_workload if {
	count(denied_calls) > 0
	input.principal.method == "mtls"
} else := call_denial_anonymous if {
	count(denied_calls) > 0
} else := argument_denial

# --- endpoint access -------------------------------------------------------------

private_endpoint if is_string(input.endpoint.owner)

# Authentication is off only when no method is on: mTLS workloads and session cookies are methods too.
auth_off if {
	input.endpoint.auth.apiKey == false
	input.endpoint.auth.oauth == false
	not input.endpoint.auth.mtls
	not input.endpoint.auth.jwtCookie
}

# Anonymous callers pass only where the endpoint turns authentication off; workloads only
# where the endpoint lists them (workloads.rego).
known_principal if {
	input.principal.authenticated == true
	input.principal.method != "mtls"
}

known_principal if workload_listed

known_principal if {
	input.principal.method == "anonymous"
	auth_off
}

endpoint_access if {
	known_principal
	not private_endpoint
}

endpoint_access if {
	known_principal
	private_endpoint
	input.principal.userId == input.endpoint.owner
}

endpoint_denial := denial(403, "access_denied", "Public API keys cannot access private endpoints") if {
	private_endpoint
	input.principal.method == "api_key"
	not input.principal.userId
} else := denial(403, "access_denied", "Workload identities cannot access private endpoints") if {
	private_endpoint
	input.principal.method == "mtls"
} else := denial(403, "access_denied", "You can only access endpoints you own or public endpoints") if {
	private_endpoint
} else := denial(403, "access_denied", sprintf("The workload %s is not listed in this endpoint's workloads", [input.principal.spiffeId])) if {
	input.principal.method == "mtls"
	is_string(input.principal.spiffeId)
} else := denial(403, "access_denied", "Authentication is required for this endpoint")

denial(status, code, description) := {
	"allow": false,
	"status": status,
	"error": code,
	"error_description": description,
}

# --- per-call access ---------------------------------------------------------------

# A call that names an item needs the grant of that item: tools/call of T → tools:T,
# prompts/get of P → prompts:P, resources/read of U → resources:U; a subscription to U is a
# read of it (resources/subscribe, resources/unsubscribe, each URI of subscriptions/listen);
# a completion is a call on the item its ref names (completion/complete with ref/prompt P →
# prompts:P, with ref/resource of a URI template T → resources:T, matched as a template:
# grants.rego). A method the service does not know that carries params.name, params.uri or
# params.ref names something the policy cannot tell: only "*" allows it. Other methods need
# endpoint access only.
named_methods := {
	"tools/call": {"kind": "tools", "field": "name"},
	"prompts/get": {"kind": "prompts", "field": "name"},
	"resources/read": {"kind": "resources", "field": "uri"},
	"resources/subscribe": {"kind": "resources", "field": "uri"},
	"resources/unsubscribe": {"kind": "resources", "field": "uri"},
}

# The grants a call needs, in order: {"kind", "target"}, "template": true for a URI template.
# A listed template (visible.rego) stands for resources/read with "template": true.
call_needs(c) := [need] if {
	named := named_methods[c.method]
	is_string(c[named.field])
	need := object.union({"kind": named.kind, "target": c[named.field]}, template_mark(c))
} else := [need] if {
	c.method == "completion/complete"
	need := ref_need(c.ref)
} else := [{"kind": "resources", "target": uri} | some uri in c.resourceSubscriptions] if {
	c.method == "subscriptions/listen"
	is_array(c.resourceSubscriptions)
} else := [{"kind": "*", "target": c.method}] if {
	c.unknownTarget == true
} else := []

template_mark(c) := {"template": true} if c.template == true

else := {}

ref_need(ref) := {"kind": "prompts", "target": ref.name} if {
	ref.type == "ref/prompt"
	is_string(ref.name)
} else := {"kind": "resources", "target": ref.uri, "template": true} if {
	ref.type == "ref/resource"
	is_string(ref.uri)
}

# A call that names an item but not with a string: never granted, whatever the grants (the
# service already refuses such requests; deny by default holds inside the policy too).
missing_target(c) if {
	named := named_methods[c.method]
	not is_string(object.get(c, named.field, null))
}

missing_target(c) if {
	c.method == "completion/complete"
	not ref_need(object.get(c, "ref", null))
}

missing_target(c) if {
	c.method == "subscriptions/listen"
	subscriptions := object.get(c, "resourceSubscriptions", [])
	not every_string(subscriptions)
}

every_string(xs) if {
	is_array(xs)
	every x in xs {
		is_string(x)
	}
}

target_field := {
	"tools/call": "name",
	"prompts/get": "name",
	"resources/read": "uri",
	"resources/subscribe": "uri",
	"resources/unsubscribe": "uri",
	"completion/complete": "ref",
	"subscriptions/listen": "notifications.resourceSubscriptions",
}

missing_targets contains i if {
	some i, c in input.mcp.calls
	missing_target(c)
}

denied_calls contains i if some i in missing_targets

denied_calls contains i if {
	some i, c in input.mcp.calls
	some need in call_needs(c)
	not granted(need)
}

missing_target_denial := denial(
	403, "access_denied",
	sprintf("A %s call must name its target (params.%s); it is denied", [c.method, target_field[c.method]]),
) if {
	c := input.mcp.calls[min(missing_targets)]
}

# Only "*" grants what the service cannot name; templates are matched as templates.
granted(need) if {
	need.kind == "*"
	"*" in grants
}

granted(need) if {
	need.kind != "*"
	not need.template
	some g in grants
	grant_matches(g, need.kind, need.target)
}

granted(need) if {
	need.kind != "*"
	need.template == true
	some g in grants
	grant_matches_template(g, need.kind, need.target)
}

# The grant a need asks for, as the denial and the step-up challenge name it: "tools:delete_file", or "*".
need_scope(need) := "*" if need.kind == "*"

else := sprintf("%s:%s", [need.kind, need.target])

# The needed grants of the denied calls, e.g. "tools:delete_file".
denied_scopes contains need_scope(need) if {
	some i in denied_calls
	some need in call_needs(input.mcp.calls[i])
	not granted(need)
}

first_denied := [need |
	some need in call_needs(input.mcp.calls[min(denied_calls)])
	not granted(need)
][0]

call_denial_key := denial(
	403, "access_denied",
	sprintf("This API key is not granted %s", [need_scope(first_denied)]),
)

call_denial_workload := denial(
	403, "access_denied",
	sprintf("This workload is not granted %s", [need_scope(first_denied)]),
)

call_denial_anonymous := denial(
	403, "access_denied",
	sprintf("Anonymous access to this endpoint is not granted %s", [need_scope(first_denied)]),
)

call_denial_token := object.union(
	denial(403, "insufficient_scope", sprintf("The token lacks the scope %s", [need_scope(first_denied)])),
	{"headers": {"WWW-Authenticate": step_up_challenge}},
)

# RFC 6750 step-up challenge. Only scope tokens that are valid RFC 6749 NQCHAR strings are
# echoed, so a crafted tool name can never break out of the quoted header value.
step_up_challenge := concat(", ", array.concat(
	["Bearer error=\"insufficient_scope\""],
	array.concat(scope_param, metadata_param),
))

safe_scopes := sort([s | some s in denied_scopes; regex.match(`^[\x21\x23-\x5B\x5D-\x7E]+$`, s)])

scope_param := [sprintf("scope=\"%s\"", [concat(" ", safe_scopes)])] if count(safe_scopes) > 0

else := []

metadata_param := [sprintf("resource_metadata=\"%s\"", [input.endpoint.resource_metadata])] if {
	is_string(input.endpoint.resource_metadata)
} else := []

# --- approval ----------------------------------------------------------------------

# A call the policy would allow can still need a person's approval: the endpoint's
# data.approvals rules name tools (globs), the approvers' group and why (docs/approvals.md).
# The first rule that matches the first held call decides.
approval_rules := object.get(input, ["endpoint", "data", "approvals"], [])

held_rules := [rule |
	some c in input.mcp.calls
	c.method == "tools/call"
	is_string(c.name)
	some rule in approval_rules
	some pattern in object.get(rule, "tools", [])
	glob_matches(pattern, c.name)
]

approval_decision := {
	"allow": false,
	"approval": {
		"reason": object.get(rule, "reason", "This call needs a person's approval."),
		"group": rule.group,
		"rule": object.get(rule, "name", "approval"),
		"uses": object.get(rule, "uses", 1),
		"window_seconds": object.get(rule, "windowSeconds", null),
	},
} if rule := held_rules[0]
