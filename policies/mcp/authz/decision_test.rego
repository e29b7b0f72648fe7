package mcp.authz_test

import data.mcp.authz

owner_key := {"authenticated": true, "method": "api_key", "id": "k1", "userId": "alice", "permissions": ["*"], "scopes": [], "roles": []}

test_an_unknown_principal_method_has_no_grants if {
	d := authz.decision with input as {
		"endpoint": {"name": "e", "auth": {"apiKey": true, "oauth": false}},
		"principal": {"authenticated": true, "method": "mtls", "id": "x", "permissions": ["*"], "scopes": ["*"]},
		"mcp": {"calls": [{"method": "tools/call", "name": "a"}]},
	}
	d.allow == false
	d.status == 403
}

test_an_empty_input_is_denied if {
	d := authz.decision with input as {}
	d.allow == false
	d.status == 403
}

test_a_challenge_without_resource_metadata_omits_it if {
	d := authz.decision with input as {
		"endpoint": {"name": "e", "auth": {"apiKey": false, "oauth": true}},
		"principal": {"authenticated": true, "method": "oauth", "id": "t", "scopes": []},
		"mcp": {"calls": [{"method": "tools/call", "name": "a"}]},
	}
	d.headers["WWW-Authenticate"] == `Bearer error="insufficient_scope", scope="tools:a"`
}

test_a_call_without_a_name_is_never_granted_by_a_glob if {
	not authz.grant_matches("tools:*", "tools", null)
}

test_star_alone_grants_everything if {
	authz.grant_matches("*", "resources", "any://thing")
}

test_the_default_decision_denies if {
	d := authz.decision with input as {"principal": owner_key, "endpoint": {"owner": "bob"}}
		with authz.denial as never
	d == {"allow": false, "status": 403, "error": "access_denied", "error_description": "Access denied by policy."}
}

never(_, _, _) := x if {
	x := 1
	x == 2
}
