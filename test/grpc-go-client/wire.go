package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	checkPath   = "/envoy.service.auth.v3.Authorization/Check"
	processPath = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
	mcpHost     = "mcp.example.com"
)

// rpc is a JSON-RPC request body.
func rpc(method string, params any, id int) string {
	m := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		m["params"] = params
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func toolCall(name string) string { return rpc("tools/call", map[string]any{"name": name}, 1) }

func socket(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// checkRequest is a CheckRequest as Envoy's ext_authz filter builds it for a POST with a body.
func checkRequest(path string, headers map[string]string, body string) *authv3.CheckRequest {
	h := map[string]string{
		":authority": mcpHost, ":method": "POST", ":path": path, ":scheme": "https",
		"content-type": "application/json", "content-length": strconv.Itoa(len(body)),
	}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socket("10.1.2.3", 40000)},
		Destination: &authv3.AttributeContext_Peer{Address: socket("10.0.0.1", 8080)},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Unix(1700000000, 0)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "42", Method: "POST", Path: path, Host: mcpHost, Scheme: "https", Protocol: "HTTP/2",
				Headers: h, Body: body, Size: int64(len(body)),
			},
		},
	}}
}

func headerValue(opts []*corev3.HeaderValueOption, name string) (string, bool) {
	for _, o := range opts {
		if o.GetHeader().GetKey() == name {
			return o.GetHeader().GetValue(), true
		}
	}
	return "", false
}

// expectAllow checks an allow for the API key: gRPC OK, identity headers set, the key removed.
func expectAllow(res *authv3.CheckResponse, keyID string) error {
	if res.GetStatus().GetCode() != 0 || res.GetOkResponse() == nil {
		return fmt.Errorf("expected an allow, got status %d %s", res.GetStatus().GetCode(), describeDenied(res))
	}
	ok := res.GetOkResponse()
	if v, _ := headerValue(ok.GetHeaders(), "x-mcp-key-id"); v != keyID {
		return fmt.Errorf("allow sets x-mcp-key-id %q, expected %q", v, keyID)
	}
	if v, _ := headerValue(ok.GetHeaders(), "x-mcp-auth-method"); v != "api_key" {
		return fmt.Errorf("allow sets x-mcp-auth-method %q, expected api_key", v)
	}
	removed := false
	for _, h := range ok.GetHeadersToRemove() {
		removed = removed || h == "x-api-key"
	}
	if !removed {
		return fmt.Errorf("allow does not remove x-api-key (removes %v)", ok.GetHeadersToRemove())
	}
	return nil
}

// expectDeny checks a deny: a non-OK gRPC status, the HTTP status and the JSON error code.
func expectDeny(res *authv3.CheckResponse, status int, code string) error {
	d := res.GetDeniedResponse()
	if res.GetStatus().GetCode() == 0 || d == nil {
		return fmt.Errorf("expected a %d %s deny, got gRPC status %d and no denied_response", status, code, res.GetStatus().GetCode())
	}
	if int(d.GetStatus().GetCode()) != status {
		return fmt.Errorf("expected HTTP %d, got %s", status, describeDenied(res))
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || body.Error != code {
		return fmt.Errorf("expected error %q, got %s", code, describeDenied(res))
	}
	return nil
}

func describeDenied(res *authv3.CheckResponse) string {
	d := res.GetDeniedResponse()
	if d == nil {
		return "(no denied_response)"
	}
	body := d.GetBody()
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	return fmt.Sprintf("denied %d %s", d.GetStatus().GetCode(), body)
}

// ext_proc messages, as Envoy's ext_proc filter sends them: pseudo-headers first, raw values.

func headerMap(pairs [][2]string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for _, p := range pairs {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: p[0], RawValue: []byte(p[1])})
	}
	return m
}

func procRequestHeaders(path string, extra [][2]string, bodyLen int) *extprocv3.ProcessingRequest {
	pairs := [][2]string{{":authority", mcpHost}, {":path", path}, {":method", "POST"}, {":scheme", "https"},
		{"content-type", "application/json"}, {"content-length", strconv.Itoa(bodyLen)}}
	pairs = append(pairs, extra...)
	pairs = append(pairs, [2]string{"x-request-id", "req-grpc-go"})
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(pairs)}},
		Attributes: map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{
			"source.address": structpb.NewStringValue("10.1.2.3:40000"),
		}}},
	}
}

func procRequestBody(body string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true},
	}}
}

func procResponseHeaders(status int, pairs [][2]string) *extprocv3.ProcessingRequest {
	all := append([][2]string{{":status", strconv.Itoa(status)}}, pairs...)
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(all)},
	}}
}

func procResponseBody(body string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: eos},
	}}
}

// setHeader is the value a header mutation sets for name (raw_value or value).
func setHeader(m *extprocv3.HeaderMutation, name string) (string, bool) {
	for _, o := range m.GetSetHeaders() {
		if o.GetHeader().GetKey() == name {
			if raw := o.GetHeader().GetRawValue(); raw != nil {
				return string(raw), true
			}
			return o.GetHeader().GetValue(), true
		}
	}
	return "", false
}

// expectImmediate checks an ext_proc deny: an immediate response with the HTTP status and code.
func expectImmediate(a *extprocv3.ProcessingResponse, status typev3.StatusCode, code string) error {
	im := a.GetImmediateResponse()
	if im == nil {
		return fmt.Errorf("expected an immediate %d response, got %v", status, a)
	}
	if im.GetStatus().GetCode() != status {
		return fmt.Errorf("immediate response %d, expected %d", im.GetStatus().GetCode(), status)
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(im.GetBody(), &body); err != nil || body.Error != code {
		return fmt.Errorf("immediate response body %q, expected error %q", im.GetBody(), code)
	}
	return nil
}
