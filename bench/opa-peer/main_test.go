package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// A small MCP policy in the shape the benchmark's is: API key looked up (by its sha256)
// in data, per-tool grants checked against the tools/call body.
const testPolicy = `package envoy.authz

http := input.attributes.request.http

key := data.keys[crypto.sha256(http.headers["x-api-key"])]

granted if {
	input.parsed_body.method == "tools/call"
	input.parsed_body.params.name in key.tools
}

granted if input.parsed_body.method != "tools/call"

decision := {"allowed": true, "headers": {"x-principal": key.id}, "request_headers_to_remove": ["x-api-key"]} if {
	key
	granted
}

decision := {"allowed": false, "http_status": 401, "body": "{\"error\":\"invalid_api_key\"}", "headers": {"content-type": "application/json"}} if not key

decision := {"allowed": false, "http_status": 403, "body": "{\"error\":\"access_denied\"}"} if {
	key
	not granted
}

# For the other query shapes.
allow if key
nothing if false
echo := input
`

const testKey = "mk_test_0123456789abcdef"

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func testData(t testing.TB) string {
	bs, _ := json.Marshal(map[string]any{"keys": map[string]any{sha(testKey): map[string]any{"id": "key-1", "tools": []string{"read_file", "search"}}}})
	return writeFile(t, "data.json", string(bs))
}

// startPeer runs serve on 127.0.0.1:0 and returns a client for it; the server stops
// (gracefully) when the test ends, and must exit cleanly.
func startPeer(t *testing.T, c config) *grpc.ClientConn {
	t.Helper()
	if c.addr == "" {
		c.addr = "127.0.0.1:0"
	}
	if c.query == "" {
		c.query = defaultQuery
	}
	if c.input == "" {
		c.input = inputProtoMap
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, pw); pw.Close() }()

	line, err := bufio.NewReader(pr).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err != nil {
		cancel()
		t.Fatalf("no listening line: %v (serve: %v)", err, <-done)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok || !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("unexpected first line %q", line)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the server did not stop")
		}
	})
	return conn
}

// checkRequest is a CheckRequest as Envoy's ext_authz filter sends it for an MCP POST.
func checkRequest(path, body string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{
		":authority": "mcp.example.com", ":method": "POST", ":path": path, ":scheme": "https",
		"content-type": "application/json", "accept": "application/json, text/event-stream",
	}
	if body != "" {
		h["content-length"] = strconv.Itoa(len(body))
	}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
		}}},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Unix(1700000000, 0)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "42", Method: "POST", Path: path, Host: "mcp.example.com", Scheme: "https", Protocol: "HTTP/2",
				Headers: h, Body: body, Size: int64(len(body)),
			},
		},
	}}
}

func toolCall(name string) string {
	return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + name + `","arguments":{"path":"/docs/README.md"}}}`
}

func check(t *testing.T, conn *grpc.ClientConn, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

func header(opts []*corev3.HeaderValueOption, name string) string {
	for _, o := range opts {
		if o.GetHeader().GetKey() == name {
			return o.GetHeader().GetValue()
		}
	}
	return ""
}

func TestCheckAllowsAndDenies(t *testing.T) {
	for _, mode := range []string{inputProtoMap, inputProtoJSON} {
		t.Run(mode, func(t *testing.T) {
			conn := startPeer(t, config{policies: []string{writeFile(t, "p.rego", testPolicy)}, data: testData(t), input: mode})

			// Allowed: a known key calling a granted tool.
			resp := check(t, conn, checkRequest("/mcp/files", toolCall("read_file"), map[string]string{"x-api-key": testKey}))
			if resp.GetStatus().GetCode() != 0 || resp.GetOkResponse() == nil {
				t.Fatalf("allowed call: got %v", resp)
			}
			ok := resp.GetOkResponse()
			if header(ok.GetHeaders(), "x-principal") != "key-1" || len(ok.GetHeadersToRemove()) != 1 || ok.GetHeadersToRemove()[0] != "x-api-key" {
				t.Errorf("allowed call: response %v", ok)
			}
			if id := resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue(); len(id) != 36 {
				t.Errorf("decision_id %q", id)
			}

			// Denied by policy: the same key calling a tool it is not granted.
			resp = check(t, conn, checkRequest("/mcp/files", toolCall("delete_file"), map[string]string{"x-api-key": testKey}))
			d := resp.GetDeniedResponse()
			if resp.GetStatus().GetCode() != 7 || d == nil || d.GetStatus().GetCode() != 403 || d.GetBody() != `{"error":"access_denied"}` {
				t.Fatalf("denied call: got %v", resp)
			}

			// Unknown key: 401 with the policy's header.
			resp = check(t, conn, checkRequest("/mcp/files", toolCall("read_file"), map[string]string{"x-api-key": "mk_nope"}))
			d = resp.GetDeniedResponse()
			if resp.GetStatus().GetCode() != 7 || d.GetStatus().GetCode() != 401 || header(d.GetHeaders(), "content-type") != "application/json" {
				t.Fatalf("unknown key: got %v", resp)
			}
		})
	}
}

func TestQueryShapes(t *testing.T) {
	policy := writeFile(t, "p.rego", testPolicy)
	data := testData(t)
	good := checkRequest("/mcp/files", toolCall("read_file"), map[string]string{"x-api-key": testKey})
	bad := checkRequest("/mcp/files", toolCall("read_file"), nil)

	t.Run("boolean", func(t *testing.T) {
		conn := startPeer(t, config{policies: []string{policy}, data: data, query: "data.envoy.authz.allow"})
		if r := check(t, conn, good); r.GetStatus().GetCode() != 0 || r.GetHttpResponse() != nil {
			t.Errorf("true: %v", r)
		}
		// `allow` is undefined without a key: denied 403, as for any missing decision.
		if r := check(t, conn, bad); r.GetStatus().GetCode() != 7 || r.GetDeniedResponse().GetStatus().GetCode() != 403 {
			t.Errorf("undefined: %v", r)
		}
	})
	t.Run("undefined", func(t *testing.T) {
		conn := startPeer(t, config{policies: []string{policy}, data: data, query: "data.envoy.authz.nothing"})
		if r := check(t, conn, good); r.GetStatus().GetCode() != 7 || r.GetDeniedResponse().GetStatus().GetCode() != 403 {
			t.Errorf("undefined: %v", r)
		}
	})
	t.Run("not an object or boolean", func(t *testing.T) {
		conn := startPeer(t, config{policies: []string{policy}, data: data, query: "data.envoy.authz.echo"})
		// echo is an object without "allowed": an error, hence denied.
		if r := check(t, conn, good); r.GetStatus().GetCode() != 7 || r.GetDeniedResponse().GetStatus().GetCode() != 403 {
			t.Errorf("malformed: %v", r)
		}
	})
}

func TestInputDocument(t *testing.T) {
	req := checkRequest("/mcp/files/a%20b?x=1&x=2&y=", toolCall("read_file"), map[string]string{"x-api-key": testKey})
	for _, mode := range []string{inputProtoMap, inputProtoJSON} {
		t.Run(mode, func(t *testing.T) {
			in, err := requestToInput(req, mode)
			if err != nil {
				t.Fatal(err)
			}
			v, err := ast.InterfaceToValue(in)
			if err != nil {
				t.Fatal(err)
			}
			get := func(path string) string {
				t.Helper()
				ref := ast.MustParseRef("x." + path)[1:]
				x, err := v.Find(ref)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				return x.String()
			}
			want := map[string]string{
				"parsed_path":             `["mcp", "files", "a b"]`,
				"parsed_query":            `{"x": ["1", "2"], "y": [""]}`,
				`parsed_body.params.name`: `"read_file"`,
				"parsed_body.id":          `7`,
				"truncated_body":          `false`,
				"version":                 `{"encoding": "protojson", "ext_authz": "v3"}`,
				`attributes.request.http.headers["x-api-key"]`:      `"` + testKey + `"`,
				"attributes.request.http.method":                    `"POST"`,
				"attributes.source.address.socketAddress.portValue": `40000`,
			}
			for p, w := range want {
				if got := get(p); got != w {
					t.Errorf("%s = %s, want %s", p, got, w)
				}
			}
			// Where the two encodings differ: protojson writes int64 as strings and
			// Timestamps as RFC 3339; the reflection walk keeps numbers and fields.
			size, when := get("attributes.request.http.size"), get("attributes.request.time")
			if mode == inputProtoJSON && (size != `"`+strconv.Itoa(len(toolCall("read_file")))+`"` || when != `"2023-11-14T22:13:20Z"`) {
				t.Errorf("protojson: size %s, time %s", size, when)
			}
			if mode == inputProtoMap && (size != strconv.Itoa(len(toolCall("read_file"))) || when != `{"seconds": 1700000000}`) {
				t.Errorf("protomap: size %s, time %s", size, when)
			}
		})
	}

	// A body Envoy marked partial, or shorter than its content-length, is not parsed.
	partial := checkRequest("/mcp/files", toolCall("read_file"), map[string]string{"x-envoy-auth-partial-body": "true"})
	short := checkRequest("/mcp/files", toolCall("read_file"), map[string]string{"content-length": "100000"})
	for name, r := range map[string]*authv3.CheckRequest{"partial": partial, "short": short} {
		in, err := requestToInput(r, inputProtoMap)
		if err != nil {
			t.Fatal(err)
		}
		if in["truncated_body"] != true || in["parsed_body"] != nil {
			t.Errorf("%s: truncated_body %v, parsed_body %v", name, in["truncated_body"], in["parsed_body"])
		}
	}

	// raw_body stands in for body when Envoy packs the body as bytes.
	raw := checkRequest("/mcp/files", "", nil)
	raw.Attributes.Request.Http.RawBody = []byte(toolCall("search"))
	in, err := requestToInput(raw, inputProtoMap)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := in["parsed_body"].(map[string]any); b["method"] != "tools/call" {
		t.Errorf("raw_body: parsed_body %v", in["parsed_body"])
	}
}

func TestBadBodyIsDenied400(t *testing.T) {
	conn := startPeer(t, config{policies: []string{writeFile(t, "p.rego", testPolicy)}, data: testData(t)})
	r := check(t, conn, checkRequest("/mcp/files", `{"jsonrpc":`, map[string]string{"x-api-key": testKey}))
	if r.GetStatus().GetCode() != 7 || r.GetDeniedResponse().GetStatus().GetCode() != 400 {
		t.Errorf("unparseable body: %v", r)
	}
}

func TestHealth(t *testing.T) {
	conn := startPeer(t, config{policies: []string{writeFile(t, "p.rego", testPolicy)}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v %v", svc, r, err)
		}
	}
}

func TestFlags(t *testing.T) {
	c, err := parseFlags([]string{"--addr", "127.0.0.1:0", "--policy", "a.rego", "--policy", "b.rego", "--data", "d.json"})
	if err != nil || len(c.policies) != 2 || c.query != defaultQuery || c.input != inputProtoMap || c.data != "d.json" {
		t.Errorf("%+v %v", c, err)
	}
	if _, err := parseFlags([]string{"--addr", "127.0.0.1:0"}); err == nil {
		t.Error("no --policy accepted")
	}
	if _, err := parseFlags([]string{"--policy", "a.rego", "--input", "yaml"}); err == nil {
		t.Error("bad --input accepted")
	}
}
