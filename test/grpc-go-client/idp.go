package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// heldIssuers are the stand-in identity provider's issuers, one per case that needs a call
// held inside the service: the service fetches an issuer's keys on its first token, so each
// case gets a fetch of its own.
var heldIssuers = []string{"deadline", "deadline-raw", "cancel"}

// idp answers no JWKS request until the case releases it: a Check with one of its tokens
// waits inside the service's authentication phase, for as long as the case wants (or the
// service's own fetch timeout, 5 s).
type idp struct {
	base    string
	mu      sync.Mutex
	fetched map[string]chan struct{}
	release map[string]chan struct{}
}

func startIdP(names []string) (*idp, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &idp{base: "http://" + l.Addr().String(), fetched: map[string]chan struct{}{}, release: map[string]chan struct{}{}}
	for _, n := range names {
		p.fetched[n] = make(chan struct{})
		p.release[n] = make(chan struct{})
	}
	go func() { _ = http.Serve(l, p) }()
	return p, nil
}

func (p *idp) issuer(name string) string { return p.base + "/" + name }

// fetchedCh is closed when the service first asks for the issuer's keys.
func (p *idp) fetchedCh(name string) <-chan struct{} { return p.fetched[name] }

// releaseFetch answers the issuer's held requests (503: the service denies, it never allows).
func (p *idp) releaseFetch(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.release[name]:
	default:
		close(p.release[name])
	}
}

func (p *idp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/jwks")
	if !ok || p.fetched[name] == nil {
		http.NotFound(w, r)
		return
	}
	p.mu.Lock()
	select {
	case <-p.fetched[name]:
	default:
		close(p.fetched[name])
	}
	p.mu.Unlock()
	select {
	case <-p.release[name]:
		http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
	case <-r.Context().Done():
	}
}

// heldToken is a JWT of the issuer: well formed, its signature never checked (the keys to
// check it with never arrive).
func (p *idp) heldToken(name, audience string) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	head := enc(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "held-" + name})
	body := enc(map[string]any{"iss": p.issuer(name), "aud": audience, "sub": "held", "scope": "tools:search", "exp": time.Now().Add(time.Hour).Unix()})
	return fmt.Sprintf("%s.%s.%s", head, body, base64.RawURLEncoding.EncodeToString(make([]byte, 64)))
}
