package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The benchmark's policy for this peer (bench/opa-envoy/policy.rego), evaluated through
// the peer on the benchmark's requests with data shaped as bench/run.ts writes it.
// OPA_PEER_BENCH_POLICY points at another copy; the test is skipped when neither exists.
func benchPolicyPath(t *testing.T) string {
	p := os.Getenv("OPA_PEER_BENCH_POLICY")
	if p == "" {
		p = filepath.Join("..", "opa-envoy", "policy.rego")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no benchmark policy at %s", p)
	}
	return p
}

const (
	benchUser     = "bench-user"
	benchIssuer   = "https://idp.example.com"
	benchResource = "https://mcp.example.com/mcp/oauth"
	ownerKey      = "mk_bench_owner_key_0001"
	otherKey      = "mk_bench_other_key_0002"
	disabledKey   = "mk_bench_disabled_key_03"
)

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signRS256 makes a compact JWS over the claims with the key.
func signRS256(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid})
	c, _ := json.Marshal(claims)
	signing := b64url(h) + "." + b64url(c)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64url(sig)
}

func TestBenchPolicy(t *testing.T) {
	policy := benchPolicyPath(t)

	idp, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "bench-1", "alg": "RS256", "use": "sig",
		"n": b64url(idp.N.Bytes()), "e": b64url(big.NewInt(int64(idp.E)).Bytes()),
	}}})
	data, _ := json.Marshal(map[string]any{"bench": map[string]any{
		"keys": map[string]any{
			sha(ownerKey):    map[string]any{"id": "key-owner", "userId": benchUser, "permissions": []string{"tools:search", "tools:read_*"}, "disabled": false},
			sha(otherKey):    map[string]any{"id": "key-other", "userId": "someone-else", "permissions": []string{"*"}, "disabled": false},
			sha(disabledKey): map[string]any{"id": "key-off", "userId": benchUser, "permissions": []string{"*"}, "disabled": true},
		},
		"endpoints": []any{
			map[string]any{"name": "open", "segments": []string{"mcp", "open"}, "apiKey": false, "oauth": false},
			map[string]any{"name": "files", "segments": []string{"mcp", "files"}, "owner": benchUser, "apiKey": true, "oauth": false},
			map[string]any{"name": "oauth", "segments": []string{"mcp", "oauth"}, "owner": benchUser, "apiKey": false, "oauth": true, "resource": benchResource},
		},
		"oauth": map[string]any{"issuer": benchIssuer, "jwks": string(jwks)},
	}})

	now := time.Now().Unix()
	claims := func(over map[string]any) map[string]any {
		c := map[string]any{"iss": benchIssuer, "aud": benchResource, "sub": benchUser, "scope": "tools:search tools:read_file", "iat": now, "exp": now + 3600}
		for k, v := range over {
			c[k] = v
		}
		return c
	}
	token := signRS256(t, idp, "bench-1", claims(nil))
	bearer := func(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }
	apiKey := func(k string) map[string]string { return map[string]string{"x-api-key": k} }
	toolsList := `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{}}`

	cases := []struct {
		name      string
		path      string
		body      string
		headers   map[string]string
		status    uint32 // 200 for an allow
		error     string
		principal string
	}{
		// The benchmark's scenarios.
		{"anonymous_open", "/mcp/open", toolsList, nil, 200, "", "anonymous"},
		{"apikey_tool_allow", "/mcp/files", toolCall("read_file"), apiKey(ownerKey), 200, "", "key-owner"},
		{"apikey_tool_deny", "/mcp/files", toolCall("delete_file"), apiKey(ownerKey), 403, "access_denied", ""},
		{"invalid_key", "/mcp/files", toolCall("read_file"), apiKey("mk_unknown_key_999999999"), 401, "invalid_api_key", ""},
		{"oauth_cached", "/mcp/oauth", toolCall("read_file"), bearer(token), 200, "", benchUser},
		// Around them.
		{"apikey tools/list", "/mcp/files", toolsList, apiKey(ownerKey), 200, "", "key-owner"},
		{"apikey search granted exactly", "/mcp/files", toolCall("search"), apiKey(ownerKey), 200, "", "key-owner"},
		{"apikey not the owner", "/mcp/files", toolCall("read_file"), apiKey(otherKey), 403, "access_denied", ""},
		{"apikey disabled", "/mcp/files", toolCall("read_file"), apiKey(disabledKey), 401, "invalid_api_key", ""},
		{"no credentials", "/mcp/files", toolCall("read_file"), nil, 401, "authentication_required", ""},
		{"unknown path", "/other", toolCall("read_file"), apiKey(ownerKey), 404, "not_found", ""},
		{"oauth tool not in scope", "/mcp/oauth", toolCall("delete_file"), bearer(token), 403, "access_denied", ""},
		{"oauth wrong signer", "/mcp/oauth", toolCall("read_file"), bearer(signRS256(t, stranger, "bench-1", claims(nil))), 401, "invalid_token", ""},
		{"oauth expired", "/mcp/oauth", toolCall("read_file"), bearer(signRS256(t, idp, "bench-1", claims(map[string]any{"exp": now - 60}))), 401, "invalid_token", ""},
		{"oauth other audience", "/mcp/oauth", toolCall("read_file"), bearer(signRS256(t, idp, "bench-1", claims(map[string]any{"aud": "https://elsewhere"}))), 401, "invalid_token", ""},
		{"oauth other issuer", "/mcp/oauth", toolCall("read_file"), bearer(signRS256(t, idp, "bench-1", claims(map[string]any{"iss": "https://evil"}))), 401, "invalid_token", ""},
		{"oauth not the owner", "/mcp/oauth", toolCall("read_file"), bearer(signRS256(t, idp, "bench-1", claims(map[string]any{"sub": "someone-else"}))), 403, "access_denied", ""},
		{"batch with one denied call", "/mcp/files", "[" + toolCall("read_file") + "," + toolCall("delete_file") + "]", apiKey(ownerKey), 403, "access_denied", ""},
	}

	for _, mode := range []string{inputProtoMap, inputProtoJSON} {
		t.Run(mode, func(t *testing.T) {
			conn := startPeer(t, config{policies: []string{policy}, data: writeFile(t, "data.json", string(data)), input: mode})
			for _, tc := range cases {
				resp := check(t, conn, checkRequest(tc.path, tc.body, tc.headers))
				if tc.status == 200 {
					ok := resp.GetOkResponse()
					if resp.GetStatus().GetCode() != 0 || ok == nil {
						t.Errorf("%s: want allow, got %v", tc.name, resp)
						continue
					}
					if got := header(ok.GetHeaders(), "x-mcp-principal"); got != tc.principal {
						t.Errorf("%s: principal %q, want %q", tc.name, got, tc.principal)
					}
					if len(ok.GetHeadersToRemove()) != 2 {
						t.Errorf("%s: headers to remove %v", tc.name, ok.GetHeadersToRemove())
					}
					continue
				}
				d := resp.GetDeniedResponse()
				var body struct {
					Error string `json:"error"`
				}
				_ = json.Unmarshal([]byte(d.GetBody()), &body)
				if resp.GetStatus().GetCode() != 7 || uint32(d.GetStatus().GetCode()) != tc.status || body.Error != tc.error {
					t.Errorf("%s: want %d %s, got %v", tc.name, tc.status, tc.error, resp)
				}
			}
		})
	}
}

// BenchmarkCheck is one Check in process (no gRPC): the apikey_tool_allow scenario on the
// benchmark's policy when it is present, else on the small test policy.
func BenchmarkCheck(b *testing.B) {
	for _, mode := range []string{inputProtoMap, inputProtoJSON} {
		b.Run(mode, func(b *testing.B) {
			policy, key, data := writeFile(b, "p.rego", testPolicy), testKey, testData(b)
			if p := os.Getenv("OPA_PEER_BENCH_POLICY"); p != "" {
				policy, key = p, ownerKey
				bs, _ := json.Marshal(map[string]any{"bench": map[string]any{
					"keys":      map[string]any{sha(ownerKey): map[string]any{"id": "key-owner", "userId": benchUser, "permissions": []string{"tools:search", "tools:read_*"}, "disabled": false}},
					"endpoints": []any{map[string]any{"name": "files", "segments": []string{"mcp", "files"}, "owner": benchUser, "apiKey": true, "oauth": false}},
					"oauth":     map[string]any{"issuer": benchIssuer, "jwks": `{"keys":[]}`},
				}})
				data = writeFile(b, "data.json", string(bs))
			}
			a, err := newAuthorizer(b.Context(), config{policies: []string{policy}, data: data, query: defaultQuery, input: mode})
			if err != nil {
				b.Fatal(err)
			}
			req := checkRequest("/mcp/files", toolCall("read_file"), map[string]string{"x-api-key": key})
			b.ReportAllocs()
			for b.Loop() {
				resp, err := a.Check(b.Context(), req)
				if err != nil || resp.GetOkResponse() == nil {
					b.Fatalf("not allowed: %v %v", resp, err)
				}
			}
		})
	}
}
