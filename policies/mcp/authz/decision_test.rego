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
	every method in ["tools/call", "prompts/get", "resources/read", "resources/subscribe", "completion/complete"] {
		d := authz.decision with input as {
			"endpoint": {"name": "e", "auth": {"apiKey": true, "oauth": false}},
			"principal": owner_key,
			"mcp": {"calls": [{"method": method}]},
		}
		d.allow == false
		d.status == 403
	}
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

test_an_item_call_without_a_usable_target_is_denied_even_with_every_grant if {
	every call in [
		{"method": "completion/complete", "ref": {"type": "ref/tool", "name": "a"}},
		{"method": "completion/complete", "ref": {"type": "ref/prompt", "uri": "a"}},
		{"method": "completion/complete", "ref": "ref/prompt:a"},
		{"method": "resources/subscribe", "uri": 7},
		{"method": "resources/unsubscribe"},
		{"method": "subscriptions/listen", "resourceSubscriptions": ["file:///a", 7]},
		{"method": "subscriptions/listen", "resourceSubscriptions": "file:///a"},
	] {
		d := authz.decision with input as {
			"endpoint": {"name": "e", "auth": {"apiKey": true, "oauth": false}},
			"principal": owner_key,
			"mcp": {"calls": [call]},
		}
		d.allow == false
		startswith(d.error_description, sprintf("A %s call must name its target", [call.method]))
	}
}

test_templates_are_granted_only_by_a_star_that_covers_each_expression if {
	authz.grant_matches_template("resources:file:///docs/*", "resources", "file:///docs/{name}")
	authz.grant_matches_template("resources:*", "resources", "file:///{a}/{b}")
	authz.grant_matches_template("resources:file:///*.md", "resources", "file:///{name}.md")
	authz.grant_matches_template("*", "resources", "file:///{a")
	not authz.grant_matches_template("resources:file:///docs/{name}", "resources", "file:///docs/{name}")
	not authz.grant_matches_template("resources:file:///*me}", "resources", "file:///{name}")
	not authz.grant_matches_template("resources:file:///*a*", "resources", "file:///{a}")
	not authz.grant_matches_template("resources:file:///*", "resources", "file:///{a")
	not authz.grant_matches_template("resources:file:///*", "resources", "file:///a}")
	not authz.grant_matches_template("prompts:*", "resources", "file:///{a}")
	not authz.grant_matches_template("resources:file:///*", "resources", 7)
}

approval_endpoint := {
	"name": "e",
	"auth": {"apiKey": true, "oauth": false},
	"data": {"approvals": [{"name": "deletes", "tools": ["delete_*"], "group": "ops", "reason": "Deleting needs a second person", "uses": 2, "windowSeconds": 300}]},
}

test_a_tool_named_by_an_approval_rule_is_held_for_the_group if {
	d := authz.decision with input as {
		"endpoint": approval_endpoint,
		"principal": owner_key,
		"mcp": {"calls": [{"method": "tools/call", "name": "delete_file"}]},
	}
	d.allow == false
	d.approval == {"reason": "Deleting needs a second person", "group": "ops", "rule": "deletes", "uses": 2, "window_seconds": 300}
}

test_a_tool_no_approval_rule_names_is_allowed if {
	d := authz.decision with input as {
		"endpoint": approval_endpoint,
		"principal": owner_key,
		"mcp": {"calls": [{"method": "tools/call", "name": "read_file"}]},
	}
	d == {"allow": true}
}

test_a_call_the_grants_deny_is_denied_not_held if {
	d := authz.decision with input as {
		"endpoint": approval_endpoint,
		"principal": object.union(owner_key, {"permissions": ["tools:read_*"]}),
		"mcp": {"calls": [{"method": "tools/call", "name": "delete_file"}]},
	}
	d.allow == false
	not d.approval
	d.error == "access_denied"
}
