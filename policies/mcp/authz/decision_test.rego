package mcp.authz_test

import data.mcp.authz

owner_key := {"authenticated": true, "method": "api_key", "id": "k1", "userId": "alice", "permissions": ["*"], "scopes": [], "roles": []}

test_an_unknown_principal_method_has_no_grants if {
	d := authz.decision with input as {
		"endpoint": {"name": "e", "auth": {"apiKey": true, "oauth": false}},
		"principal": {"authenticated": true, "method": "kerberos", "id": "x", "permissions": ["*"], "scopes": ["*"]},
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

test_a_named_call_without_its_target_is_denied_even_with_every_grant if {
	some method in ["tools/call", "prompts/get", "resources/read"]
	d := authz.decision with input as {
		"endpoint": {"name": "e", "auth": {"apiKey": true, "oauth": false}},
		"principal": owner_key,
		"mcp": {"calls": [{"method": method}]},
	}
	d.allow == false
	d.status == 403
}

test_a_named_call_with_a_non_string_target_is_denied if {
	d := authz.decision with input as {
		"endpoint": {"name": "e", "auth": {"apiKey": true, "oauth": false}},
		"principal": owner_key,
		"mcp": {"calls": [{"method": "tools/list"}, {"method": "tools/call", "name": 7}]},
	}
	d.allow == false
	d.error_description == "A tools/call call must name its target (params.name); it is denied"
}

test_a_named_call_with_its_target_and_a_star_grant_is_allowed if {
	d := authz.decision with input as {
		"endpoint": {"name": "e", "auth": {"apiKey": true, "oauth": false}},
		"principal": owner_key,
		"mcp": {"calls": [{"method": "resources/read", "uri": "file:///x"}]},
	}
	d.allow == true
}
