# Argument constraints: rules on the arguments of tools/call and prompts/get, configured per
# endpoint in data.arguments (reference: docs/policies.md "Argument constraints"). A call that
# breaks a rule binding its caller is denied 403 argument_denied; the description names the
# tool, the argument and the constraint, never the value.
package mcp.authz

argument_rules := object.get(input.endpoint, ["data", "arguments"], [])

# The rule field that selects each constrained method's calls by name.
rule_selectors := {"tools/call": "tools", "prompts/get": "prompts"}

# [call index, rule index] of each rule that binds a call: it names the call's tool or prompt
# (globs as in grants) and the caller holds none of its exemptGrants.
binding_rules contains [i, r] if {
	some i, c in input.mcp.calls
	selector := rule_selectors[c.method]
	is_string(c.name)
	some r, rule in argument_rules
	some pattern in object.get(rule, selector, [])
	glob_matches(pattern, c.name)
	not exempt(rule)
}

# Exemption is by exact grant string: a broad grant such as "*" exempts only when listed.
exempt(rule) if {
	some g in object.get(rule, "exemptGrants", [])
	g in grants
}

# What the policy knows of one argument: whether it was sent, its value and the service's
# views of it (docs/policies.md "Argument views").
argument_of(c, name) := {"sent": true, "value": v, "views": views_of(c, name)} if {
	v := c.arguments[name]
} else := {"sent": false, "value": null, "views": views_of(c, name)}

views_of(c, name) := v if {
	v := c.argumentViews[name]
} else := null

# null reads as absent (Go and Python MCP servers read it so): it satisfies no "required".
present(arg) if {
	arg.sent
	arg.value != null
}

value_kinds := ["type", "enum", "pattern", "notPattern", "maxLength", "minimum", "maximum", "path", "url", "sql"]

# Every constraint a call breaks: [call, rule, argument, order, item, constraint, what is wrong].
# The smallest one is reported; item is the array index for items constraints, else -1.
argument_violations contains [i, r, name, 0, -1, "presence", problem] if {
	some [i, r] in binding_rules
	some name, cons in object.get(argument_rules[r], "arguments", {})
	problem := presence_problem(cons, argument_of(input.mcp.calls[i], name))
}

argument_violations contains [i, r, name, order + 1, -1, kind, concat(" ", ["it", problem])] if {
	some [i, r] in binding_rules
	some name, cons in object.get(argument_rules[r], "arguments", {})
	arg := argument_of(input.mcp.calls[i], name)
	present(arg)
	some order, kind in value_kinds
	problem := value_problem(kind, cons, arg.value, arg.views)
}

argument_violations contains [i, r, name, 20, -1, "items", "it must be an array"] if {
	some [i, r] in binding_rules
	some name, cons in object.get(argument_rules[r], "arguments", {})
	_ := cons.items
	arg := argument_of(input.mcp.calls[i], name)
	present(arg)
	not is_array(arg.value)
}

argument_violations contains [i, r, name, 21 + order, j, concat(".", ["items", kind]), text] if {
	some [i, r] in binding_rules
	some name, cons in object.get(argument_rules[r], "arguments", {})
	item := cons.items
	arg := argument_of(input.mcp.calls[i], name)
	present(arg)
	some j, el in arg.value
	some order, kind in value_kinds
	problem := value_problem(kind, item, el, item_views(arg.views, j))
	text := concat(" ", ["item", format_int(j, 10), problem])
}

argument_violations contains [i, r, name, 40, -1, "otherArguments", "it is not an argument this endpoint accepts"] if {
	some [i, r] in binding_rules
	argument_rules[r].otherArguments == "deny"
	args := input.mcp.calls[i].arguments
	is_object(args)
	some name, _ in args
	not has_key(object.get(argument_rules[r], "arguments", {}), name)
}

# The service refuses non-object arguments (400 invalid_arguments); deny by default here too.
argument_violations contains [i, r, "", 50, -1, "arguments", "it must be an object"] if {
	some [i, r] in binding_rules
	not is_object(object.get(input.mcp.calls[i], "arguments", {}))
}

has_key(obj, key) if _ = obj[key]

# The views of item j of an array argument, and one kind of view of a value ("url", "path", "sql").
item_views(views, j) := v if {
	v := views.items[j]
} else := null

kind_view(views, kind) := v if {
	v := views[kind]
} else := null

# A key Go's case-insensitive decoding reads as this argument ("Limit" for "limit") is refused
# whatever the presence: a Go server would fill the argument the policy sees absent.
presence_problem(cons, arg) := concat("", ["it is sent as ", quoted_name(spelling), ", another spelling Go servers read as this argument"]) if {
	spelling := arg.views.sentAs
} else := "it is not allowed on this endpoint" if {
	cons.presence == "forbidden"
	arg.sent
} else := "it is required" if {
	not object.get(cons, "presence", "required") in {"optional", "forbidden"}
	not present(arg)
}

# --- value constraints: each defined only when the constraint is set and the value breaks it

# Constraints on strings: any other value breaks them.
string_kinds := {"pattern", "notPattern", "maxLength", "path", "url", "sql"}

value_problem(kind, cons, v, _) := "must be a string" if {
	string_kinds[kind]
	_ := cons[kind]
	not is_string(v)
}

value_problem("type", cons, v, _) := concat(" ", ["must be of type", t]) if {
	t := cons.type
	not has_type(t, v)
}

value_problem("enum", cons, v, _) := "must be one of the values the endpoint allows" if {
	allowed := cons.enum
	not enum_member(allowed, v)
}

value_problem("pattern", cons, v, _) := "must match the endpoint's pattern" if {
	p := cons.pattern
	is_string(v)
	not full_match(p, v)
}

value_problem("notPattern", cons, v, _) := "must not contain what the endpoint's notPattern matches" if {
	p := cons.notPattern
	is_string(v)
	not clear_of(p, v)
}

value_problem("maxLength", cons, v, _) := sprintf("must be at most %d characters long", [n]) if {
	n := cons.maxLength
	is_string(v)
	count(v) > n
}

value_problem("minimum", cons, v, _) := sprintf("must be a number of at least %v", [m]) if {
	m := cons.minimum
	not at_least(v, m)
}

value_problem("maximum", cons, v, _) := sprintf("must be a number of at most %v", [m]) if {
	m := cons.maximum
	not at_most(v, m)
}

value_problem("path", cons, v, views) := problem if {
	prefixes := cons.path.under
	is_string(v)
	problem := path_problem(prefixes, v, kind_view(views, "path"))
}

value_problem("url", cons, v, views) := problem if {
	u := cons.url
	is_string(v)
	problem := url_problem(u, kind_view(views, "url"))
}

value_problem("sql", cons, v, views) := problem if {
	guard := cons.sql
	is_string(v)
	problem := sql_problem(guard, kind_view(views, "sql"))
}

has_type("string", v) if is_string(v)

has_type("number", v) if is_number(v)

has_type("integer", v) if {
	safe_number(v)
	floor(v) == v
}

has_type("boolean", v) if is_boolean(v)

has_type("object", v) if is_object(v)

has_type("array", v) if is_array(v)

# Numbers beyond 2^53 are not compared: JavaScript reads 9007199254740993 as …992, Python
# and Go as itself, so a bound would not mean the same to the server.
safe_number(v) if {
	is_number(v)
	abs(v) <= 9007199254740991
}

enum_member(allowed, v) if {
	not is_number(v)
	v in allowed
}

enum_member(allowed, v) if {
	safe_number(v)
	some x in allowed
	is_number(x)
	x == v
}

at_least(v, m) if {
	safe_number(v)
	v >= m
}

at_most(v, m) if {
	safe_number(v)
	v <= m
}

# RE2, anchored at both ends. The pattern must be valid alone, so wrapping it cannot
# unbalance it ("a)|(b" would otherwise leave an unanchored alternative); a wrapped pattern
# that no longer compiles (an unterminated \Q) matches nothing.
full_match(p, v) if {
	is_string(v)
	regex.is_valid(p)
	regex.match(concat("", ["^(?:", p, ")$"]), v)
}

clear_of(p, v) if {
	is_string(v)
	regex.is_valid(p)
	not regex.match(p, v)
}

# --- paths: read as written by every reader (the service's path view), under a prefix by
# whole segments (docs/policies.md "Path views")

path_problem(prefixes, v, view) := concat("", ["must be an absolute path every path reader reads as written (", why, ")"]) if {
	view.ok == false
	why := view.why
} else := "has no path view (the service computes one for every argument a path constraint names)" if {
	not view.ok == true
} else := concat(" ", ["must be a path under", concat(", ", prefixes)]) if {
	not path_under(prefixes, v)
}

path_under(prefixes, v) if {
	q := trim_suffix(v, "/")
	some prefix in prefixes
	under_prefix(prefix, q)
}

under_prefix("/", _)

under_prefix(prefix, q) if q == prefix

under_prefix(prefix, q) if startswith(q, concat("", [prefix, "/"]))

# --- URLs: compared through the service's URL view (docs/policies.md "URL views")

default_url_schemes := ["http", "https"]

# Every reference is bound before a "not": a "not" over an undefined reference fails instead
# of holding, which would let a missing view or a missing list pass.
url_problem(u, view) := concat("", ["must be a URL every URL reader reads alike (", why, ")"]) if {
	view.ok == false
	why := view.why
} else := "has no URL view (the service computes one for every argument a url constraint names)" if {
	not view_readable(view)
} else := concat(" ", ["must use the scheme", concat(" or ", schemes)]) if {
	schemes := object.get(u, "schemes", default_url_schemes)
	not view.scheme in schemes
} else := "must name a host the endpoint allows" if {
	not host_allowed(object.get(u, "hosts", []), view)
} else := "must use a port the endpoint allows" if {
	not port_allowed(u, view.port)
}

view_readable(view) if {
	view.ok == true
	is_string(view.scheme)
	is_string(view.host)
	is_number(view.port)
}

port_allowed(u, _) if not u.ports

port_allowed(u, port) if port in u.ports

host_allowed(hosts, view) if {
	view.hostType == "domain"
	some h in hosts
	domain_matches(h, view.host)
}

host_allowed(hosts, view) if {
	view.hostType != "domain"
	some h in hosts
	address_matches(h, view)
}

domain_matches(h, host) if h == host

# "*.example.com": any name below example.com, not example.com itself.
domain_matches(h, host) if {
	startswith(h, "*.")
	endswith(host, substring(h, 1, -1))
}

address_matches(h, view) if h == view.host

address_matches(h, view) if {
	contains(h, "/")
	net.cidr_contains(h, view.ip)
}

# --- SQL: a guard, not a parser (docs/policies.md "SQL read-only"). The service's SQL view
# splits the text into lower-case words at every character that is not an ASCII letter,
# digit or "_" (inside literals too), and refuses ";", comments and look-alike letters.

sql_problem(guard, view) := "names an SQL guard this policy does not know" if {
	guard != "select-only"
} else := concat("", ["must be one SQL statement every reader reads alike (", why, ")"]) if {
	view.ok == false
	why := view.why
} else := "has no SQL view (the service computes one for every argument an sql constraint names)" if {
	not sql_words(view)
} else := concat("", [
	"must be a single read-only SELECT statement (no write, schema, transaction or ",
	"administration keyword, nor a function known to have side effects)",
]) if {
	not select_only(view.words)
}

sql_words(view) if {
	view.ok == true
	is_array(view.words)
}

select_only(words) if {
	words[0] == "select"
	not sql_refused_word(words)
}

sql_refused_word(words) if {
	some w in words
	sql_refused_words[w]
}

# Keywords that write, change schema, privileges, transactions or settings, or run other
# statements, and functions known to read or write files, call out, sleep or change state.
# Not exhaustive: run the tool with a read-only database role.
sql_refused_words := {
	"insert", "update", "delete", "merge", "upsert", "replace", "create", "alter", "drop",
	"truncate", "rename", "grant", "revoke", "copy", "call", "exec", "execute", "do", "load",
	"attach", "detach", "pragma", "vacuum", "reindex", "analyze", "lock", "unlock", "into", "set",
	"reset", "commit", "rollback", "begin", "start", "savepoint", "release", "handler", "outfile",
	"dumpfile", "import", "export", "refresh", "cluster", "notify", "listen", "unlisten",
	"discard", "prepare", "deallocate", "shutdown", "kill", "checkpoint", "comment", "security",
	"install", "uninstall", "lo_import", "lo_export", "lo_unlink", "lo_creat", "lo_create",
	"lo_put", "lo_from_bytea", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_ls_logdir",
	"pg_ls_waldir", "pg_stat_file", "pg_file_write", "pg_sleep", "pg_sleep_for", "pg_sleep_until",
	"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
	"pg_advisory_lock", "pg_advisory_xact_lock", "set_config", "nextval", "setval",
	"query_to_xml", "query_to_xml_and_xmlschema", "dblink", "dblink_exec", "dblink_connect",
	"dblink_send_query", "load_file", "sys_exec", "sys_eval", "benchmark", "sleep", "waitfor",
	"xp_cmdshell", "xp_regread", "xp_regwrite", "xp_dirtree", "xp_fileexist", "sp_executesql",
	"sp_configure", "sp_oacreate", "sp_oamethod", "openrowset", "opendatasource", "openquery",
	"utl_http", "utl_file", "utl_inaddr", "dbms_pipe", "dbms_lock", "dbms_xmlgen", "dbms_sql",
	"readfile", "writefile", "fts3_tokenizer", "load_extension", "edit",
}

# --- the deny

first_argument_violation := min(argument_violations)

argument_denial := object.union(
	denial(403, "argument_denied", argument_description(first_argument_violation)),
	{"denied_argument": argument_detail(first_argument_violation)},
)

constrained_targets := {"tools/call": "tool", "prompts/get": "prompt"}

argument_description([i, _, name, _, _, kind, problem]) := concat("", [
	"Argument ", quoted_name(name), " of ", constrained_targets[c.method], " ", c.name,
	" is refused: ", problem, " (", kind, ").",
]) if {
	c := input.mcp.calls[i]
}

argument_detail([i, _, name, _, item, kind, _]) := {
	"call": i,
	"method": input.mcp.calls[i].method,
	"name": input.mcp.calls[i].name,
	"argument": shown_name(name),
	"constraint": kind,
	"item": item,
}

# Argument names come from the request for otherArguments: only plain short names are echoed.
shown_name(name) := name if plain_name(name)

else := "(a name not shown)"

quoted_name(name) := concat("", ["\"", name, "\""]) if plain_name(name)

else := "(a name not shown)"

# Without a regular expression (WASM compiles one on every evaluation): trimming every
# allowed character leaves nothing.
plain_name(name) if {
	count(name) > 0
	count(name) <= 64
	trim(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.$-") == ""
}
