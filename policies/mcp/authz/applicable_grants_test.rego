package mcp.authz_test

import data.mcp.authz

# The bundle declares that the policy reads grants only to match the items a request names, so
# the service gives it only the grants that can apply (docs/policies.md "Grants in the input").
# These tests hold the policy to that: grants that name other items never change a decision.
test_the_bundle_declares_it_reads_only_the_applicable_grants if {
	data.mcp_authz.input.grants == "applicable"
}

unrelated := [
	"tools:other", "tools:x*", "tools:*_other", "prompts:search", "resources:search",
	"resources:file:///etc/*", "openid", "tools", "x:search",
]

grant_key(grants) := {"authenticated": true, "method": "api_key", "id": "k", "userId": "alice", "permissions": grants, "scopes": [], "roles": []}

grant_token(grants) := {"authenticated": true, "method": "oauth", "id": "t", "userId": "alice", "permissions": [], "scopes": grants, "roles": []}

decided(principal, calls, data_) := d if {
	d := authz.decision with input as {
		"endpoint": {"name": "e", "auth": {"apiKey": true, "oauth": true}, "data": data_, "resource_metadata": "https://m/.well-known/oauth-protected-resource/e"},
		"principal": principal,
		"mcp": {"calls": calls},
	}
}

test_grants_for_other_items_never_change_a_decision if {
	every grants in [[], ["tools:search"], ["tools:sea*"], ["*"], ["tools:read_*", "prompts:*"]] {
		every calls in [
			[{"method": "tools/call", "name": "search"}],
			[{"method": "tools/call", "name": "search"}, {"method": "tools/call", "name": "delete"}],
			[{"method": "prompts/get", "name": "summary"}],
			[{"method": "resources/read", "uri": "file:///docs/a.md"}],
			[{"method": "x/frob", "name": "search", "unknownTarget": true}],
			[{"method": "tools/list"}],
		] {
			every who in ["key", "token"] {
				principal_of(who, grants) != principal_of(who, array.concat(grants, unrelated))
				decided(principal_of(who, grants), calls, {}) == decided(principal_of(who, array.concat(grants, unrelated)), calls, {})
			}
		}
	}
}

principal_of("key", grants) := grant_key(grants)

principal_of("token", grants) := grant_token(grants)

# An argument rule's exempt grant matters by its exact string, whichever item it names: the
# service keeps the endpoint's exempt grants in the input for that reason.
test_an_exempt_grant_decides_though_it_names_no_item_of_the_request if {
	rules := {"arguments": [{
		"tools": ["http_get"],
		"arguments": {"url": {"url": {"hosts": ["api.example.com"]}}},
		"exemptGrants": ["tools:http_get:any-host"],
	}]}
	calls := [{"method": "tools/call", "name": "http_get", "arguments": {"url": "https://x.example/"}, "argumentViews": {"url": {"url": {"ok": true, "scheme": "https", "host": "x.example", "hostType": "domain", "port": 443}}}}]
	decided(grant_key(["tools:http_get"]), calls, rules).error == "argument_denied"
	decided(grant_key(["tools:http_get", "tools:http_get:any-host"]), calls, rules).allow == true
}
