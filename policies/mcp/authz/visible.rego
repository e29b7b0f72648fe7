# Which items of a list response the caller may see (entrypoint mcp/authz/visible), decided
# once for the whole list. The input is the list request's own input plus `list.calls`: for
# each listed item, in order, the call it stands for — tools/call of a tool, prompts/get of
# a prompt, resources/read of a resource URI (normalized) or of a URI template. The answer is
# an array of booleans, one per item: true exactly when `decision` would allow that call
# made alone, by the same caller, on the same endpoint, with arguments its argument rules
# accept (they say how a tool may be called, not whether it is listed). visible_test.rego
# and the parity tests hold the two rules together; docs/ext_proc.md shows a form derived
# from `decision` itself for policies of your own.
package mcp.authz

visible := [v | some c in input.list.calls; v := callable(c)]

# The conditions `decision` allows a single call on: endpoint access, and for a named call
# its target and a grant that matches it.
callable(c) := call_granted(c) if {
	endpoint_access
	named_methods[c.method]
} else := true if {
	endpoint_access
} else := false

call_granted(c) if {
	named := named_methods[c.method]
	target := c[named.field]
	is_string(target)
	granted({"kind": named.kind, "target": target})
} else := false
