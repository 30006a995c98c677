package handlers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gorilla/securecookie"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// Tokens are a provider's access and refresh tokens for one sign-in.
type Tokens struct {
	Access, Refresh string
	Expires         time.Time // of the access token
}

// SignInProvider signs staff in on the server: the local provider or
// Supabase Auth.
type SignInProvider interface {
	// SignIn checks a password. Errors: EUNAUTHORIZED (wrong email or
	// password, never which), EUNAVAILABLE (too many failures).
	SignIn(ctx context.Context, email, password, ip string) (*models.StaffUser, Tokens, error)
	// Refresh trades a session's refresh token for new tokens.
	Refresh(ctx context.Context, userID, refreshToken string) (Tokens, error)
	// SignOut revokes the session's tokens at the provider.
	SignOut(ctx context.Context, accessToken string) error
}

// Sessions keeps console sessions (store.SessionStore).
type Sessions interface {
	Create(ctx context.Context, userID, access, refresh string, expires time.Time) (string, error)
	Lookup(ctx context.Context, name string) (*store.Session, error)
	Touch(ctx context.Context, id int64) error
	RenewOnce(ctx context.Context, id int64, fresh time.Duration,
		renew func(refreshToken string) (access, refresh string, expires time.Time, err error)) (string, string, time.Time, error)
	Revoke(ctx context.Context, id int64) error
	RevokeUser(ctx context.Context, userID string) error
}

// Console is what the console's sign-in needs.
type Console struct {
	Access   *Access
	Provider SignInProvider
	Sessions Sessions
	// Codecs sign and encrypt the session cookie: the first pair of
	// PARLEY_SESSION_KEYS signs, all verify, so keys rotate.
	Codecs []securecookie.Codec
	// CSRFKey keys the per-session CSRF token.
	CSRFKey []byte
	Secure  bool // cookies only over HTTPS (everywhere but `parley dev`)
	// SignOutLater retries a sign-out at the provider that failed because
	// it could not be reached (pipeline.SignOutLater); nil: not retried.
	SignOutLater func(ctx context.Context, sessionID int64) error
	// Idle and Absolute end a session unused that long, or that old
	// (30 min and 12 h when zero).
	Idle, Absolute time.Duration
	now            func() time.Time
}

const sessionCookie = "parley_session"

// signOutWait bounds the sign-out at the provider during a logout; a
// failure is retried by a job.
const signOutWait = 3 * time.Second

// refreshAhead is how long before its access token expires a session is
// refreshed.
const refreshAhead = 2 * time.Minute

func (cs *Console) defaults() {
	if cs.Idle <= 0 {
		cs.Idle = 30 * time.Minute
	}
	if cs.Absolute <= 0 {
		cs.Absolute = 12 * time.Hour
	}
	if cs.now == nil {
		cs.now = time.Now
	}
}

// sessionKey is where the request's session is kept in Locals.
const sessionKey = "session"

// csrfToken is the session's token for state-changing requests: an HMAC of
// the session's name, so every instance computes the same.
func (cs *Console) csrfToken(name string) string {
	m := hmac.New(sha256.New, cs.CSRFKey)
	m.Write([]byte("csrf:" + name))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// badge is the signed-in staff member for the page header.
func badge(c *fiber.Ctx) *views.StaffBadge {
	p := principal(c)
	if p == nil {
		return nil
	}
	csrf, _ := c.Locals("csrf").(string)
	b := &views.StaffBadge{Email: p.Email, Role: string(p.Role), CSRF: csrf, Handoffs: auth.Can(p.Role, auth.HandoffWork)}
	path := c.Path()
	for _, l := range consoleNav {
		if !auth.Can(p.Role, l.need) {
			continue
		}
		current := path == l.href || (l.href != "/" && strings.HasPrefix(path, l.href+"/")) || (l.href == "/" && strings.HasPrefix(path, "/contacts/"))
		b.Nav = append(b.Nav, views.NavLink{Href: l.href, Label: l.label, Key: l.key, Current: current})
	}
	return b
}

// consoleNav are the console's sections, each shown to the roles that may
// open it; key is its keyboard shortcut (g then key).
var consoleNav = []struct {
	href, label, key string
	need             auth.Permission
}{
	{"/work", "Workspace", "w", auth.ReadConversations},
	{"/", "Inbox", "i", auth.ReadConversations},
	{"/handoffs", "Hand-offs", "h", auth.ReadConversations},
	{"/start", "Start", "n", auth.Override},
	{"/resend", "Failed sends", "f", auth.Resend},
	{"/flows", "Flows", "l", auth.ReadFlows},
	{"/templates", "Templates", "t", auth.ReadTemplates},
	{"/saved-replies", "Saved replies", "p", auth.ManageReplies},
	{"/dashboard", "Dashboard", "d", auth.ReadDashboard},
	{"/simulator", "Simulator", "s", auth.SimulateFlows},
	{"/broadcasts", "Broadcasts", "b", auth.Broadcast},
	{"/admin/staff", "Staff", "u", auth.ManageStaff},
	{"/admin/audit", "Audit log", "a", auth.ReadAudit},
	{"/admin/system", "System", "y", auth.ManageKeys},
}

// signedIn lets a console request through with its session, or sends the
// browser to sign in and come back. State-changing requests must carry
// the session's CSRF token (X-CSRF-Token, as HTMX sends it, or _csrf).
func (cs *Console) signedIn(c *fiber.Ctx) error {
	ctx := c.UserContext()
	name, se, err := cs.session(ctx, c)
	if err != nil {
		return err
	}
	if se == nil {
		return cs.toLogin(c)
	}
	p, err := cs.Access.authenticate(ctx, se.AccessToken)
	switch models.ErrorCode(err) {
	case "":
	case models.EFORBIDDEN:
		// Deactivated or removed: every session of theirs ends.
		_ = cs.Sessions.RevokeUser(ctx, se.UserID)
		return cs.toLogin(c)
	case models.EUNAUTHORIZED:
		// This session's token is no good (or its keys cannot be had
		// just now): this session ends, the member's others stay.
		_ = cs.Sessions.Revoke(ctx, se.ID)
		return cs.toLogin(c)
	default:
		return err
	}
	token := cs.csrfToken(name)
	if c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
		sent := c.Get("X-CSRF-Token")
		if sent == "" {
			sent = c.FormValue("_csrf")
		}
		if !hmac.Equal([]byte(sent), []byte(token)) {
			return models.Errorf(models.EFORBIDDEN, "This form has expired; reload the page and try again.")
		}
	}
	if cs.now().Sub(se.LastSeenAt) > time.Minute {
		_ = cs.Sessions.Touch(ctx, se.ID)
	}
	c.Locals(principalKey, p)
	c.Locals(sessionKey, se)
	c.Locals("csrf", token)
	return c.Next()
}

// session reads the request's session: nil when it has none, or one that
// has ended (revoked, idle, too old). A near-expiry access token is
// refreshed first.
func (cs *Console) session(ctx context.Context, c *fiber.Ctx) (string, *store.Session, error) {
	var name string
	if err := securecookie.DecodeMulti(sessionCookie, c.Cookies(sessionCookie), &name, cs.Codecs...); err != nil || name == "" {
		return "", nil, nil
	}
	se, err := cs.Sessions.Lookup(ctx, name)
	switch {
	case models.ErrorCode(err) == models.ENOTFOUND:
		return "", nil, nil
	case err != nil:
		return "", nil, err
	}
	now := cs.now()
	if se.Revoked || now.Sub(se.LastSeenAt) > cs.Idle || now.Sub(se.CreatedAt) > cs.Absolute {
		_ = cs.Sessions.Revoke(ctx, se.ID)
		return "", nil, nil
	}
	if se.AccessExpiresAt.Sub(now) < refreshAhead {
		// Requests of one browser arrive together: one refreshes (the
		// provider's refresh token is single-use), the others take its
		// tokens.
		refused := false
		access, refresh, exp, err := cs.Sessions.RenewOnce(ctx, se.ID, refreshAhead, func(old string) (string, string, time.Time, error) {
			t, err := cs.Provider.Refresh(ctx, se.UserID, old)
			if models.ErrorCode(err) == models.EUNAUTHORIZED {
				refused = true
			}
			return t.Access, t.Refresh, t.Expires, err
		})
		switch {
		case refused || models.ErrorCode(err) == models.ENOTFOUND:
			_ = cs.Sessions.Revoke(ctx, se.ID)
			return "", nil, nil
		case models.ErrorCode(err) == models.EUNAVAILABLE && se.AccessExpiresAt.After(now):
			// The provider is down: the token still holds for a while
			// (and a logout must go through), so carry on with it.
			return name, se, nil
		case err != nil:
			return "", nil, err
		}
		se.AccessToken, se.RefreshToken, se.AccessExpiresAt = access, refresh, exp
	}
	return name, se, nil
}

// toLogin sends the browser to sign in, then back where it was going.
func (cs *Console) toLogin(c *fiber.Ctx) error {
	cs.clearCookie(c)
	target := "/login?next=" + url.QueryEscape(string(c.Request().URI().RequestURI()))
	if c.Get("HX-Request") == "true" {
		// Back to the page the request came from (a reply's form, say), not
		// to the address it posted to, which has no page.
		if page, err := url.Parse(c.Get("HX-Current-URL")); err == nil && page.Path != "" {
			target = "/login?next=" + url.QueryEscape(safeNext(page.RequestURI()))
		}
		c.Set("HX-Redirect", target)
		return c.SendStatus(fiber.StatusUnauthorized)
	}
	if c.Method() != fiber.MethodGet {
		return models.Errorf(models.EUNAUTHORIZED, "Your session has ended; sign in again.")
	}
	return c.Redirect(target, fiber.StatusSeeOther)
}

func (cs *Console) setCookie(c *fiber.Ctx, name string) error {
	value, err := securecookie.EncodeMulti(sessionCookie, name, cs.Codecs...)
	if err != nil {
		return err
	}
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: value, Path: "/", MaxAge: int(cs.Absolute.Seconds()),
		HTTPOnly: true, Secure: cs.Secure, SameSite: fiber.CookieSameSiteLaxMode})
	return nil
}

func (cs *Console) clearCookie(c *fiber.Ctx) {
	if c.Cookies(sessionCookie) == "" {
		return
	}
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(0, 0),
		HTTPOnly: true, Secure: cs.Secure, SameSite: fiber.CookieSameSiteLaxMode})
}

func (cs *Console) loginPage(c *fiber.Ctx) error {
	return render(c, views.Login(views.LoginProps{Next: safeNext(c.Query("next"))}))
}

// sameOrigin reports whether a form post came from this site's own pages.
func sameOrigin(c *fiber.Ctx) bool {
	if site := c.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" {
		u, err := url.Parse(origin)
		return err == nil && u.Host == c.Hostname()
	}
	return true // neither header: not a browser's cross-site post
}

func (cs *Console) login(c *fiber.Ctx) error {
	if !sameOrigin(c) {
		return models.Errorf(models.EFORBIDDEN, "Sign in from Parley's own page.")
	}
	defer boundSignIn(c)()
	email, next := strings.TrimSpace(c.FormValue("email")), safeNext(c.FormValue("next"))
	u, t, err := cs.Provider.SignIn(c.UserContext(), email, c.FormValue("password"), c.IP())
	if err != nil {
		status := fiber.StatusUnauthorized
		switch models.ErrorCode(err) {
		case models.EUNAUTHORIZED:
		case models.EUNAVAILABLE:
			status = unavailableStatus(c, err)
		default:
			return err
		}
		if failed, throttled := signInFailure(err); failed {
			if aerr := cs.Access.signInFailed(c, email, "console", throttled); aerr != nil {
				return aerr
			}
		}
		c.Status(status)
		return render(c, views.Login(views.LoginProps{Next: next, Email: email, Error: models.ErrorMessage(err)}))
	}
	if err := cs.Access.record(c, u, "staff.sign_in", "staff", u.ID, map[string]any{"via": "console"}); err != nil {
		return err
	}
	name, err := cs.Sessions.Create(c.UserContext(), u.ID, t.Access, t.Refresh, t.Expires)
	if err != nil {
		return err
	}
	if err := cs.setCookie(c, name); err != nil {
		return err
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}

// signInWait bounds a sign-in's work (the throttle, the provider, the
// audit and the session), which would otherwise wait as long as the client
// stays connected.
const signInWait = 10 * time.Second

// boundSignIn gives c's work a deadline of signInWait, and returns what
// puts c's own context back (the error handler runs after it).
func boundSignIn(c *fiber.Ctx) (restore func()) {
	parent := c.UserContext()
	ctx, cancel := context.WithTimeout(parent, signInWait)
	c.SetUserContext(ctx)
	return func() {
		cancel()
		c.SetUserContext(parent)
	}
}

// signInFailure says whether a refused sign-in is recorded as a failed
// one: a wrong email or password, or a try throttled for too many of them.
// An outage (Supabase Auth down) is nothing the client did.
func signInFailure(err error) (failed, throttled bool) {
	if _, throttled = auth.ThrottledFor(err); throttled {
		return true, true
	}
	return models.ErrorCode(err) == models.EUNAUTHORIZED, false
}

// unavailableStatus answers a sign-in that could not be tried: 429 with
// Retry-After when this client failed too often, 503 when Supabase Auth
// is down or busy (nothing the client did).
func unavailableStatus(c *fiber.Ctx, err error) int {
	if wait, ok := auth.ThrottledFor(err); ok {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		return fiber.StatusTooManyRequests
	}
	c.Set(fiber.HeaderRetryAfter, "30")
	return fiber.StatusServiceUnavailable
}

func (cs *Console) logout(c *fiber.Ctx) error {
	se, _ := c.Locals(sessionKey).(*store.Session)
	if se != nil {
		if err := cs.Access.audit(c, "staff.sign_out", "staff", se.UserID, nil); err != nil {
			return err
		}
		// The session ends here at once; at the provider it is tried for a
		// few seconds, then left to a job when the provider is down.
		if err := cs.Sessions.Revoke(c.UserContext(), se.ID); err != nil {
			return err
		}
		cs.clearCookie(c)
		ctx, cancel := context.WithTimeout(c.UserContext(), signOutWait)
		err := cs.Provider.SignOut(ctx, se.AccessToken)
		cancel()
		if models.ErrorCode(err) == models.EUNAVAILABLE && cs.SignOutLater != nil {
			if err := cs.SignOutLater(c.UserContext(), se.ID); err != nil {
				return err
			}
		}
	}
	cs.clearCookie(c)
	return c.Redirect("/login", fiber.StatusSeeOther)
}

// register adds the sign-in routes; pages behind signedIn are the caller's.
func (cs *Console) register(app *fiber.App) {
	cs.defaults()
	app.Get("/login", cs.loginPage)
	app.Post("/login", cs.login)
	app.Post("/logout", cs.signedIn, cs.logout)
}

// LocalSignIn is the local provider seen as the console's sign-in.
type LocalSignIn struct {
	*LocalProvider
	Staff StaffLookup
}

// SignIn implements SignInProvider.
func (l LocalSignIn) SignIn(ctx context.Context, email, password, ip string) (*models.StaffUser, Tokens, error) {
	u, err := l.LocalProvider.SignIn(ctx, email, password, ip)
	if err != nil {
		return nil, Tokens{}, err
	}
	access, exp, err := l.Issuer.Issue(u, "")
	return u, Tokens{Access: access, Expires: exp}, err
}

// Refresh implements SignInProvider: the local provider has no refresh
// tokens; it issues a new access token while the account stays active.
func (l LocalSignIn) Refresh(ctx context.Context, userID, _ string) (Tokens, error) {
	u, err := l.Staff.Get(ctx, userID)
	if err != nil {
		return Tokens{}, err
	}
	if !u.Active {
		return Tokens{}, models.Errorf(models.EUNAUTHORIZED, "This account is deactivated.")
	}
	access, exp, err := l.Issuer.Issue(u, "")
	return Tokens{Access: access, Expires: exp}, err
}

// SignOut implements SignInProvider: local tokens end with the session.
func (LocalSignIn) SignOut(context.Context, string) error { return nil }

var _ SignInProvider = LocalSignIn{}

// SupabaseSignIn is Supabase Auth as the console's sign-in: the password
// is checked by the project, the role by Parley's staff table.
type SupabaseSignIn struct {
	Client *auth.GoTrue
	Staff  StaffLookup
	Guard  *auth.Guard
}

// SignIn implements SignInProvider. A Supabase user who is not (or no
// longer) on the staff gets the same answer as a wrong password, and the
// session Supabase opened is closed again.
func (s SupabaseSignIn) SignIn(ctx context.Context, email, password, ip string) (*models.StaffUser, Tokens, error) {
	var u *models.StaffUser
	var t Tokens
	err := s.Guard.Try(ctx, email, ip, func() error {
		se, err := s.Client.SignIn(ctx, email, password)
		if err != nil {
			return err
		}
		u, err = s.Staff.Get(ctx, se.UserID)
		if models.ErrorCode(err) == models.ENOTFOUND || (err == nil && !u.Active) {
			_ = s.Client.SignOut(ctx, se.AccessToken)
			return auth.ErrWrongCredentials
		}
		t = Tokens{Access: se.AccessToken, Refresh: se.RefreshToken, Expires: se.ExpiresAt}
		return err
	})
	if err != nil {
		return nil, Tokens{}, err
	}
	return u, t, nil
}

// Refresh implements SignInProvider.
func (s SupabaseSignIn) Refresh(ctx context.Context, _, refreshToken string) (Tokens, error) {
	se, err := s.Client.Refresh(ctx, refreshToken)
	return Tokens{Access: se.AccessToken, Refresh: se.RefreshToken, Expires: se.ExpiresAt}, err
}

// SignOut implements SignInProvider.
func (s SupabaseSignIn) SignOut(ctx context.Context, accessToken string) error {
	return s.Client.SignOut(ctx, accessToken)
}

var _ SignInProvider = SupabaseSignIn{}
