package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/models"
)

// VerifierConfig is what checking access tokens needs.
type VerifierConfig struct {
	// Issuer is the iss every token must carry: SUPABASE_URL + "/auth/v1".
	Issuer string
	// Keys holds the public keys of ES256 and RS256 tokens by kid: the
	// project's JWKS (JWKS), or the local provider's. Nil refuses them.
	Keys jwkset.Storage
	// HS256Secret is a legacy project's JWT secret; nil refuses HS256.
	HS256Secret []byte
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30 s).
	Leeway time.Duration
}

// Verifier checks access tokens with the server's own keys, never by
// asking the issuer.
type Verifier struct {
	cfg    VerifierConfig
	parser *jwt.Parser
}

// NewVerifier returns a verifier for cfg.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("auth: the token issuer is required")
	}
	if cfg.Keys == nil && len(cfg.HS256Secret) == 0 {
		return nil, errors.New("auth: no key to verify tokens with (a JWKS or an HS256 secret)")
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	var methods []string
	if cfg.Keys != nil {
		methods = append(methods, jwt.SigningMethodES256.Alg(), jwt.SigningMethodRS256.Alg())
	}
	if len(cfg.HS256Secret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	return &Verifier{cfg: cfg, parser: jwt.NewParser(
		jwt.WithValidMethods(methods), // "none", and any alg not listed, is refused
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
	)}, nil
}

// Verify checks token and returns its claims. Any failure is an
// EUNAUTHORIZED error that says no more than that the token is not valid,
// but for an ES256 or RS256 token while the project's key set has never
// loaded: EUNAVAILABLE.
// Looking up an unknown key id may refresh the key set; that wait ends
// with ctx.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	claims := &Claims{}
	_, err := v.parser.ParseWithClaims(token, claims, v.keyFor(ctx))
	switch {
	case errors.Is(err, errNoKeys):
		return nil, models.Wrap(err, models.EUNAVAILABLE, "Sign-in keys cannot be fetched from Supabase Auth just now; try again shortly.")
	case err != nil:
		return nil, models.Wrap(err, models.EUNAUTHORIZED, "The access token is not valid.")
	}
	if claims.Subject == "" {
		return nil, models.Errorf(models.EUNAUTHORIZED, "The access token is not valid.")
	}
	return claims, nil
}

// errNoKeys is an asymmetric token met while the key set holds no key at
// all (the project could not be reached since the start): nothing can be
// said of the token, so it is refused as unavailable, not as invalid, and
// a console session holding it is kept.
var errNoKeys = errors.New("auth: the key set has not loaded")

// keyFor picks the key by the token's algorithm: the HS256 secret for
// HS256 only (so a public key can never serve as an HMAC secret), the key
// set for the asymmetric ones.
func (v *Verifier) keyFor(ctx context.Context) jwt.Keyfunc {
	var fromSet jwt.Keyfunc
	if v.cfg.Keys != nil {
		kf, _ := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: v.cfg.Keys})
		fromSet = kf.KeyfuncCtx(ctx)
	}
	return func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case jwt.SigningMethodHS256.Alg():
			return v.cfg.HS256Secret, nil
		case jwt.SigningMethodES256.Alg(), jwt.SigningMethodRS256.Alg():
			if _, ok := t.Header["kid"].(string); !ok {
				return nil, errors.New("auth: an asymmetric token without a kid")
			}
			key, err := fromSet(t)
			if err != nil {
				if r, ok := v.cfg.Keys.(remoteKeys); ok && !r.loaded.Load() {
					return nil, errNoKeys // not this token's fault: the project's keys never loaded
				}
			}
			return key, err
		}
		return nil, fmt.Errorf("auth: algorithm %q is not accepted", t.Method.Alg())
	}
}

// JWKS returns the key set of a Supabase project, fetched from url
// (SUPABASE_URL + "/auth/v1/.well-known/jwks.json") with client (nil: one
// that reads at most 1 MiB of an answer); cached, refreshed
// every ten minutes and when a token names a kid it does not hold (at most
// every 30 s: a rotation adds the new key before tokens use it). Starting
// does not fail when the project cannot be reached; tokens are refused
// until it can, and until a key set has loaded once the fetch is retried
// on a token's unknown kid every second rather than every 30 s, so tokens
// are accepted within a second or two of the project's return.
func JWKS(ctx context.Context, url string, client *http.Client) (jwkset.Storage, error) {
	if client == nil { // the key set is read to 1 MiB at most
		client = &http.Client{Transport: &boundTransport{rt: http.DefaultTransport}}
	}
	limiter := rate.NewLimiter(rate.Every(firstLoadRetry), 1)
	rt := client.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	watched := *client
	loaded := &atomic.Bool{}
	watched.Transport = &loadWatch{rt: rt, loaded: func() {
		loaded.Store(true)
		limiter.SetLimit(rate.Every(unknownKIDRefresh))
	}}
	noError := true
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
		Client:                    &watched,
		HTTPTimeout:               10 * time.Second,
		NoErrorReturnFirstHTTPReq: &noError,
		RefreshInterval:           10 * time.Minute,
		RefreshUnknownKID:         limiter,
		RateLimitWaitMax:          2 * time.Second,
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(context.Context, error) {} // the refused tokens say it
		},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: key set of %s: %w", url, err)
	}
	return remoteKeys{Storage: kf.Storage(), loaded: loaded}, nil
}

// How often a token's unknown kid may fetch the key set again: every
// firstLoadRetry until a key set has loaded once (the project was down at
// start), every unknownKIDRefresh after.
const (
	firstLoadRetry    = time.Second
	unknownKIDRefresh = 30 * time.Second
)

// remoteKeys is a project's key set, which knows whether it ever loaded.
type remoteKeys struct {
	jwkset.Storage
	loaded *atomic.Bool
}

// loadWatch calls loaded once, at the first key set fetched (a 2xx).
type loadWatch struct {
	rt     http.RoundTripper
	once   sync.Once
	loaded func()
}

func (w *loadWatch) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.rt.RoundTrip(req)
	if err == nil && resp.StatusCode/100 == 2 {
		w.once.Do(w.loaded)
	}
	return resp, err
}
