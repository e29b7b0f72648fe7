// grpc-go-client calls the service's gRPC port with grpc-go, the Go implementation of gRPC,
// and with raw HTTP/2 frames (golang.org/x/net/http2) where grpc-go will not misbehave on
// purpose. It is a second client beside grpc-js, so the service's own gRPC server (and
// grpc-js's) are proven against an implementation that shares no code with them.
//
// It runs in two steps, driven by test/grpc-go-client.test.ts:
//
//  1. It starts a stand-in identity provider on loopback whose JWKS requests are held open
//     (a Check with its token stays inside the service: a call the server holds) and prints
//     "idp <base URL> <issuer names>", for the service's config.
//  2. It reads one JSON line from stdin (the running service's addresses, an API key, the
//     receive limit, the service's pid), runs every case in order and prints one line per
//     case: "PASS <case>: <detail>" or "FAIL <case>: <detail>". After each case the next
//     valid Check must be answered correctly, on the connection every case shares. The last
//     case sends the service SIGTERM.
//
// Exit status: 0 when every case passed, 1 otherwise, 2 on a usage error.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// target is what the test tells the program once the service is up.
type target struct {
	// Server names the gRPC server under test (for the output only).
	Server string `json:"server"`
	// GRPC is the gRPC port's host:port.
	GRPC string `json:"grpc"`
	// Metrics is the service's Prometheus endpoint (http://host:port/metrics).
	Metrics string `json:"metrics"`
	// PID is the service's process id: the shutdown case sends it SIGTERM (0: not run).
	PID int `json:"pid"`
	// APIKey is a key allowed tools/call "search" on FilesPath and nothing destructive.
	APIKey string `json:"apiKey"`
	KeyID  string `json:"keyId"`
	// FilesPath is an endpoint authenticated by API key; TokensPath one by OAuth (the held IdP).
	FilesPath  string `json:"filesPath"`
	TokensPath string `json:"tokensPath"`
	// Resource is the OAuth resource (token audience) of TokensPath.
	Resource string `json:"resource"`
	// MaxMessageBytes is the largest request message the server accepts.
	MaxMessageBytes int `json:"maxMessageBytes"`
	// Only, when set, runs just these cases (for working on one).
	Only []string `json:"only"`
}

type result struct {
	name   string
	detail string
	err    error
}

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: grpc-go-client (then one JSON line on stdin; see main.go)")
		os.Exit(2)
	}
	idp, err := startIdP(heldIssuers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpc-go-client:", err)
		os.Exit(2)
	}
	fmt.Printf("idp %s %s\n", idp.base, strings.Join(heldIssuers, ","))

	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpc-go-client: no target on stdin:", err)
		os.Exit(2)
	}
	var t target
	if err := json.Unmarshal([]byte(line), &t); err != nil {
		fmt.Fprintln(os.Stderr, "grpc-go-client: target:", err)
		os.Exit(2)
	}
	e, err := newEnv(t, idp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpc-go-client:", err)
		os.Exit(2)
	}
	os.Exit(run(e))
}

// run runs the cases and prints one line each; it returns the exit status.
func run(e *env) int {
	only := map[string]bool{}
	for _, n := range e.t.Only {
		only[n] = true
	}
	selected := func(name string) bool { return len(only) == 0 || only[name] }
	passed, failed := 0, 0
	report := func(r result) {
		if r.err != nil {
			failed++
			fmt.Printf("FAIL %s: %s\n", r.name, oneLine(r.err.Error()))
		} else {
			passed++
			fmt.Printf("PASS %s: %s\n", r.name, oneLine(r.detail))
		}
	}

	// Keepalive takes tens of seconds of idle connection (grpc-go pings at most every 10 s):
	// it runs on its own connection beside the other cases and is reported before shutdown.
	var background chan result
	if selected("keepalive") {
		background = make(chan result, 1)
		go func() { background <- runCase(e, "keepalive", keepaliveCase, 3*time.Minute) }()
	}
	for _, c := range cases {
		if selected(c.name) {
			report(runCase(e, c.name, c.fn, c.timeout))
		}
	}
	if background != nil {
		report(<-background)
	}
	if selected("no_goaway") {
		report(runCase(e, "no_goaway", noGoawayCase, time.Minute))
	}
	if selected("shutdown") && e.t.PID > 0 {
		report(runCase(e, "shutdown", shutdownCase, 2*time.Minute))
	}
	fmt.Printf("grpc-go-client %s: %d passed, %d failed\n", e.t.Server, passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// runCase runs one case under a deadline, then the valid Check that must follow it.
func runCase(e *env, name string, fn caseFunc, timeout time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	detail, err := fn(ctx, e)
	if err != nil {
		return result{name: name, err: err}
	}
	if name != "shutdown" {
		if err := e.nextCheck(ctx); err != nil {
			return result{name: name, err: fmt.Errorf("%s; then the next valid Check: %w", detail, err)}
		}
	}
	return result{name: name, detail: detail}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
