package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// env is what every case shares: one grpc-go connection (the way Envoy keeps one to its
// cluster), the clients on it, and the stand-in IdP.
type env struct {
	t      target
	idp    *idp
	sniff  *sniffer
	conn   *grpc.ClientConn
	auth   authv3.AuthorizationClient
	proc   extprocv3.ExternalProcessorClient
	health healthpb.HealthClient
}

func newEnv(t target, p *idp) (*env, error) {
	if t.GRPC == "" || t.APIKey == "" || t.KeyID == "" || t.FilesPath == "" || t.MaxMessageBytes <= 0 {
		return nil, fmt.Errorf("target needs grpc, apiKey, keyId, filesPath and maxMessageBytes")
	}
	s := newSniffer()
	conn, err := dial(t.GRPC, s)
	if err != nil {
		return nil, err
	}
	return &env{t: t, idp: p, sniff: s, conn: conn,
		auth: authv3.NewAuthorizationClient(conn), proc: extprocv3.NewExternalProcessorClient(conn), health: healthpb.NewHealthClient(conn)}, nil
}

// dial makes a grpc-go connection through the sniffer, with the given options added.
func dial(addr string, s *sniffer, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(s.dialer),
		// Large enough for the messages at the limit in both directions.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
	}
	return grpc.NewClient("passthrough:///"+addr, append(base, opts...)...)
}

// allowCheck is a Check the API key is allowed.
func (e *env) allowCheck() *authv3.CheckRequest {
	return checkRequest(e.t.FilesPath, map[string]string{"x-api-key": e.t.APIKey}, toolCall("search"))
}

// nextCheck: the valid Check after each case is answered, and answered right.
func (e *env) nextCheck(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := e.auth.Check(ctx, e.allowCheck())
	if err != nil {
		return err
	}
	return expectAllow(res, e.t.KeyID)
}

// metric reads one sample of the service's /metrics (0 when the series is absent).
func (e *env) metric(ctx context.Context, series string) (float64, error) {
	if e.t.Metrics == "" {
		return 0, fmt.Errorf("no metrics endpoint given")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.t.Metrics, nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, sc.Err()
}

// waitMetric polls a series until it reaches at least want (the service counts after the
// call is over, so the count may trail the client's view by a moment).
func (e *env) waitMetric(ctx context.Context, series string, want float64) (float64, error) {
	for {
		v, err := e.metric(ctx, series)
		if err == nil && v >= want {
			return v, nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return v, err
			}
			return v, fmt.Errorf("%s stayed at %v, expected at least %v", series, v, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
