# Runs the shared decision cases (policies/cases/*.json, loaded as data.cases) against the
# Rego. test/policy-parity.test.ts runs the same cases against the compiled WASM through the
# real server; both must agree.
package mcp.authz_test

import data.mcp.authz

case_input(c) := {
	"endpoint": c.endpoint,
	"principal": c.principal,
	"mcp": {"present": count(c.calls) > 0, "batch": count(c.calls) > 1, "calls": c.calls},
}

# Every key the case expects must be in the decision with the same value.
mismatches contains sprintf("%s: %s: got %v, want %v", [group, c.name, got, want]) if {
	some group, cases in data.cases
	some c in cases
	d := authz.decision with input as case_input(c)
	some k, want in c.expect
	got := object.get(d, k, null)
	got != want
}

test_shared_cases_agree_with_the_policy if {
	count(mismatches) == 0
}

test_the_shared_cases_are_loaded if {
	count([c | some cases in data.cases; some c in cases]) >= 40
}
