package mcp.authz_test

import data.mcp.authz

mesh_endpoint := {
	"name": "mesh",
	"auth": {"apiKey": false, "oauth": false, "mtls": true},
	"workloads": {"spiffe://cluster.local/ns/agents/*": ["tools:*"]},
}

test_a_prefix_entry_names_ids_below_it_only if {
	authz.spiffe_pattern_matches("spiffe://cluster.local/ns/agents/*", "spiffe://cluster.local/ns/agents/sa/a")
	not authz.spiffe_pattern_matches("spiffe://cluster.local/ns/agents/*", "spiffe://cluster.local/ns/agents")
	not authz.spiffe_pattern_matches("spiffe://cluster.local/ns/agents/*", "spiffe://cluster.local/ns/agents/")
	not authz.spiffe_pattern_matches("spiffe://cluster.local/ns/agents/*", "spiffe://cluster.local/ns/agentsx/sa/a")
}

test_a_star_elsewhere_than_the_end_is_literal if {
	not authz.spiffe_pattern_matches("spiffe://*/ns/agents/sa/a", "spiffe://evil/ns/agents/sa/a")
	not authz.spiffe_pattern_matches("spiffe://cluster.local/ns/*/sa/a", "spiffe://cluster.local/ns/x/sa/a")
}

test_an_exact_entry_is_compared_exactly if {
	authz.spiffe_pattern_matches("spiffe://cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/a/sa/b")
	not authz.spiffe_pattern_matches("spiffe://cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/a/sa/B")
}

test_a_workload_principal_that_is_not_authenticated_is_not_listed if {
	d := authz.decision with input as {
		"endpoint": mesh_endpoint,
		"principal": {"authenticated": false, "method": "mtls", "id": "x", "spiffeId": "spiffe://cluster.local/ns/agents/sa/a"},
		"mcp": {"calls": []},
	}
	d.allow == false
}

test_a_workload_principal_without_a_spiffe_id_is_denied if {
	d := authz.decision with input as {
		"endpoint": mesh_endpoint,
		"principal": {"authenticated": true, "method": "mtls", "id": "x"},
		"mcp": {"calls": []},
	}
	d.allow == false
	d.error_description == "Authentication is required for this endpoint"
}

test_an_endpoint_without_workloads_admits_none if {
	d := authz.decision with input as {
		"endpoint": {"name": "e", "auth": {"apiKey": false, "oauth": false, "mtls": true}},
		"principal": {"authenticated": true, "method": "mtls", "id": "s", "spiffeId": "spiffe://cluster.local/ns/a/sa/b"},
		"mcp": {"calls": []},
	}
	d.allow == false
	d.status == 403
}

test_a_listed_workload_gets_the_entry_grants if {
	d := authz.decision with input as {
		"endpoint": mesh_endpoint,
		"principal": {"authenticated": true, "method": "mtls", "id": "s", "spiffeId": "spiffe://cluster.local/ns/agents/sa/a"},
		"mcp": {"calls": [{"method": "tools/call", "name": "anything"}]},
	}
	d.allow == true
}
