package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	extprocv3filter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // registers the gzip compressor for the compressed case
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

type caseFunc func(ctx context.Context, e *env) (string, error)

// cases run in this order, on the shared connection unless they say otherwise.
var cases = []struct {
	name    string
	fn      caseFunc
	timeout time.Duration
}{
	{"check_allow", checkAllowCase, time.Minute},
	{"check_deny", checkDenyCase, time.Minute},
	{"unknown_method", unknownMethodCase, time.Minute},
	{"health_check", healthCheckCase, time.Minute},
	{"health_watch", healthWatchCase, time.Minute},
	{"ext_proc_flow", extProcFlowCase, time.Minute},
	{"ext_proc_deny", extProcDenyCase, time.Minute},
	{"ext_proc_long_stream", extProcLongStreamCase, 2 * time.Minute},
	{"deadline_unary", deadlineUnaryCase, time.Minute},
	{"deadline_server_unary", deadlineServerUnaryCase, time.Minute},
	{"deadline_stream", deadlineStreamCase, time.Minute},
	{"deadline_server_stream", deadlineServerStreamCase, time.Minute},
	{"cancel_unary", cancelUnaryCase, time.Minute},
	{"cancel_stream", cancelStreamCase, time.Minute},
	{"limit_unary", limitUnaryCase, 2 * time.Minute},
	{"limit_stream", limitStreamCase, 2 * time.Minute},
	{"compressed", compressedCase, time.Minute},
	{"concurrent_streams", concurrentStreamsCase, 3 * time.Minute},
	{"cancel_burst", cancelBurstCase, 3 * time.Minute},
	{"rapid_reset", rapidResetCase, 2 * time.Minute},
}

const cancelledStreams = `mcp_authz_ext_proc_streams_total{result="cancelled"}`

func checkAllowCase(ctx context.Context, e *env) (string, error) {
	res, err := e.auth.Check(ctx, e.allowCheck())
	if err != nil {
		return "", err
	}
	if err := expectAllow(res, e.t.KeyID); err != nil {
		return "", err
	}
	return fmt.Sprintf("tools/call search allowed: x-mcp-key-id %s set, x-api-key removed", e.t.KeyID), nil
}

func checkDenyCase(ctx context.Context, e *env) (string, error) {
	res, err := e.auth.Check(ctx, checkRequest(e.t.FilesPath, map[string]string{"x-api-key": e.t.APIKey}, toolCall("delete_repo")))
	if err != nil {
		return "", err
	}
	if err := expectDeny(res, 403, "access_denied"); err != nil {
		return "", err
	}
	if c := codes.Code(res.GetStatus().GetCode()); c != codes.PermissionDenied {
		return "", fmt.Errorf("a policy deny carries %s, expected PermissionDenied", c)
	}
	res, err = e.auth.Check(ctx, checkRequest(e.t.FilesPath, nil, toolCall("search")))
	if err != nil {
		return "", err
	}
	if err := expectDeny(res, 401, "authentication_required"); err != nil {
		return "", err
	}
	if c := codes.Code(res.GetStatus().GetCode()); c != codes.Unauthenticated {
		return "", fmt.Errorf("no credential carries %s, expected Unauthenticated", c)
	}
	// An OAuth endpoint's 401 carries the Bearer challenge (RFC 6750, RFC 9728 resource_metadata).
	res, err = e.auth.Check(ctx, checkRequest(e.t.TokensPath, nil, toolCall("search")))
	if err != nil {
		return "", err
	}
	if err := expectDeny(res, 401, "authentication_required"); err != nil {
		return "", err
	}
	if v, _ := headerValue(res.GetDeniedResponse().GetHeaders(), "www-authenticate"); !strings.HasPrefix(v, "Bearer ") {
		return "", fmt.Errorf("the OAuth endpoint's 401 challenges with %q, expected Bearer", v)
	}
	return "delete_repo 403 access_denied (PermissionDenied); no key 401 authentication_required (Unauthenticated); no token 401 with a Bearer challenge", nil
}

func unknownMethodCase(ctx context.Context, e *env) (string, error) {
	err := e.conn.Invoke(ctx, "/envoy.service.auth.v3.Authorization/NoSuchMethod", e.allowCheck(), &authv3.CheckResponse{})
	if status.Code(err) != codes.Unimplemented {
		return "", fmt.Errorf("an unknown method answered %v, expected Unimplemented", err)
	}
	return "Unimplemented: " + status.Convert(err).Message(), nil
}

func healthCheckCase(ctx context.Context, e *env) (string, error) {
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		res, err := e.health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			return "", fmt.Errorf("Check(%q): %w", svc, err)
		}
		if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return "", fmt.Errorf("Check(%q) is %s", svc, res.GetStatus())
		}
	}
	// grpc.health.v1: "If the requested service is unknown, the call will fail with status NOT_FOUND."
	res, err := e.health.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	if status.Code(err) != codes.NotFound {
		return "", fmt.Errorf("Check of an unknown service answered %v %v, expected the call to fail with NotFound", res, err)
	}
	return `"" and envoy.service.auth.v3.Authorization SERVING; an unknown service NotFound`, nil
}

func healthWatchCase(ctx context.Context, e *env) (string, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := e.health.Watch(wctx, &healthpb.HealthCheckRequest{Service: ""})
	if err != nil {
		return "", err
	}
	m, err := w.Recv()
	if err != nil {
		return "", fmt.Errorf("Watch: %w", err)
	}
	if m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return "", fmt.Errorf("Watch sent %s first", m.GetStatus())
	}
	// grpc.health.v1: an unknown service is not an error on Watch: SERVICE_UNKNOWN is sent,
	// and the stream stays open (the service may be added later).
	u, err := e.health.Watch(wctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	if err != nil {
		return "", err
	}
	um, err := u.Recv()
	if err != nil {
		return "", fmt.Errorf("Watch of an unknown service: %w", err)
	}
	if um.GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		return "", fmt.Errorf("Watch of an unknown service sent %s, expected SERVICE_UNKNOWN", um.GetStatus())
	}
	cancel()
	if _, err := w.Recv(); status.Code(err) != codes.Canceled {
		return "", fmt.Errorf("after cancelling, Watch ended with %v, expected Canceled", err)
	}
	return "SERVING first, SERVICE_UNKNOWN for an unknown service, cancelled cleanly", nil
}

// exchange sends one ProcessingRequest and reads its one answer.
func exchange(s extprocv3.ExternalProcessor_ProcessClient, m *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	if err := s.Send(m); err != nil {
		if err == io.EOF {
			// The server ended the stream while the message was going out: its status says why.
			_, err = s.Recv()
		}
		return nil, fmt.Errorf("send: %w", err)
	}
	a, err := s.Recv()
	if err != nil {
		return nil, fmt.Errorf("recv: %w", err)
	}
	return a, nil
}

// closeOK half-closes the stream, as Envoy does at the end of a request, and expects OK.
func closeOK(s extprocv3.ExternalProcessor_ProcessClient) error {
	if err := s.CloseSend(); err != nil {
		return err
	}
	if a, err := s.Recv(); err != io.EOF {
		return fmt.Errorf("the stream ended with %v %v, expected OK", a, err)
	}
	return nil
}

const listResult = `{"jsonrpc":"2.0","id":3,"result":{"tools":[` +
	`{"name":"search","description":"Search","inputSchema":{"type":"object"}},` +
	`{"name":"delete_repo","description":"Delete","inputSchema":{"type":"object"}}]}}`

// toolNames reads the tool names of a tools/list result.
func toolNames(body []byte) ([]string, error) {
	var r struct {
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("list result %q: %w", body, err)
	}
	var names []string
	for _, t := range r.Result.Tools {
		names = append(names, t.Name)
	}
	return names, nil
}

// openAllowed opens a Process stream and gets call through its request phase (allowed).
func (e *env) openAllowed(ctx context.Context, call string) (extprocv3.ExternalProcessor_ProcessClient, error) {
	s, err := e.proc.Process(ctx)
	if err != nil {
		return nil, err
	}
	a, err := exchange(s, procRequestHeaders(e.t.FilesPath, [][2]string{{"x-api-key", e.t.APIKey}}, len(call)))
	if err != nil {
		return nil, fmt.Errorf("request headers: %w", err)
	}
	if a.GetRequestHeaders() == nil || a.GetModeOverride().GetRequestBodyMode() != extprocv3filter.ProcessingMode_BUFFERED {
		return nil, fmt.Errorf("request headers answered %v, expected CONTINUE asking for the BUFFERED body", a)
	}
	a, err = exchange(s, procRequestBody(call))
	if err != nil {
		return nil, fmt.Errorf("request body: %w", err)
	}
	if a.GetRequestBody() == nil {
		return nil, fmt.Errorf("request body answered %v, expected the allow's header mutation", a)
	}
	if v, _ := setHeader(a.GetRequestBody().GetResponse().GetHeaderMutation(), "x-mcp-key-id"); v != e.t.KeyID {
		return nil, fmt.Errorf("the allow sets x-mcp-key-id %q, expected %q (%v)", v, e.t.KeyID, a)
	}
	return s, nil
}

func extProcFlowCase(ctx context.Context, e *env) (string, error) {
	s, err := e.openAllowed(ctx, rpc("tools/list", nil, 3))
	if err != nil {
		return "", err
	}
	a, err := exchange(s, procResponseHeaders(200, [][2]string{{"content-type", "application/json"}}))
	if err != nil {
		return "", fmt.Errorf("response headers: %w", err)
	}
	if a.GetResponseHeaders() == nil || a.GetModeOverride().GetResponseBodyMode() != extprocv3filter.ProcessingMode_BUFFERED {
		return "", fmt.Errorf("response headers answered %v, expected the BUFFERED response body to be asked for", a)
	}
	a, err = exchange(s, procResponseBody(listResult, true))
	if err != nil {
		return "", fmt.Errorf("response body: %w", err)
	}
	names, err := toolNames(a.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	if err != nil {
		return "", err
	}
	if strings.Join(names, ",") != "search" {
		return "", fmt.Errorf("the filtered list shows %v, expected [search]", names)
	}
	if err := closeOK(s); err != nil {
		return "", err
	}
	return "request headers → body (allowed, identity headers) → response headers (body asked) → list filtered to [search] → OK", nil
}

func extProcDenyCase(ctx context.Context, e *env) (string, error) {
	call := toolCall("delete_repo")
	s, err := e.proc.Process(ctx)
	if err != nil {
		return "", err
	}
	if _, err := exchange(s, procRequestHeaders(e.t.FilesPath, [][2]string{{"x-api-key", e.t.APIKey}}, len(call))); err != nil {
		return "", err
	}
	a, err := exchange(s, procRequestBody(call))
	if err != nil {
		return "", err
	}
	if err := expectImmediate(a, typev3.StatusCode_Forbidden, "access_denied"); err != nil {
		return "", err
	}
	if err := closeOK(s); err != nil {
		return "", err
	}
	return "delete_repo: immediate response 403 access_denied, stream OK", nil
}

// extProcLongStreamCase: one Process stream carrying a streamed (SSE) list response in many
// chunks, each answered. grpc-go measures the connection's bandwidth-delay product with
// pings while data arrives; a server must not count those as abuse.
func extProcLongStreamCase(ctx context.Context, e *env) (string, error) {
	s, err := e.openAllowed(ctx, rpc("tools/list", nil, 3))
	if err != nil {
		return "", err
	}
	a, err := exchange(s, procResponseHeaders(200, [][2]string{{"content-type", "text/event-stream"}}))
	if err != nil {
		return "", fmt.Errorf("response headers: %w", err)
	}
	if a.GetModeOverride().GetResponseBodyMode() != extprocv3filter.ProcessingMode_STREAMED {
		return "", fmt.Errorf("response headers answered %v, expected the STREAMED body to be asked for", a)
	}
	const chunks = 200
	pingsBefore := e.sniff.count("out PING bdp")
	var out strings.Builder
	for i := 0; i < chunks; i++ {
		chunk := fmt.Sprintf("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":%d,\"message\":%q}}\n\n", i, strings.Repeat("x", 2048))
		last := i == chunks-1
		if last {
			chunk = "event: message\ndata: " + listResult + "\n\n"
		}
		a, err := exchange(s, procResponseBody(chunk, last))
		if err != nil {
			return "", fmt.Errorf("chunk %d: %w", i, err)
		}
		out.Write(a.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	}
	if err := closeOK(s); err != nil {
		return "", err
	}
	body := out.String()
	if !strings.Contains(body, `"name":"search"`) || strings.Contains(body, "delete_repo") || strings.Count(body, "notifications/progress") != chunks-1 {
		return "", fmt.Errorf("the streamed body was not passed and filtered as expected (%d bytes)", len(body))
	}
	if g := e.sniff.goawayList(); len(g) > 0 {
		return "", fmt.Errorf("the server sent %v during the stream", g)
	}
	return fmt.Sprintf("%d chunks answered on one stream, list filtered; %d flow-control pings sent meanwhile, no GOAWAY", chunks, e.sniff.count("out PING bdp")-pingsBefore), nil
}

// heldCheck is a Check whose token's keys never arrive: the service holds it.
func (e *env) heldCheck(issuer string) *authv3.CheckRequest {
	return checkRequest(e.t.TokensPath, map[string]string{"authorization": "Bearer " + e.idp.heldToken(issuer, e.t.Resource)}, toolCall("search"))
}

func fired(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func deadlineUnaryCase(ctx context.Context, e *env) (string, error) {
	defer e.idp.releaseFetch("deadline")
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	res, err := e.auth.Check(cctx, e.heldCheck("deadline"))
	if status.Code(err) != codes.DeadlineExceeded {
		return "", fmt.Errorf("a held Check with a 1 s deadline answered %v %v, expected DeadlineExceeded", describeDenied(res), err)
	}
	return fmt.Sprintf("DeadlineExceeded (the service had asked the IdP for keys: %v)", fired(e.idp.fetchedCh("deadline"))), nil
}

// deadlineServerUnaryCase: no client-side timer, only grpc-timeout: the server must end the
// call with DEADLINE_EXCEEDED itself, both while it waits for the rest of the message and
// while the call is inside the service.
func deadlineServerUnaryCase(ctx context.Context, e *env) (string, error) {
	defer e.idp.releaseFetch("deadline-raw")
	r, err := dialRaw(ctx, e.t.GRPC)
	if err != nil {
		return "", err
	}
	defer r.close()
	full := grpcFrame(e.allowCheck())
	partial, err := r.call(checkPath, [][2]string{{"grpc-timeout", "200m"}}, full[:len(full)/2], false)
	if err != nil {
		return "", err
	}
	held, err := r.call(checkPath, [][2]string{{"grpc-timeout", "500m"}}, grpcFrame(e.heldCheck("deadline-raw")), true)
	if err != nil {
		return "", err
	}
	for _, s := range []*rawStream{partial, held} {
		if err := waitDone(ctx, s); err != nil {
			return "", err
		}
		if code, _, ok := r.status(s); !ok || codes.Code(code) != codes.DeadlineExceeded {
			return "", fmt.Errorf("stream %d (grpc-timeout, no client timer) ended with %s, expected grpc-status 4", s.id, r.describe(s))
		}
	}
	return fmt.Sprintf("grpc-status 4 from the server for a message left half-sent and for a call held inside (its key fetch had begun: %v)", fired(e.idp.fetchedCh("deadline-raw"))), nil
}

func deadlineStreamCase(ctx context.Context, e *env) (string, error) {
	before, err := e.metric(ctx, cancelledStreams)
	if err != nil {
		return "", err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	s, err := e.proc.Process(cctx)
	if err != nil {
		return "", err
	}
	call := toolCall("search")
	answered := false
	if err := s.Send(procRequestHeaders(e.t.FilesPath, [][2]string{{"x-api-key", e.t.APIKey}}, len(call))); err == nil {
		_, err = s.Recv()
		answered = err == nil
	}
	// The stream now waits for a body that never comes.
	_, err = s.Recv()
	if status.Code(err) != codes.DeadlineExceeded {
		return "", fmt.Errorf("the open stream ended with %v, expected DeadlineExceeded", err)
	}
	after, err := e.waitMetric(ctx, cancelledStreams, before+1)
	if err != nil {
		return "", fmt.Errorf("the service did not count the stream as cancelled: %w", err)
	}
	return fmt.Sprintf("DeadlineExceeded on an open stream (request headers answered first: %v); the service counted it cancelled (%v → %v)", answered, before, after), nil
}

func deadlineServerStreamCase(ctx context.Context, e *env) (string, error) {
	before, err := e.metric(ctx, cancelledStreams)
	if err != nil {
		return "", err
	}
	r, err := dialRaw(ctx, e.t.GRPC)
	if err != nil {
		return "", err
	}
	defer r.close()
	call := toolCall("search")
	s, err := r.call(processPath, [][2]string{{"grpc-timeout", "500m"}}, grpcFrame(procRequestHeaders(e.t.FilesPath, [][2]string{{"x-api-key", e.t.APIKey}}, len(call))), false)
	if err != nil {
		return "", err
	}
	if err := waitDone(ctx, s); err != nil {
		return "", err
	}
	if code, _, ok := r.status(s); !ok || codes.Code(code) != codes.DeadlineExceeded {
		return "", fmt.Errorf("the stream (grpc-timeout, no client timer) ended with %s, expected grpc-status 4", r.describe(s))
	}
	msgs, _ := r.messages(s)
	after, err := e.waitMetric(ctx, cancelledStreams, before+1)
	if err != nil {
		return "", fmt.Errorf("the service did not count the stream as cancelled: %w", err)
	}
	return fmt.Sprintf("grpc-status 4 from the server after %d answer(s); counted cancelled (%v → %v)", len(msgs), before, after), nil
}

func cancelUnaryCase(ctx context.Context, e *env) (string, error) {
	defer e.idp.releaseFetch("cancel")
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		res *authv3.CheckResponse
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := e.auth.Check(cctx, e.heldCheck("cancel"))
		done <- answer{res, err}
	}()
	select {
	case <-e.idp.fetchedCh("cancel"):
		cancel() // the call is inside the service, waiting for the IdP
	case a := <-done:
		return "", fmt.Errorf("the held Check was answered before it could be cancelled: %v %v", describeDenied(a.res), a.err)
	case <-ctx.Done():
		return "", fmt.Errorf("the service never asked the IdP for keys")
	}
	a := <-done
	if status.Code(a.err) != codes.Canceled {
		return "", fmt.Errorf("the cancelled Check ended with %v %v, expected Canceled", describeDenied(a.res), a.err)
	}
	return "cancelled while the service waited for the IdP: Canceled", nil
}

func cancelStreamCase(ctx context.Context, e *env) (string, error) {
	before, err := e.metric(ctx, cancelledStreams)
	if err != nil {
		return "", err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := e.proc.Process(cctx)
	if err != nil {
		return "", err
	}
	call := toolCall("search")
	if _, err := exchange(s, procRequestHeaders(e.t.FilesPath, [][2]string{{"x-api-key", e.t.APIKey}}, len(call))); err != nil {
		return "", err
	}
	cancel()
	if _, err := s.Recv(); status.Code(err) != codes.Canceled {
		return "", fmt.Errorf("the cancelled stream ended with %v, expected Canceled", err)
	}
	after, err := e.waitMetric(ctx, cancelledStreams, before+1)
	if err != nil {
		return "", fmt.Errorf("the service did not count the stream as cancelled: %w", err)
	}
	return fmt.Sprintf("Canceled mid-stream; the service counted it cancelled (%v → %v)", before, after), nil
}

// sized finds n (and a small pad) for which build's message is exactly size bytes.
func sized(size int, build func(n, pad int) proto.Message) (proto.Message, error) {
	for pad := 0; pad < 4; pad++ {
		n0 := size - proto.Size(build(0, pad))
		for n := n0; n >= 0 && n > n0-24; n-- {
			m := build(n, pad)
			if proto.Size(m) == size {
				return m, nil
			}
		}
	}
	return nil, fmt.Errorf("no message of exactly %d bytes", size)
}

// sameConnection: the case's calls left the shared connection up (no new dial, no GOAWAY).
func (e *env) sameConnection(dials int32) error {
	if d := e.sniff.dials.Load(); d != dials {
		return fmt.Errorf("the connection was replaced (%d dials, was %d; GOAWAYs %v)", d, dials, e.sniff.goawayList())
	}
	if g := e.sniff.goawayList(); len(g) > 0 {
		return fmt.Errorf("the server sent %v", g)
	}
	return nil
}

func limitUnaryCase(ctx context.Context, e *env) (string, error) {
	max := e.t.MaxMessageBytes
	filler := strings.Repeat("a", max)
	build := func(n, pad int) proto.Message {
		body := filler[:n]
		return checkRequest(e.t.FilesPath, map[string]string{"x-api-key": e.t.APIKey, "x-pad": strings.Repeat("p", pad)}, body)
	}
	dials := e.sniff.dials.Load()
	at, err := sized(max, build)
	if err != nil {
		return "", err
	}
	res, err := e.auth.Check(ctx, at.(*authv3.CheckRequest))
	if err != nil {
		return "", fmt.Errorf("a Check of exactly the limit (%d bytes) failed: %w", max, err)
	}
	if err := expectDeny(res, 413, "body_too_large"); err != nil {
		return "", fmt.Errorf("a Check of exactly the limit: %w", err)
	}
	over, err := sized(max+1, build)
	if err != nil {
		return "", err
	}
	_, err = e.auth.Check(ctx, over.(*authv3.CheckRequest))
	if status.Code(err) != codes.ResourceExhausted {
		return "", fmt.Errorf("a Check one byte over the limit answered %v, expected ResourceExhausted", err)
	}
	if err := e.sameConnection(dials); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d bytes: answered 413 body_too_large; %d bytes: ResourceExhausted (%s); connection kept", max, max+1, status.Convert(err).Message()), nil
}

func limitStreamCase(ctx context.Context, e *env) (string, error) {
	max := e.t.MaxMessageBytes
	filler := []byte(strings.Repeat("a", max))
	build := func(n, pad int) proto.Message {
		m := procRequestBody(string(filler[:n]))
		m.GetRequestBody().Body = filler[:n]
		if pad > 0 {
			m.ObservabilityMode = pad%2 == 1
		}
		return m
	}
	dials := e.sniff.dials.Load()
	at, err := sized(max, build)
	if err != nil {
		return "", err
	}
	bodyLen := len(at.(*extprocv3.ProcessingRequest).GetRequestBody().GetBody())
	s, err := e.proc.Process(ctx)
	if err != nil {
		return "", err
	}
	if _, err := exchange(s, procRequestHeaders(e.t.FilesPath, [][2]string{{"x-api-key", e.t.APIKey}}, bodyLen)); err != nil {
		return "", err
	}
	a, err := exchange(s, at.(*extprocv3.ProcessingRequest))
	if err != nil {
		return "", fmt.Errorf("a message of exactly the limit (%d bytes): %w", max, err)
	}
	if err := expectImmediate(a, typev3.StatusCode_PayloadTooLarge, "body_too_large"); err != nil {
		return "", fmt.Errorf("a message of exactly the limit: %w", err)
	}
	if err := closeOK(s); err != nil {
		return "", err
	}

	over, err := sized(max+1, build)
	if err != nil {
		return "", err
	}
	s, err = e.proc.Process(ctx)
	if err != nil {
		return "", err
	}
	if _, err := exchange(s, procRequestHeaders(e.t.FilesPath, [][2]string{{"x-api-key", e.t.APIKey}}, bodyLen+1)); err != nil {
		return "", err
	}
	_, err = exchange(s, over.(*extprocv3.ProcessingRequest))
	if status.Code(errors.Unwrap(err)) != codes.ResourceExhausted {
		return "", fmt.Errorf("a message one byte over the limit, after an answer: %v, expected ResourceExhausted", err)
	}
	// The same as the stream's first message: the status comes alone (trailers-only).
	s, err = e.proc.Process(ctx)
	if err != nil {
		return "", err
	}
	_, err = exchange(s, over.(*extprocv3.ProcessingRequest))
	if status.Code(errors.Unwrap(err)) != codes.ResourceExhausted {
		return "", fmt.Errorf("a first message one byte over the limit: %v, expected ResourceExhausted", err)
	}
	if err := e.sameConnection(dials); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d bytes: immediate 413 body_too_large; %d bytes, after an answer and as the first message: ResourceExhausted; connection kept", max, max+1), nil
}

func compressedCase(ctx context.Context, e *env) (string, error) {
	var header, trailer metadata.MD
	res, err := e.auth.Check(ctx, e.allowCheck(), grpc.UseCompressor("gzip"), grpc.Header(&header), grpc.Trailer(&trailer))
	if err == nil {
		if err := expectAllow(res, e.t.KeyID); err != nil {
			return "", fmt.Errorf("a gzip-compressed Check: %w", err)
		}
		return "a gzip-compressed Check is read and answered", nil
	}
	if status.Code(err) != codes.Unimplemented {
		return "", fmt.Errorf("a gzip-compressed Check answered %v, expected an answer or Unimplemented", err)
	}
	accept := append(header.Get("grpc-accept-encoding"), trailer.Get("grpc-accept-encoding")...)
	return fmt.Sprintf("gzip refused with Unimplemented (%s; grpc-accept-encoding %v)", status.Convert(err).Message(), accept), nil
}

// concurrentStreamsCase holds many Process streams open at once on the shared connection
// (past MAX_CONCURRENT_STREAMS when the server sets one), with Checks answered among them.
func concurrentStreamsCase(ctx context.Context, e *env) (string, error) {
	r, err := dialRaw(ctx, e.t.GRPC)
	if err != nil {
		return "", err
	}
	limit, limited := r.setting(http2.SettingMaxConcurrentStreams)
	r.close()
	n := 500
	if limited && int64(limit) < int64(n) {
		n = int(limit) + 50
	}
	allAtOnce := !limited || int64(limit) >= int64(n)
	call := toolCall("search")
	var opened, finished sync.WaitGroup
	allOpen := make(chan struct{})
	errs := make(chan error, n+100)
	opened.Add(n)
	finished.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer finished.Done()
			once := sync.OnceFunc(opened.Done)
			defer once()
			s, err := e.proc.Process(ctx)
			if err != nil {
				errs <- err
				return
			}
			if _, err := exchange(s, procRequestHeaders(e.t.FilesPath, [][2]string{{"x-api-key", e.t.APIKey}}, len(call))); err != nil {
				errs <- err
				return
			}
			once()
			if allAtOnce {
				select {
				case <-allOpen:
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
			}
			a, err := exchange(s, procRequestBody(call))
			if err != nil {
				errs <- err
				return
			}
			if v, _ := setHeader(a.GetRequestBody().GetResponse().GetHeaderMutation(), "x-mcp-key-id"); v != e.t.KeyID {
				errs <- fmt.Errorf("a stream's allow sets x-mcp-key-id %q", v)
				return
			}
			if err := closeOK(s); err != nil {
				errs <- err
			}
		}()
	}
	opened.Wait()
	checks := 0
	if allAtOnce {
		// Every stream is open and waiting: Checks still go through among them.
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.auth.Check(ctx, e.allowCheck())
				if err == nil {
					err = expectAllow(res, e.t.KeyID)
				}
				if err != nil {
					errs <- fmt.Errorf("a Check among the open streams: %w", err)
				}
			}()
		}
		wg.Wait()
		checks = 50
	}
	close(allOpen)
	finished.Wait()
	close(errs)
	var list []string
	for err := range errs {
		list = append(list, err.Error())
	}
	if len(list) > 0 {
		return "", fmt.Errorf("%d of %d streams or Checks failed, first: %s", len(list), n, list[0])
	}
	adv := "no MAX_CONCURRENT_STREAMS"
	if limited {
		adv = fmt.Sprintf("MAX_CONCURRENT_STREAMS %d", limit)
	}
	return fmt.Sprintf("server advertises %s; %d streams open at once: %v; all allowed and closed OK; %d Checks among them", adv, n, allAtOnce, checks), nil
}

// cancelBurstCase: a client that gives up on many calls at once — Envoy when the service
// stalls past its ext_authz timeout, or a wave of downstream disconnects — cancels each with
// RST_STREAM. Each call here was opened and answered first (no rapid reset: the server did
// its work), then cancelled; the connection must stay up for the calls still on it. It is a
// connection of its own, so the shared one's record stays its own.
func cancelBurstCase(ctx context.Context, e *env) (string, error) {
	const n, workers = 2000, 50
	before, err := e.metric(ctx, cancelledStreams)
	if err != nil {
		return "", err
	}
	sn := newSniffer()
	conn, err := dial(e.t.GRPC, sn)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	proc := extprocv3.NewExternalProcessorClient(conn)
	call := toolCall("search")
	jobs := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				cctx, cancel := context.WithCancel(ctx)
				s, err := proc.Process(cctx)
				if err == nil {
					_, err = exchange(s, procRequestHeaders(e.t.FilesPath, [][2]string{{"x-api-key", e.t.APIKey}}, len(call)))
				}
				cancel()
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err, failed := <-errs; failed {
		return "", fmt.Errorf("%d of %d calls failed before their cancellation, first: %v (GOAWAYs %v)", len(errs)+1, n, err, sn.goawayList())
	}
	// Then a Check on the same connection.
	res, err := authv3.NewAuthorizationClient(conn).Check(ctx, e.allowCheck())
	if err == nil {
		err = expectAllow(res, e.t.KeyID)
	}
	if err != nil {
		return "", fmt.Errorf("a Check after the cancellations: %w", err)
	}
	if g := sn.goawayList(); len(g) > 0 || sn.dials.Load() != 1 {
		return "", fmt.Errorf("the connection went away after %d RST_STREAM: %d dials, %v", sn.count("out RST_STREAM"), sn.dials.Load(), g)
	}
	after, err := e.waitMetric(ctx, cancelledStreams, before+n)
	if err != nil {
		return "", fmt.Errorf("the service did not count every stream as cancelled: %w", err)
	}
	return fmt.Sprintf("%d answered streams cancelled (%d RST_STREAM sent) on one connection: kept, no GOAWAY, the next Check on it answered; counted cancelled %v → %v", n, sn.count("out RST_STREAM"), before, after), nil
}

// rapidResetCase: HEADERS then RST_STREAM, again and again, on a raw connection (the
// "rapid reset" attack, CVE-2023-44487). The server may close that connection; it must
// keep serving everyone else.
func rapidResetCase(ctx context.Context, e *env) (string, error) {
	r, err := dialRaw(ctx, e.t.GRPC)
	if err != nil {
		return "", err
	}
	defer r.close()
	const total = 30000
	partial := grpcFrame(e.allowCheck())
	partial = partial[:len(partial)/2]
	sent := 0
	var werr error
	for sent < total && werr == nil {
		werr = r.write(func() error {
			for i := 0; i < 100; i++ {
				path := checkPath
				if i%2 == 1 {
					path = processPath
				}
				s, err := r.openLocked(path, nil)
				if err != nil {
					return err
				}
				if i%4 == 3 {
					if err := r.fr.WriteData(s.id, false, partial); err != nil {
						return err
					}
				}
				if err := r.fr.WriteRSTStream(s.id, http2.ErrCodeCancel); err != nil {
					return err
				}
				sent++
			}
			return nil
		})
		if fired(r.goawayCh) || fired(r.closedCh) {
			break
		}
	}
	// Then a valid Check on the same connection, if the server kept it.
	var outcome string
	if !fired(r.goawayCh) && !fired(r.closedCh) && werr == nil {
		s, err := r.call(checkPath, nil, grpcFrame(e.allowCheck()), true)
		if err != nil {
			return "", err
		}
		if err := waitDone(ctx, s); err != nil {
			return "", err
		}
		if code, _, _ := r.status(s); code != 0 || fired(r.goawayCh) {
			outcome = "then a Check on it: " + r.describe(s)
		} else {
			msgs, err := r.messages(s)
			if err != nil || len(msgs) != 1 {
				return "", fmt.Errorf("the Check after the burst returned %d messages (%v)", len(msgs), err)
			}
			res := &authv3.CheckResponse{}
			if err := proto.Unmarshal(msgs[0], res); err != nil {
				return "", err
			}
			if err := expectAllow(res, e.t.KeyID); err != nil {
				return "", fmt.Errorf("the Check after the burst: %w", err)
			}
			outcome = "the connection stayed up and answered the next Check"
		}
	}
	if g := r.goawayList(); len(g) > 0 {
		outcome = fmt.Sprintf("%s, by when %d streams had been written", g[0], sent)
	} else if fired(r.closedCh) || werr != nil {
		outcome = fmt.Sprintf("the connection was closed after %d streams (%v)", sent, werr)
	}
	// A fresh connection is served (the shared one is checked after every case).
	r2, err := dialRaw(ctx, e.t.GRPC)
	if err != nil {
		return "", fmt.Errorf("after the burst, a new connection: %w", err)
	}
	defer r2.close()
	s, err := r2.call(checkPath, nil, grpcFrame(e.allowCheck()), true)
	if err != nil {
		return "", err
	}
	if err := waitDone(ctx, s); err != nil {
		return "", err
	}
	if code, _, ok := r2.status(s); !ok || code != 0 {
		return "", fmt.Errorf("after the burst, a Check on a new connection: %s", r2.describe(s))
	}
	return fmt.Sprintf("%d streams opened and reset: %s", sent, outcome), nil
}

// keepaliveCase: a grpc-go connection with keepalive pings (every 10 s, grpc-go's minimum,
// with PermitWithoutStream), first while a stream is open, then with none: every ping is
// answered and neither side goes away.
func keepaliveCase(ctx context.Context, e *env) (string, error) {
	s := newSniffer()
	conn, err := dial(e.t.GRPC, s, grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 20 * time.Second, PermitWithoutStream: true}))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	auth := authv3.NewAuthorizationClient(conn)
	check := func() error {
		res, err := auth.Check(ctx, e.allowCheck())
		if err != nil {
			return err
		}
		return expectAllow(res, e.t.KeyID)
	}
	if err := check(); err != nil {
		return "", err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := healthpb.NewHealthClient(conn).Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return "", err
	}
	if _, err := w.Recv(); err != nil {
		return "", err
	}
	acks := func(n int) func() bool { return func() bool { return s.count("in PING ACK keepalive") >= n } }
	if err := s.waitFor(ctx, acks(1)); err != nil {
		return "", fmt.Errorf("no keepalive ping answered while a stream was open (%v; GOAWAYs %v)", err, s.goawayList())
	}
	cancel()
	if err := s.waitFor(ctx, acks(3)); err != nil {
		return "", fmt.Errorf("keepalive pings without a stream: %d answered (%v; GOAWAYs %v)", s.count("in PING ACK keepalive"), err, s.goawayList())
	}
	if err := check(); err != nil {
		return "", fmt.Errorf("after the pings: %w", err)
	}
	if g := s.goawayList(); len(g) > 0 || s.dials.Load() != 1 {
		return "", fmt.Errorf("the connection went away: %d dials, %v", s.dials.Load(), g)
	}
	return fmt.Sprintf("%d keepalive pings sent and %d answered (one with a stream open), one connection throughout, no GOAWAY", s.count("out PING keepalive"), s.count("in PING ACK keepalive")), nil
}

// noGoawayCase: every case before ran on one connection the server never sent GOAWAY on.
func noGoawayCase(_ context.Context, e *env) (string, error) {
	if g := e.sniff.goawayList(); len(g) > 0 {
		return "", fmt.Errorf("the server sent %v on the shared connection", g)
	}
	if d := e.sniff.dials.Load(); d != 1 {
		return "", fmt.Errorf("the shared connection was dialled %d times", d)
	}
	return fmt.Sprintf("one connection for every case, no GOAWAY; pings out %d (bdp) / in %d, acks in %d", e.sniff.count("out PING bdp"), e.sniff.count("in PING keepalive")+e.sniff.count("in PING bdp"), e.sniff.count("in PING ACK bdp")), nil
}

// shutdownCase: SIGTERM while calls are in flight. The server says GOAWAY on every
// connection and health turns NOT_SERVING; calls in flight finish with their real answers;
// a new call fails cleanly (UNAVAILABLE: nothing listens any more), it does not hang.
func shutdownCase(ctx context.Context, e *env) (string, error) {
	call := toolCall("search")
	s, err := e.proc.Process(ctx)
	if err != nil {
		return "", err
	}
	if _, err := exchange(s, procRequestHeaders(e.t.FilesPath, [][2]string{{"x-api-key", e.t.APIKey}}, len(call))); err != nil {
		return "", err
	}
	w, err := e.health.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return "", err
	}
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return "", fmt.Errorf("Watch before SIGTERM: %v %v", m, err)
	}
	r, err := dialRaw(ctx, e.t.GRPC)
	if err != nil {
		return "", err
	}
	defer r.close()
	full := grpcFrame(e.allowCheck())
	half, err := r.call(checkPath, nil, full[:len(full)/2], false)
	if err != nil {
		return "", err
	}
	if err := syscall.Kill(e.t.PID, syscall.SIGTERM); err != nil {
		return "", fmt.Errorf("SIGTERM: %w", err)
	}

	m, err := w.Recv()
	if err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		return "", fmt.Errorf("after SIGTERM, Watch sent %v %v, expected NOT_SERVING", m, err)
	}
	if _, err := w.Recv(); err != io.EOF {
		return "", fmt.Errorf("after NOT_SERVING, Watch ended with %v, expected OK", err)
	}
	if err := e.sniff.waitFor(ctx, func() bool { return len(e.sniff.goawayList()) > 0 }); err != nil {
		return "", fmt.Errorf("no GOAWAY on the grpc-go connection: %w", err)
	}
	select {
	case <-r.goawayCh:
	case <-ctx.Done():
		return "", fmt.Errorf("no GOAWAY on the raw connection")
	}

	// The calls in flight finish.
	if err := r.send(half, full[len(full)/2:], true); err != nil {
		return "", fmt.Errorf("the rest of the half-sent Check: %w", err)
	}
	if err := waitDone(ctx, half); err != nil {
		return "", err
	}
	msgs, _ := r.messages(half)
	if code, _, ok := r.status(half); !ok || code != 0 || len(msgs) != 1 {
		return "", fmt.Errorf("the Check in flight ended with %s and %d messages", r.describe(half), len(msgs))
	}
	res := &authv3.CheckResponse{}
	if err := proto.Unmarshal(msgs[0], res); err != nil {
		return "", err
	}
	if err := expectAllow(res, e.t.KeyID); err != nil {
		return "", fmt.Errorf("the Check in flight: %w", err)
	}
	a, err := exchange(s, procRequestBody(call))
	if err != nil {
		return "", fmt.Errorf("the Process stream in flight: %w", err)
	}
	if v, _ := setHeader(a.GetRequestBody().GetResponse().GetHeaderMutation(), "x-mcp-key-id"); v != e.t.KeyID {
		return "", fmt.Errorf("the Process stream in flight was answered %v", a)
	}
	if err := closeOK(s); err != nil {
		return "", fmt.Errorf("the Process stream in flight: %w", err)
	}

	// A new call goes nowhere, and says so.
	_, err = e.auth.Check(ctx, e.allowCheck())
	if status.Code(err) != codes.Unavailable {
		return "", fmt.Errorf("a new Check after GOAWAY answered %v, expected Unavailable", err)
	}
	return fmt.Sprintf("NOT_SERVING then Watch ended OK; GOAWAY on both connections (%s); the half-sent Check and the open stream finished with their allows; a new Check: Unavailable", strings.Join(e.sniff.goawayList(), "; ")), nil
}
