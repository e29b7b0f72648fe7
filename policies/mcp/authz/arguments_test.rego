# Unit tests of the argument constraints (arguments.rego) for what the shared cases in
# policies/cases/arguments.json cannot send through the service: inputs the service refuses
# before the policy, views it would never omit, and rules its config schema would refuse.
package mcp.authz_test

import data.mcp.authz

args_key := {"authenticated": true, "method": "api_key", "id": "k", "userId": "u", "permissions": ["*"], "scopes": [], "roles": []}

args_input(rules, calls) := {
	"endpoint": {"name": "e", "auth": {"apiKey": true, "oauth": false}, "data": {"arguments": rules}},
	"principal": args_key,
	"mcp": {"calls": calls},
}

tool_call(name, arguments) := {"method": "tools/call", "kind": "request", "name": name, "arguments": arguments}

with_views(c, views) := object.union(c, {"argumentViews": views})

clean_path := {"path": {"ok": true}}

refusal(rules, c) := d if {
	d := authz.decision with input as args_input(rules, [c])
	d.allow == false
}

test_arguments_that_are_not_an_object_are_refused if {
	d := refusal([{"tools": ["t"], "arguments": {"a": {"presence": "optional"}}}], tool_call("t", ["x"]))
	d.error == "argument_denied"
	d.denied_argument.constraint == "arguments"
}

test_a_call_without_arguments_passes_a_rule_of_optional_arguments if {
	d := authz.decision with input as args_input(
		[{"tools": ["t"], "arguments": {"a": {"presence": "optional", "type": "string"}}}],
		[{"method": "tools/call", "kind": "request", "name": "t"}],
	)
	d.allow == true
}

test_type_string_and_array if {
	rules := [{"tools": ["t"], "arguments": {"s": {"type": "string"}, "a": {"type": "array"}}}]
	allowed := authz.decision with input as args_input(rules, [tool_call("t", {"s": "x", "a": []})])
	allowed.allow == true
	d := refusal(rules, tool_call("t", {"s": 1, "a": {}}))
	d.denied_argument.argument == "a"
	d.error_description == `Argument "a" of tool t is refused: it must be of type array (type).`
}

test_a_path_under_the_root_prefix_is_any_path_read_as_written if {
	rules := [{"tools": ["t"], "arguments": {"p": {"path": {"under": ["/"]}}}}]
	every p in ["/", "/etc/passwd", "/a/b/"] {
		d := authz.decision with input as args_input(rules, [with_views(tool_call("t", {"p": p}), {"p": clean_path})])
		d.allow == true
	}
}

test_a_path_argument_without_its_view_is_refused if {
	rules := [{"tools": ["t"], "arguments": {"p": {"path": {"under": ["/docs"]}}}}]
	d := refusal(rules, tool_call("t", {"p": "/docs/a"}))
	d.error_description == `Argument "p" of tool t is refused: it has no path view (the service computes one for every argument a path constraint names) (path).`
	d2 := refusal(rules, with_views(tool_call("t", {"p": "/docs/a"}), {"p": {"url": {"ok": true}}}))
	d2.denied_argument.constraint == "path"
}

test_a_url_argument_without_its_view_is_refused if {
	rules := [{"tools": ["t"], "arguments": {"u": {"url": {"hosts": ["api.example.com"]}}}}]
	d := refusal(rules, tool_call("t", {"u": "https://api.example.com/"}))
	d.error_description == `Argument "u" of tool t is refused: it has no URL view (the service computes one for every argument a url constraint names) (url).`
}

test_a_url_view_missing_a_field_is_refused if {
	rules := [{"tools": ["t"], "arguments": {"u": {"url": {"hosts": ["api.example.com"]}}}}]
	c := with_views(tool_call("t", {"u": "https://api.example.com/"}), {"u": {"url": {"ok": true, "host": "api.example.com", "hostType": "domain", "port": 443}}})
	d := refusal(rules, c)
	d.denied_argument.constraint == "url"
}

test_a_url_rule_without_hosts_allows_no_host if {
	rules := [{"tools": ["t"], "arguments": {"u": {"url": {}}}}]
	view := {"ok": true, "scheme": "https", "host": "api.example.com", "hostType": "domain", "port": 443}
	d := refusal(rules, with_views(tool_call("t", {"u": "https://api.example.com/"}), {"u": {"url": view}}))
	endswith(d.error_description, "it must name a host the endpoint allows (url).")
}

test_an_ipv6_address_in_an_allowed_cidr_is_allowed if {
	rules := [{"tools": ["t"], "arguments": {"u": {"url": {"hosts": ["2001:db8::/32"]}}}}]
	view := {"ok": true, "scheme": "https", "host": "[2001:db8::5]", "hostType": "ipv6", "ip": "2001:db8::5", "port": 443}
	d := authz.decision with input as args_input(rules, [with_views(tool_call("t", {"u": "https://[2001:db8::5]/"}), {"u": {"url": view}})])
	d.allow == true
}

sql_select_view := {
	"ok": true, "statements": ["SelectStmt"], "into": false, "locking": [], "functions": [],
	"operators": [], "types": [], "nodes": ["A_Const", "ResTarget", "SelectStmt"],
}

test_an_unknown_sql_guard_refuses_every_value if {
	every guard in ["read-mostly", {"dialect": "db2"}, {"dialects": ["postgresql"]}, 7] {
		rules := [{"tools": ["t"], "arguments": {"q": {"sql": guard}}}]
		d := refusal(rules, with_views(tool_call("t", {"q": "SELECT 1"}), {"q": {"sql": sql_select_view}}))
		d.error_description == `Argument "q" of tool t is refused: it names an SQL guard this policy does not know (sql).`
	}
}

test_an_sql_argument_without_its_view_is_refused if {
	rules := [{"tools": ["t"], "arguments": {"q": {"sql": {"dialect": "postgresql"}}}}]
	views := [
		{},
		{"q": {"sql": {"ok": true}}},
		{"q": {"sql": {"ok": true, "words": ["select", "1"]}}},
		{"q": {"sql": object.union(sql_select_view, {"into": "no"})}},
		{"q": {"sql": object.remove(sql_select_view, ["nodes"])}},
	]
	every v in views {
		d := refusal(rules, with_views(tool_call("t", {"q": "SELECT 1"}), v))
		d.error_description == `Argument "q" of tool t is refused: it has no SQL view (the service computes one for every argument an sql constraint names) (sql).`
	}
}

test_a_postgresql_reading_is_enough_for_postgresql_but_not_for_a_dialect_without_a_parser if {
	call := with_views(tool_call("t", {"q": "SELECT 1"}), {"q": {"sql": sql_select_view}})
	allowed := authz.decision with input as args_input([{"tools": ["t"], "arguments": {"q": {"sql": {"dialect": "postgresql"}}}}], [call])
	allowed.allow == true
	every guard in ["select-only", {"dialect": "mysql"}, {"dialect": "sqlserver"}] {
		d := refusal([{"tools": ["t"], "arguments": {"q": {"sql": guard}}}], call)
		contains(d.error_description, "portable SQL subset")
	}
	portable := with_views(tool_call("t", {"q": "SELECT 1"}), {"q": {"sql": object.union(sql_select_view, {"portable": {"ok": true}})}})
	mysql := authz.decision with input as args_input([{"tools": ["t"], "arguments": {"q": {"sql": {"dialect": "mysql"}}}}], [portable])
	mysql.allow == true
}

test_an_invalid_pattern_refuses_every_value if {
	every p in ["(", "a)|(b", `\Qa`] {
		d := refusal([{"tools": ["t"], "arguments": {"a": {"pattern": p}}}], tool_call("t", {"a": "a)|(b"}))
		d.denied_argument.constraint == "pattern"
	}
}

test_an_invalid_not_pattern_refuses_every_value if {
	d := refusal([{"tools": ["t"], "arguments": {"a": {"notPattern": "("}}}], tool_call("t", {"a": "x"}))
	d.denied_argument.constraint == "notPattern"
}

test_the_denied_argument_names_the_call_and_the_constraint if {
	rules := [{"tools": ["t"], "arguments": {"paths": {"items": {"path": {"under": ["/docs"]}}}}}]
	d := authz.decision with input as args_input(rules, [
		{"method": "tools/list", "kind": "request"},
		with_views(tool_call("t", {"paths": ["/docs/a", "/etc/b"]}), {"paths": {"items": [clean_path, clean_path]}}),
	])
	d.denied_argument == {"call": 1, "method": "tools/call", "name": "t", "argument": "paths", "constraint": "items.path", "item": 1}
}

test_several_broken_constraints_report_the_first_argument_and_constraint if {
	rules := [{"tools": ["t"], "arguments": {"b": {"type": "integer", "maximum": 1}, "a": {"enum": ["x"]}}}]
	d := refusal(rules, tool_call("t", {"a": "y", "b": 2.5}))
	d.denied_argument.argument == "a"
	d2 := refusal(rules, tool_call("t", {"a": "x", "b": 2.5}))
	d2.denied_argument.constraint == "type"
}

test_a_token_scope_can_be_an_exempt_grant if {
	rules := [{"tools": ["t"], "arguments": {"a": {"presence": "forbidden"}}, "exemptGrants": ["admin:arguments"]}]
	d := authz.decision with input as {
		"endpoint": {"name": "e", "auth": {"apiKey": false, "oauth": true}, "data": {"arguments": rules}},
		"principal": {"authenticated": true, "method": "oauth", "id": "t", "scopes": ["tools:t", "admin:arguments"]},
		"mcp": {"calls": [tool_call("t", {"a": 1})]},
	}
	d.allow == true
}

test_argument_rules_bind_anonymous_callers_too if {
	d := authz.decision with input as {
		"endpoint": {"name": "e", "auth": {"apiKey": false, "oauth": false}, "data": {"arguments": [{"tools": ["*"], "arguments": {"a": {"presence": "forbidden"}}}]}},
		"principal": {"authenticated": false, "method": "anonymous", "id": "anonymous"},
		"mcp": {"calls": [tool_call("t", {"a": 1})]},
	}
	d.allow == false
	d.error == "argument_denied"
}

test_no_endpoint_means_no_argument_rules if {
	count(authz.argument_violations) == 0 with input as {"mcp": {"calls": [tool_call("t", {"a": 1})]}}
}

test_a_violation_of_a_call_the_grants_refuse_reports_the_grant if {
	d := authz.decision with input as {
		"endpoint": {"name": "e", "auth": {"apiKey": true, "oauth": false}, "data": {"arguments": [{"tools": ["t"], "arguments": {"a": {"presence": "forbidden"}}}]}},
		"principal": object.union(args_key, {"permissions": []}),
		"mcp": {"calls": [tool_call("t", {"a": 1})]},
	}
	d.error == "access_denied"
}

test_an_item_without_its_view_is_refused if {
	rules := [{"tools": ["t"], "arguments": {"paths": {"items": {"path": {"under": ["/docs"]}}}}}]
	d := refusal(rules, tool_call("t", {"paths": ["/docs/a"]}))
	d.denied_argument == {"call": 0, "method": "tools/call", "name": "t", "argument": "paths", "constraint": "items.path", "item": 0}
}

test_a_function_of_each_allowed_family_is_allowed_and_a_name_across_lines_is_not if {
	rules := [{"tools": ["t"], "arguments": {"q": {"sql": {"dialect": "postgresql"}}}}]
	every f in ["count", "row_number", "round", "lower", "date_trunc", "jsonb_build_object", "unnest", "to_tsvector", "gen_random_uuid"] {
		view := object.union(sql_select_view, {"functions": [f], "nodes": ["FuncCall", "ResTarget", "SelectStmt"]})
		d := authz.decision with input as args_input(rules, [with_views(tool_call("t", {"q": "SELECT f()"}), {"q": {"sql": view}})])
		d.allow == true
	}
	every f in ["count\nsum", "pg_read_file", "public.lower", "COUNT", ""] {
		view := object.union(sql_select_view, {"functions": [f]})
		d := refusal(rules, with_views(tool_call("t", {"q": "SELECT f()"}), {"q": {"sql": view}}))
		d.error_description == `Argument "q" of tool t is refused: it calls a function this rule does not allow (sql).`
	}
}
