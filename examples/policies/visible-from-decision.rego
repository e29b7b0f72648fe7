# A visibility rule for a policy of your own (docs/ext_proc.md): each listed item is shown
# exactly when your `decision` allows the call it stands for, made alone — by construction,
# whatever `decision` says. Put this file beside your decision rule (package mcp.authz, or
# yours with policy.visibleEntrypoint set to match). It evaluates `decision` once per item
# inside one evaluation, so it costs more per item than a rule written for your grants,
# like the shipped policies/mcp/authz/visible.rego.
package mcp.authz

visible := [v | some i, _ in input.list.calls; v := i in callable_items]

callable_items contains i if {
	some i, c in input.list.calls
	d := decision with input.mcp.calls as [c] with input.mcp.batch as false
	shown(d)
}

shown(d) if d.allow == true

# A listed item carries no arguments: a call refused only for them (the shipped policy's
# argument rules) is still a tool the caller may use. Name your own argument deny here.
shown(d) if d.error == "argument_denied"
