# Workload identities (mTLS peers, principal.method "mtls"; docs/workload-identity.md). An
# endpoint admits the workloads its `workloads` map names — an exact SPIFFE ID, or
# "<SPIFFE ID prefix>/*" for every ID below that prefix — and grants a workload the union of
# the grants of every entry that names it. A workload no entry names has no access at all:
# in a mesh every caller has an identity (an ingress gateway's too), so being one is not enough.
package mcp.authz

workload_entries := object.get(input.endpoint, "workloads", {})

# The entries that name the calling workload.
workload_matches contains pattern if {
	input.principal.method == "mtls"
	input.principal.authenticated == true
	id := input.principal.spiffeId
	is_string(id)
	some pattern, _ in workload_entries
	spiffe_pattern_matches(pattern, id)
}

spiffe_pattern_matches(pattern, id) if pattern == id

# "spiffe://cluster.local/ns/agents/*" names "spiffe://cluster.local/ns/agents/sa/x", not
# "spiffe://cluster.local/ns/agents" itself nor "spiffe://cluster.local/ns/agents-x/…".
spiffe_pattern_matches(pattern, id) if {
	endswith(pattern, "/*")
	prefix := trim_suffix(pattern, "*")
	startswith(id, prefix)
	count(id) > count(prefix)
}

workload_listed if count(workload_matches) > 0

workload_grants := [g | some pattern in workload_matches; some g in workload_entries[pattern]]
