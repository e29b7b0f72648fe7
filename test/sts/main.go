// A real RFC 8693 security token service for the tests: the OpenID provider of
// github.com/zitadel/oidc (its token endpoint implements token exchange, client
// credentials and private_key_jwt client authentication) over a small in-memory storage.
//
// It exchanges access tokens issued by another issuer (the tests' IdP, whose JWKS it
// fetches) for JWT access tokens whose audience is the one requested, and counts every
// token-endpoint request so a test can prove how many exchanges reached it.
//
// Flags: -subject-issuer, -subject-jwks (the IdP whose tokens it accepts as subject and
// actor tokens), -client-secret-file, -client-key-file (PEM public key of the
// private_key_jwt client), -lifetime. It prints {"issuer":…} on stdout once listening.
//
// Test controls (not part of any standard): GET /stats → {"token":N,"exchange":N,"client_credentials":N};
// POST /mode?m=normal|garbage|refuse|hang|hold|error500 changes how /oauth/token answers;
// POST /release answers the requests "hold" keeps waiting.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

func main() {
	subjectIssuer := flag.String("subject-issuer", "", "issuer of the subject tokens it accepts")
	subjectJWKS := flag.String("subject-jwks", "", "JWKS URL of that issuer")
	secretFile := flag.String("client-secret-file", "", "secret of the client \"mcp-authz\"")
	keyFile := flag.String("client-key-file", "", "PEM public key of the client \"mcp-authz-jwt\" (private_key_jwt)")
	lifetime := flag.Duration("lifetime", 5*time.Minute, "lifetime of the tokens it issues")
	flag.Parse()
	if *subjectIssuer == "" || *subjectJWKS == "" || *secretFile == "" {
		log.Fatal("sts: -subject-issuer, -subject-jwks and -client-secret-file are required")
	}
	secret, err := os.ReadFile(*secretFile)
	if err != nil {
		log.Fatal(err)
	}
	var clientKey *jose.JSONWebKey
	if *keyFile != "" {
		clientKey, err = readPublicKey(*keyFile)
		if err != nil {
			log.Fatal(err)
		}
	}
	signing, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()

	st := &storage{
		secret:       strings.TrimSpace(string(secret)),
		clientKey:    clientKey,
		lifetime:     *lifetime,
		signing:      signingKey{id: "sts-1", key: signing},
		subjectCheck: op.NewAccessTokenVerifier(*subjectIssuer, rp.NewRemoteKeySet(http.DefaultClient, *subjectJWKS)),
	}
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		log.Fatal(err)
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:                cryptoKey,
		DefaultLogoutRedirectURI: "/",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		AuthMethodPrivateKeyJWT:  true,
		GrantTypeRefreshToken:    false,
		SupportedUILocales:       nil,
	}, st, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		log.Fatal(err)
	}
	handler := op.RegisterLegacyServer(op.NewLegacyServer(provider, *op.DefaultEndpoints), func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) })

	ctl := &control{mode: "normal"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int64{"token": ctl.token.Load(), "exchange": ctl.exchange.Load(), "client_credentials": ctl.clientCredentials.Load()})
	})
	mux.HandleFunc("POST /release", func(w http.ResponseWriter, _ *http.Request) {
		ctl.release()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /mode", func(w http.ResponseWriter, r *http.Request) {
		ctl.setMode(r.URL.Query().Get("m"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		ctl.token.Add(1)
		_ = r.ParseForm()
		switch oidc.GrantType(r.PostForm.Get("grant_type")) {
		case oidc.GrantTypeTokenExchange:
			ctl.exchange.Add(1)
		case oidc.GrantTypeClientCredentials:
			ctl.clientCredentials.Add(1)
		}
		switch ctl.getMode() {
		case "garbage":
			w.Header().Set("content-type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":`))
			return
		case "refuse":
			w.Header().Set("content-type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"refused by the test"}`))
			return
		case "error500":
			w.WriteHeader(http.StatusInternalServerError)
			return
		case "hold":
			// Held until POST /release, then answered normally.
			select {
			case <-ctl.gate():
			case <-r.Context().Done():
				return
			}
		case "hang":
			// Answers only when the client gives up (or the server stops).
			<-r.Context().Done()
			return
		}
		// The client credentials grant has no audience field in the library's request type:
		// the requested audience and resource travel to the storage in the context.
		target := append(append([]string{}, r.PostForm["audience"]...), r.PostForm["resource"]...)
		handler.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), audienceKey{}, target)))
	})
	mux.Handle("/", handler)

	out, _ := json.Marshal(map[string]string{"issuer": issuer, "token_endpoint": issuer + "/oauth/token", "jwks_uri": issuer + "/keys"})
	fmt.Println(string(out))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

type audienceKey struct{}

type control struct {
	mu                                 sync.Mutex
	mode                               string
	held                               chan struct{}
	token, exchange, clientCredentials atomic.Int64
}

func (c *control) gate() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = make(chan struct{})
	}
	return c.held
}

func (c *control) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held != nil {
		close(c.held)
	}
	c.held = nil
}

func (c *control) setMode(m string) { c.mu.Lock(); c.mode = m; c.mu.Unlock() }
func (c *control) getMode() string  { c.mu.Lock(); defer c.mu.Unlock(); return c.mode }

func readPublicKey(path string) (*jose.JSONWebKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("sts: no PEM block in " + path)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	return &jose.JSONWebKey{Key: pub, Use: "sig"}, nil
}
