# Grants: "<kind>:<glob>" with kind tools, prompts or resources, or "*" alone (everything).
# Glob semantics (docs/policies.md): "*" matches any sequence of characters, including
# none, "/", ":" and "."; every other character is literal and compared exactly —
# case-sensitive, no Unicode normalization, so look-alikes and case variants never match.
package mcp.authz

# API keys carry permissions, tokens carry scopes, workloads get the grants of the
# endpoint's workloads entries that name them (workloads.rego). An anonymous caller on an
# auth-off endpoint gets the endpoint's data.anonymousGrants, by default everything.
grants := input.principal.permissions if input.principal.method == "api_key"

else := input.principal.scopes if input.principal.method == "oauth"

else := workload_grants if input.principal.method == "mtls"

else := anonymous_grants if input.principal.method == "anonymous"

else := []

anonymous_grants := object.get(input.endpoint, ["data", "anonymousGrants"], ["*"])

grant_matches("*", _, _)

grant_matches(grant, kind, target) if {
	is_string(target)
	prefix := concat("", [kind, ":"])
	startswith(grant, prefix)
	glob_matches(substring(grant, count(prefix), -1), target)
}

glob_matches(pattern, target) if {
	not contains(pattern, "*")
	pattern == target
}

# One "*" (the common "read_*", "*_file"): a prefix and a suffix that do not overlap.
# Same answer as the regex below, without compiling one on every evaluation.
glob_matches(pattern, target) if {
	parts := split(pattern, "*")
	count(parts) == 2
	startswith(target, parts[0])
	endswith(target, parts[1])
	count(target) >= count(parts[0]) + count(parts[1])
}

glob_matches(pattern, target) if {
	count(split(pattern, "*")) > 2
	regex.match(glob_regex(pattern), target)
}

# A URI template (RFC 6570, as completion/complete's ref/resource and resources/templates/list
# name one) is granted by a pattern that matches every URI the template can expand to: the
# pattern's literal characters match the template's literal characters, and each expression
# "{…}" lies wholly inside what one "*" matches. So the pattern has no "{" or "}", and is
# matched against the template with each expression cut to "{}": no literal of the pattern
# can then match inside an expression. "resources:file:///docs/*" grants
# "file:///docs/{name}" and "file:///docs/{+path}"; "resources:file:///docs/{name}" grants no
# template; a template that is not well formed is granted by no pattern but "*".
grant_matches_template("*", _, _)

grant_matches_template(grant, kind, template) if {
	is_string(template)
	prefix := concat("", [kind, ":"])
	startswith(grant, prefix)
	pattern := substring(grant, count(prefix), -1)
	not contains(pattern, "{")
	not contains(pattern, "}")
	glob_matches(pattern, template_shape(template))
}

# The template with every expression cut to "{}"; undefined when its braces are not pairs.
template_shape(template) := concat("{}", [literal |
	some i, part in parts
	literal := after_expression(i, part)
]) if {
	parts := split(template, "{")
	not contains(parts[0], "}")
	every part in array.slice(parts, 1, count(parts)) {
		count(split(part, "}")) == 2
	}
}

after_expression(0, part) := part

after_expression(i, part) := substring(part, indexof(part, "}") + 1, -1) if i > 0

# Each literal run is quoted with \Q…\E (a literal "\E" inside is split out), so regex
# metacharacters in names are plain characters; "*" becomes "(?s:.*)".
glob_regex(pattern) := concat("", ["^", concat("(?s:.*)", [quote(part) | some part in split(pattern, "*")]), "$"])

quote(s) := concat("", ["\\Q", replace(s, "\\E", "\\E\\\\E\\Q"), "\\E"])
