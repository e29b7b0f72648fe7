# Which items of a list response the caller may see (entrypoint mcp/authz/visible), decided
# once for the whole list. The input is the list request's own input plus `list.calls`: for
# each listed item, in order, the call it stands for — tools/call of a tool, prompts/get of
# a prompt, resources/read of a resource URI (normalized) or of a URI template (marked
# "template": true, and granted as a template: grants.rego). The answer is
# an array of booleans, one per item: true exactly when `decision` would allow that call
# made alone, by the same caller, on the same endpoint, with arguments its argument rules
# accept (they say how a tool may be called, not whether it is listed). visible_test.rego
# and the parity tests hold the two rules together; docs/ext_proc.md shows a form derived
# from `decision` itself for policies of your own.
package mcp.authz

visible := [v | some c in input.list.calls; v := callable(c)]

# The conditions `decision` allows a single call on: endpoint access, and for a call that
# names an item its target and a grant for every item it names (decision.rego call_needs).
callable(c) := true if {
	endpoint_access
	not missing_target(c)
	every need in call_needs(c) {
		granted(need)
	}
} else := false
