package main

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storage serves only what the token endpoint needs for token exchange, client credentials
// and client authentication; the embedded op.Storage is nil, so any other call panics and
// shows up in a test rather than silently succeeding.
type storage struct {
	op.Storage
	secret       string
	clientKey    *jose.JSONWebKey
	lifetime     time.Duration
	signing      signingKey
	subjectCheck *op.AccessTokenVerifier
}

var errNotFound = errors.New("not found")

func (s *storage) Health(context.Context) error { return nil }

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	switch id {
	case "mcp-authz":
		return &client{id: id, method: oidc.AuthMethodBasic}, nil
	case "mcp-authz-jwt":
		if s.clientKey != nil {
			return &client{id: id, method: oidc.AuthMethodPrivateKeyJWT}, nil
		}
	}
	return nil, errNotFound
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if id == "mcp-authz" && subtle.ConstantTimeCompare([]byte(secret), []byte(s.secret)) == 1 {
		return nil
	}
	return errors.New("invalid client secret")
}

func (s *storage) GetKeyByIDAndClientID(_ context.Context, _, clientID string) (*jose.JSONWebKey, error) {
	if clientID == "mcp-authz-jwt" && s.clientKey != nil {
		return s.clientKey, nil
	}
	return nil, errNotFound
}

func (s *storage) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return scopes, nil
}

// Subject and actor tokens come from the tests' IdP: signature, issuer and expiry checked.
func (s *storage) VerifyExchangeSubjectToken(ctx context.Context, token string, tokenType oidc.TokenType) (string, string, map[string]any, error) {
	return s.verifyForeign(ctx, token, tokenType)
}

func (s *storage) VerifyExchangeActorToken(ctx context.Context, token string, tokenType oidc.TokenType) (string, string, map[string]any, error) {
	return s.verifyForeign(ctx, token, tokenType)
}

func (s *storage) verifyForeign(ctx context.Context, token string, tokenType oidc.TokenType) (string, string, map[string]any, error) {
	if tokenType != oidc.AccessTokenType && tokenType != oidc.JWTTokenType {
		return "", "", nil, errors.New("unsupported token type")
	}
	claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, token, s.subjectCheck)
	if err != nil {
		return "", "", nil, err
	}
	return claims.JWTID, claims.Subject, claims.Claims, nil
}

func (s *storage) ValidateTokenExchangeRequest(_ context.Context, r op.TokenExchangeRequest) error {
	if len(r.GetAudience()) == 0 && len(r.GetResourses()) == 0 {
		return oidc.ErrInvalidTarget().WithDescription("audience or resource is required")
	}
	if r.GetRequestedTokenType() == "" {
		r.SetRequestedTokenType(oidc.AccessTokenType)
	}
	r.SetCurrentScopes(r.GetScopes())
	return nil
}

func (s *storage) CreateTokenExchangeRequest(context.Context, op.TokenExchangeRequest) error {
	return nil
}

// The exchanged token names the party that asked (RFC 8693 "act") and the scopes granted.
func (s *storage) GetPrivateClaimsFromTokenExchangeRequest(_ context.Context, r op.TokenExchangeRequest) (map[string]any, error) {
	claims := map[string]any{"scope": joinScopes(r.GetScopes())}
	if len(r.GetResourses()) > 0 {
		claims["resource"] = r.GetResourses()
	}
	if actor := r.GetExchangeActor(); actor != "" {
		claims["act"] = map[string]any{"sub": actor}
	}
	return claims, nil
}

func (s *storage) SetUserinfoFromTokenExchangeRequest(context.Context, *oidc.UserInfo, op.TokenExchangeRequest) error {
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, _, _ string, scopes []string) (map[string]any, error) {
	return map[string]any{"scope": joinScopes(scopes)}, nil
}

// Client credentials: the service's own token, for the audience (or resource) it asked for.
func (s *storage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	if err := s.AuthorizeClientIDSecret(ctx, id, secret); err != nil {
		return nil, err
	}
	return &client{id: id, method: oidc.AuthMethodBasic}, nil
}

func (s *storage) ClientCredentialsTokenRequest(ctx context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	aud, _ := ctx.Value(audienceKey{}).([]string)
	if len(aud) == 0 {
		return nil, oidc.ErrInvalidTarget().WithDescription("audience or resource is required")
	}
	return &ccRequest{subject: clientID, audience: aud, scopes: scopes}, nil
}

func (s *storage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	return uuid.NewString(), time.Now().Add(s.lifetime), nil
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return &s.signing, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{&publicKey{s.signing}}, nil
}

func joinScopes(scopes []string) string {
	out := ""
	for i, sc := range scopes {
		if i > 0 {
			out += " "
		}
		out += sc
	}
	return out
}

type ccRequest struct {
	subject  string
	audience []string
	scopes   []string
}

func (r *ccRequest) GetSubject() string    { return r.subject }
func (r *ccRequest) GetAudience() []string { return r.audience }
func (r *ccRequest) GetScopes() []string   { return r.scopes }

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k *publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *publicKey) Use() string                        { return "sig" }
func (k *publicKey) Key() any                           { return &k.key.PublicKey }

type client struct {
	id     string
	method oidc.AuthMethod
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return nil }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return c.method }
func (c *client) ResponseTypes() []oidc.ResponseType  { return nil }
func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeTokenExchange, oidc.GrantTypeClientCredentials}
}
func (c *client) LoginURL(string) string              { return "" }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration      { return time.Minute }
func (c *client) DevMode() bool                       { return true }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) IsScopeAllowed(string) bool           { return true }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
