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

# --- SQL: decided on the service's reading of the text by PostgreSQL's own parser
# (docs/policies.md "SQL read-only"). The view lists what the parse tree holds: statement
# kinds, SELECT … INTO, locking clauses, every function, operator and type it names and every
# kind of node in it. The lists below say what a read-only query may hold; anything else is
# refused. For a dialect without a parser in the service, the text must also be in the portable
# subset every database reads alike. Whatever this allows, run the tool with a read-only role.

sql_problem(guard, view) := "names an SQL guard this policy does not know" if {
	not sql_dialect(guard)
} else := concat("", ["must be one SQL statement every reader reads alike (", why, ")"]) if {
	view.ok == false
	why := view.why
} else := "has no SQL view (the service computes one for every argument an sql constraint names)" if {
	not sql_reading(view)
} else := "must be exactly one SQL statement" if {
	count(view.statements) != 1
} else := "must be a query that only reads (SELECT, VALUES, or a set operation or WITH of them)" if {
	not sql_statement_kinds[view.statements[0]]
} else := "must not create a table (SELECT … INTO)" if {
	view.into
} else := "must not lock rows (FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY SHARE)" if {
	count(view.locking) > 0
} else := "must not write in a WITH query (INSERT, UPDATE, DELETE, MERGE)" if {
	some n in view.nodes
	sql_write_nodes[n]
} else := "calls a function this rule does not allow" if {
	some f in view.functions
	not sql_function_allowed(f)
} else := "uses an operator this rule does not allow" if {
	some o in view.operators
	not sql_listed(sql_operators, o)
} else := "names a type this rule does not allow" if {
	some t in view.types
	not sql_listed(sql_types, t)
} else := "uses SQL this rule does not allow" if {
	some n in view.nodes
	not sql_listed(sql_nodes, n)
} else := concat("", [
	"must be in the portable SQL subset every database reads alike (",
	"the service has no parser for the endpoint's dialect)",
]) if {
	not sql_dialects_with_parser[sql_dialect(guard)]
	not view.portable.ok == true
}

# "select-only" (names no dialect) accepts what {dialect: other} accepts.
sql_dialect("select-only") := "other"

sql_dialect(guard) := guard.dialect if sql_known_dialects[guard.dialect]

sql_known_dialects := {"postgresql", "mysql", "mariadb", "sqlserver", "sqlite", "oracle", "other"}

sql_dialects_with_parser := {"postgresql"}

sql_reading(view) if {
	view.ok == true
	is_array(view.statements)
	is_boolean(view.into)
	is_array(view.locking)
	is_array(view.functions)
	is_array(view.operators)
	is_array(view.types)
	is_array(view.nodes)
}

# A name is on a list when it is one of the list's lines. The lists are text rather than sets:
# the WASM policy would build a set of every name on each evaluation, a text is a constant. A
# name holding a line break is on no list.
sql_listed(list, name) if {
	not contains(name, "\n")
	contains(list, concat("", ["\n", name, "\n"]))
}

sql_statement_kinds := {"SelectStmt"}

# A data-modifying statement inside a WITH query.
sql_write_nodes := {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"}

# The parse-tree nodes of a read-only query. Not here, so refused: locking clauses, writes,
# XML (XMLPARSE, XMLTABLE, XMLSERIALIZE), SQL/JSON constructors and JSON_TABLE, TABLESAMPLE,
# WHERE CURRENT OF, the SEARCH and CYCLE clauses of recursive queries.
sql_nodes := `
A_ArrayExpr
A_Const
A_Expr
A_Indices
A_Indirection
A_Star
BitString
BoolExpr
Boolean
BooleanTest
CaseExpr
CaseWhen
CoalesceExpr
CollateClause
ColumnDef
ColumnRef
CommonTableExpr
Float
FuncCall
GroupingFunc
GroupingSet
Integer
JoinExpr
List
MinMaxExpr
NullTest
ParamRef
RangeFunction
RangeSubselect
RangeVar
ResTarget
RowExpr
SQLValueFunction
SelectStmt
SortBy
String
SubLink
TypeCast
TypeName
WindowDef
`

# Built-in functions that only compute from their arguments or read the query's rows: no
# function that reads files, large objects, settings or the server's state, runs SQL text,
# sleeps, locks, signals, notifies or changes a sequence. A name here means the built-in in
# pg_catalog (a name qualified with another schema is another function). The SQL-standard
# syntax PostgreSQL turns into calls is here too: EXTRACT (extract), POSITION (position),
# SUBSTRING (substring), TRIM (btrim, ltrim, rtrim), OVERLAY (overlay), AT TIME ZONE
# (timezone), OVERLAPS (overlaps), LIKE … ESCAPE (like_escape), SIMILAR TO (similar_to_escape),
# NORMALIZE and IS NORMALIZED (normalize, is_normalized), COLLATION FOR (pg_collation_for).
sql_function_allowed(f) if sql_listed(sql_functions_aggregates, f)

sql_function_allowed(f) if sql_listed(sql_functions_window, f)

sql_function_allowed(f) if sql_listed(sql_functions_numbers, f)

sql_function_allowed(f) if sql_listed(sql_functions_strings, f)

sql_function_allowed(f) if sql_listed(sql_functions_dates, f)

sql_function_allowed(f) if sql_listed(sql_functions_json, f)

sql_function_allowed(f) if sql_listed(sql_functions_arrays, f)

sql_function_allowed(f) if sql_listed(sql_functions_text_search, f)

sql_function_allowed(f) if sql_listed(sql_functions_other, f)

# aggregates
sql_functions_aggregates := `
count
sum
avg
min
max
array_agg
string_agg
bool_and
bool_or
every
bit_and
bit_or
bit_xor
json_agg
jsonb_agg
json_object_agg
jsonb_object_agg
stddev
stddev_pop
stddev_samp
variance
var_pop
var_samp
corr
covar_pop
covar_samp
regr_avgx
regr_avgy
regr_count
regr_intercept
regr_r2
regr_slope
regr_sxx
regr_sxy
regr_syy
percentile_cont
percentile_disc
mode
any_value
`

# window functions
sql_functions_window := `
row_number
rank
dense_rank
percent_rank
cume_dist
ntile
lag
lead
first_value
last_value
nth_value
`

# numbers
sql_functions_numbers := `
abs
cbrt
ceil
ceiling
degrees
div
exp
factorial
floor
gcd
lcm
ln
log
log10
mod
pi
power
radians
round
scale
sign
sqrt
trunc
width_bucket
random
acos
asin
atan
atan2
cos
cot
sin
tan
min_scale
trim_scale
`

# strings
sql_functions_strings := `
ascii
bit_length
btrim
char_length
character_length
chr
concat
concat_ws
format
initcap
left
length
lower
lpad
ltrim
md5
normalize
is_normalized
octet_length
overlay
position
quote_ident
quote_literal
quote_nullable
regexp_count
regexp_instr
regexp_like
regexp_match
regexp_matches
regexp_replace
regexp_split_to_array
regexp_split_to_table
regexp_substr
repeat
replace
reverse
right
rpad
rtrim
split_part
starts_with
string_to_array
string_to_table
strpos
substr
substring
to_hex
translate
upper
encode
decode
sha224
sha256
sha384
sha512
like_escape
similar_to_escape
pg_collation_for
`

# dates and times
sql_functions_dates := `
age
clock_timestamp
date_bin
date_part
date_trunc
extract
isfinite
justify_days
justify_hours
justify_interval
make_date
make_interval
make_time
make_timestamp
make_timestamptz
now
statement_timestamp
timeofday
transaction_timestamp
to_char
to_date
to_number
to_timestamp
timezone
overlaps
`

# JSON
sql_functions_json := `
to_json
to_jsonb
array_to_json
row_to_json
json_build_array
jsonb_build_array
json_build_object
jsonb_build_object
json_object
jsonb_object
json_array_length
jsonb_array_length
json_each
jsonb_each
json_each_text
jsonb_each_text
json_extract_path
jsonb_extract_path
json_extract_path_text
jsonb_extract_path_text
json_object_keys
jsonb_object_keys
json_array_elements
jsonb_array_elements
json_array_elements_text
jsonb_array_elements_text
json_typeof
jsonb_typeof
json_strip_nulls
jsonb_strip_nulls
jsonb_pretty
jsonb_set
jsonb_set_lax
jsonb_insert
jsonb_path_exists
jsonb_path_match
jsonb_path_query
jsonb_path_query_array
jsonb_path_query_first
json_populate_record
jsonb_populate_record
json_populate_recordset
jsonb_populate_recordset
json_to_record
jsonb_to_record
json_to_recordset
jsonb_to_recordset
`

# arrays and sets
sql_functions_arrays := `
array_append
array_cat
array_dims
array_fill
array_length
array_lower
array_ndims
array_position
array_positions
array_prepend
array_remove
array_replace
array_to_string
array_upper
cardinality
trim_array
unnest
generate_series
generate_subscripts
num_nonnulls
num_nulls
`

# text search
sql_functions_text_search := `
to_tsvector
to_tsquery
plainto_tsquery
phraseto_tsquery
websearch_to_tsquery
ts_rank
ts_rank_cd
ts_headline
setweight
`

# other
sql_functions_other := `
gen_random_uuid
`

# Built-in operators: comparison, arithmetic, bit, string, pattern, JSON, array and text-search
# operators, and the names PostgreSQL gives BETWEEN.
sql_operators := `
=
<>
<
>
<=
>=
+
-
*
/
%
^
|/
||/
@
&
|
#
~
<<
>>
||
~~
!~~
~~*
!~~*
~*
!~
!~*
^@
->
->>
#>
#>>
@>
<@
?
?|
?&
#-
@?
@@
&&
BETWEEN
NOT BETWEEN
BETWEEN SYMMETRIC
NOT BETWEEN SYMMETRIC
`

# Built-in types a value may be cast to (their input functions only parse text). Not here:
# the reg* types (they look up the catalogs), xml, and every type of a schema of the database.
sql_types := `
bool
int2
int4
int8
float4
float8
numeric
text
varchar
bpchar
char
name
date
time
timetz
timestamp
timestamptz
interval
json
jsonb
uuid
bytea
inet
cidr
macaddr
macaddr8
bit
varbit
money
tsvector
tsquery
`

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
