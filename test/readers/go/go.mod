module mcp-authz/test/readers

go 1.22
