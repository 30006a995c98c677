package auth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	gotrue "github.com/supabase-community/gotrue-go"
	"github.com/supabase-community/gotrue-go/types"

	"github.com/parley-chat/parley/models"
)

// GoTrue signs staff in against a Supabase project's Auth on the server.
// Every call uses its own copy of supabase-go's auth client (gotrue-go), bound to the
// caller's context: the shared client keeps one token for every user, and
// takes no context.
type GoTrue struct {
	url, anonKey string
	base         gotrue.Client
	rt           http.RoundTripper
}

// NewGoTrue returns the Auth client of the project at supabaseURL; rt nil
// uses Go's default transport.
func NewGoTrue(supabaseURL, anonKey string, rt http.RoundTripper) *GoTrue {
	if rt == nil {
		rt = http.DefaultTransport
	}
	url := strings.TrimRight(supabaseURL, "/") + "/auth/v1"
	// The client supabase-go's Auth is (gotrue-go), made as supabase-go
	// makes it, without the REST, storage and functions clients beside it.
	base := gotrue.New("", anonKey).WithCustomGoTrueURL(url)
	return &GoTrue{url: url, anonKey: anonKey, base: base, rt: rt}
}

// Session is what a sign-in or a refresh gives.
type Session struct {
	UserID       string
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
}

// client is a copy of the auth client for one call: ctx bounds its
// requests, token (if any) authorises them, and error bodies are read
// only so far.
func (g *GoTrue) client(ctx context.Context, token string) gotrue.Client {
	c := g.base.WithClient(http.Client{Timeout: 10 * time.Second, Transport: &boundTransport{ctx: ctx, rt: g.rt}})
	if token != "" {
		c = c.WithToken(token)
	}
	return c
}

// SignIn checks email and password. Errors: EUNAUTHORIZED (wrong email or
// password, never which), EUNAVAILABLE (rate limited, or Auth is down).
func (g *GoTrue) SignIn(ctx context.Context, email, password string) (Session, error) {
	res, err := g.client(ctx, "").SignInWithEmailPassword(email, password)
	if err != nil {
		return Session{}, gotrueError(err)
	}
	return Session{UserID: res.User.ID.String(), AccessToken: res.AccessToken, RefreshToken: res.RefreshToken,
		ExpiresAt: time.Unix(res.ExpiresAt, 0)}, nil
}

// Refresh trades a refresh token (single-use) for new tokens.
func (g *GoTrue) Refresh(ctx context.Context, refreshToken string) (Session, error) {
	res, err := g.client(ctx, "").RefreshToken(refreshToken)
	if err != nil {
		return Session{}, gotrueError(err)
	}
	return Session{UserID: res.User.ID.String(), AccessToken: res.AccessToken, RefreshToken: res.RefreshToken,
		ExpiresAt: time.Unix(res.ExpiresAt, 0)}, nil
}

// SignOut ends this session only (scope=local: the user's other sessions
// stay), which gotrue-go's Logout cannot ask for.
func (g *GoTrue) SignOut(ctx context.Context, accessToken string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url+"/logout?scope=local", nil)
	if err != nil {
		return err
	}
	req.Header.Set("apikey", g.anonKey)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: g.rt}).Do(req)
	if err != nil {
		return models.Wrap(err, models.EUNAVAILABLE, "Supabase Auth cannot be reached.")
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusForbidden { // 403: the session had ended already
		return models.Errorf(models.EUNAVAILABLE, "Supabase Auth refused the sign-out (HTTP %d).", resp.StatusCode)
	}
	return nil
}

// gotrue-go's errors are strings: "response status code N: <body>".
var statusRE = regexp.MustCompile(`(?s)^response status code (\d+)(?::\s*(.*))?$`)

// gotrueError maps a gotrue-go error to a model error that says nothing of
// the body (which may name the account).
func gotrueError(err error) error {
	m := statusRE.FindStringSubmatch(err.Error())
	if m == nil {
		return models.Wrap(errors.New("auth request failed"), models.EUNAVAILABLE, "Supabase Auth cannot be reached; try again.")
	}
	var body struct {
		ErrorCode string `json:"error_code"`
	}
	_ = json.Unmarshal([]byte(m[2]), &body)
	switch {
	case m[1] == "429" || body.ErrorCode == "over_request_rate_limit":
		return models.Errorf(models.EUNAVAILABLE, "Too many sign-ins; wait a few minutes and try again.")
	case m[1][0] == '4':
		return ErrWrongCredentials
	}
	return models.Errorf(models.EUNAVAILABLE, "Supabase Auth answered HTTP %s; try again.", m[1])
}

// boundTransport binds every request to ctx (when set) and reads at most
// 1 MiB of any answer.
type boundTransport struct {
	ctx context.Context
	rt  http.RoundTripper
}

func (t *boundTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.ctx != nil {
		req = req.WithContext(t.ctx)
	}
	resp, err := t.rt.RoundTrip(req)
	if resp != nil {
		resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, 1<<20), Closer: resp.Body}
	}
	return resp, err
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// GoTrueAdmin manages the project's users with the service-role key (Auth's
// admin API): creating and inviting staff, mirroring their Parley role
// into app_metadata.role, and banning deactivated ones.
type GoTrueAdmin struct {
	g          *GoTrue
	serviceKey string
}

// Admin returns the admin API client, authorised by the service-role key.
func (g *GoTrue) Admin(serviceRoleKey string) *GoTrueAdmin {
	return &GoTrueAdmin{g: g, serviceKey: serviceRoleKey}
}

// banForever is how long a deactivated member's Supabase user is banned:
// until reactivated (WIRE.md: a duration string, "none" lifts it).
const banForever = 876000 * time.Hour

// Create makes a confirmed email user with a password and the role in
// app_metadata, and returns its id.
func (a *GoTrueAdmin) Create(ctx context.Context, email, password string, role models.Role) (string, error) {
	res, err := a.g.client(ctx, a.serviceKey).AdminCreateUser(types.AdminCreateUserRequest{
		Email: email, Password: &password, EmailConfirm: true, AppMetadata: map[string]any{"role": string(role)},
	})
	if err != nil {
		return "", adminError(err)
	}
	return res.ID.String(), nil
}

// Invite sends an invitation email and returns the new user's id; the role
// is mirrored right after.
func (a *GoTrueAdmin) Invite(ctx context.Context, email string, role models.Role) (string, error) {
	res, err := a.g.client(ctx, a.serviceKey).Invite(types.InviteRequest{Email: email, Data: map[string]any{}})
	if err != nil {
		return "", adminError(err)
	}
	id := res.ID.String()
	return id, a.SetRole(ctx, id, role)
}

// SetRole mirrors a Parley role into the user's app_metadata.role (which
// only the service role can write).
func (a *GoTrueAdmin) SetRole(ctx context.Context, id string, role models.Role) error {
	return a.update(ctx, id, types.AdminUpdateUserRequest{AppMetadata: map[string]any{"role": string(role)}})
}

// SetBanned bans (deactivation) or unbans a user.
func (a *GoTrueAdmin) SetBanned(ctx context.Context, id string, banned bool) error {
	ban := types.BanDurationNone()
	if banned {
		ban = types.BanDurationTime(banForever)
	}
	return a.update(ctx, id, types.AdminUpdateUserRequest{BanDuration: &ban})
}

// Delete removes the user from the project.
func (a *GoTrueAdmin) Delete(ctx context.Context, id string) error {
	uid, err := uuid.Parse(id)
	if err != nil {
		return models.Errorf(models.EINVALID, "%q is not a Supabase user id.", id)
	}
	if err := a.g.client(ctx, a.serviceKey).AdminDeleteUser(types.AdminDeleteUserRequest{UserID: uid}); err != nil {
		if userNotFound(err) {
			return nil // gone already
		}
		return adminError(err)
	}
	return nil
}

// Standing is what Supabase Auth says of a user now.
type Standing struct {
	Gone   bool // deleted from the project
	Banned bool // banned_until lies in the future
}

// Standing asks Supabase Auth whether the user is still there and not
// banned (GET /admin/users/{id}). Only GoTrue's own user_not_found says a
// user is gone. Errors: EUNAVAILABLE (Auth cannot be reached, answers 5xx
// or a 404 of someone else's: nothing is known), EINVALID.
func (a *GoTrueAdmin) Standing(ctx context.Context, id string) (Standing, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return Standing{}, models.Errorf(models.EINVALID, "%q is not a Supabase user id.", id)
	}
	res, err := a.g.client(ctx, a.serviceKey).AdminGetUser(types.AdminGetUserRequest{UserID: uid})
	if err != nil {
		if userNotFound(err) {
			return Standing{Gone: true}, nil
		}
		if m := statusRE.FindStringSubmatch(err.Error()); m != nil && m[1] == "404" {
			// A 404 that is not GoTrue's own (a wrong SUPABASE_URL, a proxy's
			// page) says nothing of the user: treated as an outage, so the
			// re-check stops rather than take everyone for deleted.
			return Standing{}, models.Errorf(models.EUNAVAILABLE, "Supabase Auth answered 404 without user_not_found; check SUPABASE_URL.")
		}
		return Standing{}, adminError(err)
	}
	return Standing{Banned: res.BannedUntil != nil && res.BannedUntil.After(time.Now())}, nil
}

// userNotFound reports whether err is GoTrue saying the user does not
// exist: HTTP 404 with error_code user_not_found (WIRE.md). Any other 404
// may come from a wrong URL, and must never read as a deleted user.
func userNotFound(err error) bool {
	m := statusRE.FindStringSubmatch(err.Error())
	if m == nil || m[1] != "404" {
		return false
	}
	var body struct {
		ErrorCode string `json:"error_code"`
	}
	return json.Unmarshal([]byte(m[2]), &body) == nil && body.ErrorCode == "user_not_found"
}

func (a *GoTrueAdmin) update(ctx context.Context, id string, req types.AdminUpdateUserRequest) error {
	uid, err := uuid.Parse(id)
	if err != nil {
		return models.Errorf(models.EINVALID, "%q is not a Supabase user id.", id)
	}
	req.UserID = uid
	if _, err := a.g.client(ctx, a.serviceKey).AdminUpdateUser(req); err != nil {
		return adminError(err)
	}
	return nil
}

// adminError maps an admin API failure: 422 (an email taken) is a
// conflict, other 4xx invalid, the rest unavailable.
func adminError(err error) error {
	m := statusRE.FindStringSubmatch(err.Error())
	switch {
	case m == nil:
		return models.Errorf(models.EUNAVAILABLE, "Supabase Auth cannot be reached; try again.")
	case m[1] == "422":
		return models.Errorf(models.ECONFLICT, "Supabase already has a user with this email.")
	case m[1][0] == '4':
		return models.Errorf(models.EINVALID, "Supabase Auth refused the change (HTTP %s).", m[1])
	}
	return models.Errorf(models.EUNAVAILABLE, "Supabase Auth answered HTTP %s; try again.", m[1])
}
