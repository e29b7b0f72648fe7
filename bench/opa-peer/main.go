// Command opa-peer answers Envoy ext_authz v3 Check calls with a Rego policy, doing on the
// request path the work opa-envoy-plugin does there: the CheckRequest becomes the same
// input document, one query prepared at start is evaluated with OPA's Go evaluator, and
// the decision is mapped to a CheckResponse the same way. The benchmark runs it in place
// of opa-envoy-plugin, which the module proxy does not serve. See README.md.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// The plugin's default `path: envoy/authz/decision`, as a query.
const defaultQuery = "data.envoy.authz.decision"

// opa-envoy-plugin's gRPC limits (grpc-go's defaults, set explicitly by the plugin).
const (
	maxRecvMsgSize = 4 << 20
	maxSendMsgSize = 1<<31 - 1
)

type config struct {
	addr     string
	policies []string
	data     string
	query    string
	input    string
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func parseFlags(args []string) (config, error) {
	var c config
	var policies stringList
	fs := flag.NewFlagSet("opa-peer", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:9191", "listen address (port 0 picks one; the bound address is printed)")
	fs.Var(&policies, "policy", "Rego module to load (repeatable)")
	fs.StringVar(&c.data, "data", "", "JSON file loaded as data (the document root)")
	fs.StringVar(&c.query, "query", defaultQuery, "the decision query")
	fs.StringVar(&c.input, "input", inputProtoMap, "how the CheckRequest becomes input: protomap (opa-envoy-plugin v1.x) or protojson (older releases)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.policies = policies
	if len(c.policies) == 0 {
		return c, errors.New("at least one --policy is required")
	}
	if c.input != inputProtoMap && c.input != inputProtoJSON {
		return c, fmt.Errorf("--input must be %s or %s", inputProtoMap, inputProtoJSON)
	}
	return c, nil
}

// authorizer is the Check service: one prepared query over one in-memory store.
type authorizer struct {
	authv3.UnimplementedAuthorizationServer

	query    rego.PreparedEvalQuery
	store    storage.Store
	cache    cache.InterQueryCache
	input    string
	errorLog rateLimitedLog
}

func newAuthorizer(ctx context.Context, c config) (*authorizer, error) {
	data := map[string]any{}
	if c.data != "" {
		bs, err := os.ReadFile(c.data)
		if err != nil {
			return nil, err
		}
		if err := util.UnmarshalJSON(bs, &data); err != nil {
			return nil, fmt.Errorf("%s: %w", c.data, err)
		}
	}
	store := inmem.NewFromObject(data)

	opts := []func(*rego.Rego){
		rego.Query(c.query),
		rego.Store(store),
		rego.EnablePrintStatements(true),
	}
	for _, p := range c.policies {
		bs, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		opts = append(opts, rego.Module(p, string(bs)))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	cacheConfig, err := cache.ParseCachingConfig(nil)
	if err != nil {
		return nil, err
	}
	return &authorizer{
		query: pq,
		store: store,
		cache: cache.NewInterQueryCacheWithContext(ctx, cacheConfig),
		input: c.input,
	}, nil
}

// Check follows opa-envoy-plugin's Check: a decision id and metrics per call, a read
// transaction on the store, the input document, its conversion to an AST value, one
// evaluation of the prepared query, and the decision mapped to a response carrying the
// decision id in its dynamic metadata.
func (a *authorizer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	m := metrics.New()
	m.Timer(metrics.ServerHandler).Start()
	defer m.Timer(metrics.ServerHandler).Stop()
	decisionID := newDecisionID()

	txn, err := a.store.NewTransaction(ctx, storage.TransactionParams{})
	if err != nil {
		return nil, err
	}
	defer a.store.Abort(ctx, txn)

	input, err := requestToInput(req, a.input)
	if err != nil {
		// As the plugin does: a request it cannot turn into input is denied with 400.
		return withDecisionID(deniedResponse(typev3.StatusCode_BadRequest, err.Error()), decisionID), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	value, err := ast.InterfaceToValue(input)
	if err != nil {
		return a.undecided(decisionID, err), nil
	}

	rs, err := a.query.Eval(ctx,
		rego.EvalParsedInput(value),
		rego.EvalTransaction(txn),
		rego.EvalMetrics(m),
		rego.EvalInterQueryBuiltinCache(a.cache),
		rego.EvalPrintHook(printHook{decisionID}),
	)
	switch {
	case err != nil:
		return a.undecided(decisionID, err), nil
	case len(rs) == 0:
		return a.undecided(decisionID, errors.New("undefined decision")), nil
	case len(rs) > 1:
		return a.undecided(decisionID, errors.New("multiple evaluation results")), nil
	}
	resp, err := decisionToResponse(rs[0].Expressions[0].Value)
	if err != nil {
		return a.undecided(decisionID, err), nil
	}
	return withDecisionID(resp, decisionID), nil
}

// undecided denies (403) a call the policy gave no usable decision for, and says why in
// the log at most once a second.
func (a *authorizer) undecided(decisionID string, err error) *authv3.CheckResponse {
	a.errorLog.printf("no decision (%s): %v", decisionID, err)
	return withDecisionID(deniedResponse(typev3.StatusCode_Forbidden, "no decision"), decisionID)
}

func withDecisionID(resp *authv3.CheckResponse, id string) *authv3.CheckResponse {
	if resp.DynamicMetadata == nil {
		resp.DynamicMetadata = &structpb.Struct{Fields: make(map[string]*structpb.Value, 1)}
	}
	resp.DynamicMetadata.Fields["decision_id"] = structpb.NewStringValue(id)
	return resp
}

// newDecisionID returns a random (version 4) UUID, as the plugin mints one per call.
func newDecisionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// printHook sends the policy's print() output to the log, tagged with the decision id.
type printHook struct{ decisionID string }

func (h printHook) Print(pctx print.Context, msg string) error {
	log.Printf("%v: %s (decision %s)", pctx.Location, msg, h.decisionID)
	return nil
}

// rateLimitedLog prints at most one line a second; the rest are counted and reported
// with the next line printed.
type rateLimitedLog struct {
	last       atomic.Int64
	suppressed atomic.Int64
}

func (l *rateLimitedLog) printf(format string, args ...any) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(time.Second) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	msg := fmt.Sprintf(format, args...)
	if n := l.suppressed.Swap(0); n > 0 {
		msg += fmt.Sprintf(" (%d more since the last line)", n)
	}
	log.Print(msg)
}

func run(args []string) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, c, os.Stdout)
}

// serve loads the policy, listens, writes "listening on ADDR" to out, and serves until
// ctx ends (SIGTERM or SIGINT in the command), then stops gracefully: calls in flight
// finish, new ones are refused.
func serve(ctx context.Context, c config, out io.Writer) error {
	a, err := newAuthorizer(ctx, c)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}

	srv := grpc.NewServer(grpc.MaxRecvMsgSize(maxRecvMsgSize), grpc.MaxSendMsgSize(maxSendMsgSize))
	authv3.RegisterAuthorizationServer(srv, a)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	fmt.Fprintf(out, "listening on %s\n", lis.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Print("shutting down")
	hs.Shutdown()
	srv.GracefulStop()
	return <-served
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "opa-peer:", err)
		os.Exit(1)
	}
}
