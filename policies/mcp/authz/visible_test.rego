# mcp/authz/visible against mcp/authz/decision: an item is visible exactly when the call it
# stands for, made alone, is allowed, or refused only for its arguments (a list names a tool,
# not the arguments it will be called with). Runs every shared case (policies/cases) both ways.
package mcp.authz_test

import data.mcp.authz

list_input(c, calls) := {
	"endpoint": c.endpoint,
	"principal": c.principal,
	"mcp": {"present": true, "batch": false, "calls": [{"method": "tools/list", "kind": "request"}]},
	"list": {"calls": calls},
}

single_input(c, call) := {
	"endpoint": c.endpoint,
	"principal": c.principal,
	"mcp": {"present": true, "batch": false, "calls": [call]},
}

# Every call of every shared case, listed together in one input: each item's visibility is
# the decision on that call alone.
visibility_mismatches contains sprintf("%s: %s: call %d: visible %v, decision allows %v", [group, c.name, i, shown, allowed]) if {
	some group, cases in data.cases
	some c in cases
	count(c.calls) > 0
	seen := authz.visible with input as list_input(c, c.calls)
	some i, call in c.calls
	shown := seen[i]
	d := authz.decision with input as single_input(c, call)
	allowed := callable(d)
	shown != allowed
}

callable(d) := true if {
	d.allow == true
} else := true if {
	d.error == "argument_denied"
} else := false

test_visible_agrees_with_decision_on_every_shared_case if {
	count(visibility_mismatches) == 0
}

# The cases must exercise both answers, or the agreement above proves little.
test_the_shared_cases_show_and_hide_items if {
	answers := {v |
		some cases in data.cases
		some c in cases
		count(c.calls) > 0
		some v in authz.visible with input as list_input(c, c.calls)
	}
	answers == {true, false}
}

alice := {"authenticated": true, "method": "api_key", "id": "k", "userId": "alice", "permissions": ["tools:search", "prompts:summarize", "resources:file:///docs/*"], "scopes": [], "roles": []}

public_key := {"authenticated": true, "method": "api_key", "id": "p", "permissions": ["*"], "scopes": [], "roles": []}

endpoint := {"name": "e", "auth": {"apiKey": true, "oauth": false}}

items := [
	{"method": "tools/call", "kind": "request", "name": "search"},
	{"method": "tools/call", "kind": "request", "name": "delete_repo"},
	{"method": "prompts/get", "kind": "request", "name": "summarize"},
	{"method": "prompts/get", "kind": "request", "name": "other"},
	{"method": "resources/read", "kind": "request", "uri": "file:///docs/a.md"},
	{"method": "resources/read", "kind": "request", "uri": "file:///etc/passwd"},
	{"method": "resources/read", "kind": "request", "uri": "file:///docs/{name}", "template": true},
]

test_one_answer_per_item_in_order if {
	v := authz.visible with input as {"endpoint": endpoint, "principal": alice, "list": {"calls": items}}
	v == [true, false, true, false, true, false, true]
}

test_no_items_no_answers if {
	authz.visible with input as {"endpoint": endpoint, "principal": alice, "list": {"calls": []}} == []
	authz.visible with input as {"endpoint": endpoint, "principal": alice} == []
}

test_without_endpoint_access_nothing_is_visible if {
	v := authz.visible with input as {"endpoint": object.union(endpoint, {"owner": "bob"}), "principal": alice, "list": {"calls": items}}
	v == [false, false, false, false, false, false, false]
	w := authz.visible with input as {"endpoint": object.union(endpoint, {"owner": "alice"}), "principal": public_key, "list": {"calls": items}}
	w == [false, false, false, false, false, false, false]
}

test_a_star_grant_shows_everything_on_an_endpoint_the_caller_reaches if {
	v := authz.visible with input as {"endpoint": endpoint, "principal": public_key, "list": {"calls": items}}
	v == [true, true, true, true, true, true, true]
}

test_an_item_without_its_target_or_with_a_non_string_one_is_hidden_even_with_star if {
	v := authz.visible with input as {"endpoint": endpoint, "principal": public_key, "list": {"calls": [
		{"method": "tools/call", "kind": "request"},
		{"method": "resources/read", "kind": "request", "uri": 7},
	]}}
	v == [false, false]
}

test_a_call_that_names_nothing_needs_endpoint_access_only if {
	v := authz.visible with input as {"endpoint": endpoint, "principal": alice, "list": {"calls": [{"method": "ping", "kind": "request"}]}}
	v == [true]
}

test_a_token_sees_what_its_scopes_grant if {
	token := {"authenticated": true, "method": "oauth", "id": "t", "userId": "u", "permissions": ["*"], "scopes": ["tools:read_*"], "roles": []}
	v := authz.visible with input as {"endpoint": {"name": "e", "auth": {"apiKey": false, "oauth": true}}, "principal": token, "list": {"calls": [
		{"method": "tools/call", "kind": "request", "name": "read_file"},
		{"method": "tools/call", "kind": "request", "name": "search"},
	]}}
	v == [true, false]
}

# Argument constraints say how a tool may be called, not whether: a tool bound by a rule is
# listed to the callers granted it (their calls must still pass the rule), and to no one else.
test_a_tool_under_an_argument_rule_is_visible_to_whoever_is_granted_it if {
	constrained := object.union(endpoint, {"data": {"arguments": [{"tools": ["search"], "arguments": {"q": {"maxLength": 3}}}]}})
	v := authz.visible with input as {"endpoint": constrained, "principal": alice, "list": {"calls": [items[0], items[1]]}}
	v == [true, false]
	d := authz.decision with input as {"endpoint": constrained, "principal": alice, "mcp": {"present": true, "batch": false, "calls": [items[0]]}}
	d.error == "argument_denied"
}

# A listed item's own handlers are callable exactly when the item is visible: completion of a
# listed prompt's arguments (ref/prompt), of a listed template's (ref/resource), and a
# subscription to a listed resource.
handlers_of(item) := [{"method": "completion/complete", "kind": "request", "ref": {"type": "ref/prompt", "name": item.name}}] if {
	item.method == "prompts/get"
} else := [{"method": "completion/complete", "kind": "request", "ref": {"type": "ref/resource", "uri": item.uri}}] if {
	item.template == true
} else := [
	{"method": "resources/subscribe", "kind": "request", "uri": item.uri},
	{"method": "resources/unsubscribe", "kind": "request", "uri": item.uri},
	{"method": "subscriptions/listen", "kind": "request", "resourceSubscriptions": [item.uri]},
] if {
	item.method == "resources/read"
} else := []

handler_mismatches contains sprintf("%v: visible %v, %s allowed %v", [item, shown, h.method, allowed]) if {
	some p in [alice, public_key, {"authenticated": true, "method": "api_key", "id": "n", "permissions": ["resources:file:///docs/{name}", "prompts:summ*"], "scopes": [], "roles": []}]
	seen := authz.visible with input as {"endpoint": endpoint, "principal": p, "list": {"calls": items}}
	some i, item in items
	shown := seen[i]
	some h in handlers_of(item)
	d := authz.decision with input as {"endpoint": endpoint, "principal": p, "mcp": {"present": true, "batch": false, "calls": [h]}}
	allowed := d.allow
	shown != allowed
}

test_a_listed_items_own_handlers_are_callable_exactly_when_it_is_visible if {
	count(handler_mismatches) == 0
}
