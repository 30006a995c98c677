package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/simulator"
	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// consoleSite is the real server with the console's sign-in, listening on
// loopback, in local mode.
type consoleSite struct {
	base   string
	crypto store.Crypto
	db     *store.DB
	staff  *store.StaffStore
	audit  *store.AuditStore // the access's audit log; its clock may be pinned
	logs   *lockedBuffer
	pipe   *pipeline.Pipeline // not started: a test that wants its jobs run starts it
	issuer *auth.LocalIssuer  // signs API access tokens
	// flowProblems is what the flows folder check answers.
	flowProblems error
}

func newConsoleSite(t testing.TB, provider func(*handlers.Access, *store.StaffStore) handlers.SignInProvider) *consoleSite {
	t.Helper()
	return newConsoleSiteWith(t, provider, []securecookie.Codec{securecookie.New([]byte(strings.Repeat("h", 32)), []byte(strings.Repeat("b", 32)))})
}

func newConsoleSiteWith(t testing.TB, provider func(*handlers.Access, *store.StaffStore) handlers.SignInProvider, codecs []securecookie.Codec) *consoleSite {
	t.Helper()
	db := pgtest.Open(t)
	readiness, _ := store.NewReadiness(db)
	site := &consoleSite{db: db, staff: store.NewStaffStore(db), logs: &lockedBuffer{}}
	issuer, err := auth.NewLocalIssuer(localIssuerURL, []byte(strings.Repeat("k", 32)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	verifier, _ := auth.NewVerifier(auth.VerifierConfig{Issuer: localIssuerURL, Keys: issuer.Keys()})
	crypto := newCryptoForTest(t)
	site.audit = store.NewAuditStore(db, crypto)
	access := &handlers.Access{Verifier: verifier, Staff: site.staff, Local: &handlers.LocalProvider{Issuer: issuer, Directory: site.staff},
		Audit: site.audit, Personal: store.PersonalData{Contacts: store.NewContactStore(db, crypto), Audit: store.NewAuditStore(db, crypto)}}
	var p handlers.SignInProvider = handlers.LocalSignIn{LocalProvider: access.Local, Staff: site.staff}
	if provider != nil {
		p = provider(access, site.staff)
	}
	console := &handlers.Console{Access: access, Provider: p, Sessions: store.NewSessionStore(db, crypto),
		Codecs:  codecs,
		CSRFKey: []byte(strings.Repeat("c", 32)), Secure: true}
	site.crypto, site.issuer = crypto, issuer
	pipe, err := pipeline.New(pipeline.Deps{DB: db, Crypto: crypto, Logger: slog.New(slog.DiscardHandler), // not started: its jobs stay queued
		Responder: pipeline.NewFlows(engine.Builtin(), db, crypto), Senders: map[string]channel.Sender{channel.Simulator: simulator.Sender{}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pipe.Stop(context.Background()) })
	site.pipe = pipe
	app := handlers.NewServer(handlers.Deps{Logger: slog.New(slog.NewJSONHandler(site.logs, nil)), Readiness: readiness,
		ProxyHops: 1, // as on Cloud Run; a request without X-Forwarded-For keeps the connection's address
		Registry:  prometheus.NewRegistry(), Version: "test", Access: access, Console: console,
		Inbox: &handlers.Inbox{Messages: store.NewMessageStore(db, crypto), Contacts: store.NewContactStore(db, crypto), Actions: pipe, Flows: pipe,
			Simulator: pipe, Media: store.NewMediaStore(db, crypto),
			CheckFlows: func() error { return site.flowProblems }, Convs: store.NewConversationStore(db, crypto), Templates: store.NewTemplateStore(db), Counts: store.NewDashboardStore(db)},
		Admin: newAdmin(db, crypto), Dashboard: &handlers.Dashboard{Counts: store.NewDashboardStore(db), Flows: pipe}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	site.base = "http://" + ln.Addr().String()
	return site
}

// browser keeps the session cookie by hand: it is Secure, which Go's jar
// would not send over the test's plain HTTP.
type browser struct {
	site   *consoleSite
	cookie string
}

func (b *browser) do(t *testing.T, method, path string, form url.Values, headers map[string]string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.site.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.cookie != "" {
		req.Header.Set("Cookie", "parley_session="+b.cookie)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == "parley_session" {
			b.cookie = c.Value
		}
	}
	return resp, string(raw)
}

var csrfRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func (b *browser) signIn(t *testing.T, email, password, next string) *http.Response {
	t.Helper()
	resp, _ := b.do(t, "POST", "/login", url.Values{"email": {email}, "password": {password}, "next": {next}}, nil)
	return resp
}

func TestConsole_SignInAndOut(t *testing.T) {
	site := newConsoleSite(t, nil)
	hash, _ := auth.HashPassword("a long enough password")
	if _, err := site.staff.Create(context.Background(), "", "asha@example.org", models.RoleAgent, hash); err != nil {
		t.Fatal(err)
	}
	b := &browser{site: site}

	resp, _ := b.do(t, "GET", "/?tab=handoff", nil, nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/login?next=%2F%3Ftab%3Dhandoff" {
		t.Fatalf("anonymous console: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, page := b.do(t, "GET", "/login?next=%2F%3Ftab%3Dhandoff", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `data-testid="login-form"`) || !strings.Contains(page, `value="/?tab=handoff"`) {
		t.Fatalf("login page: %d\n%s", resp.StatusCode, page)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") == "" {
		t.Fatalf("security headers: %v", resp.Header)
	}
	if strings.Contains(page, "<script>") {
		t.Fatal("the page has an inline script")
	}

	resp, page = b.do(t, "POST", "/login", url.Values{"email": {"asha@example.org"}, "password": {"not the password"}, "next": {"/"}}, nil)
	if resp.StatusCode != 401 || !strings.Contains(page, "Wrong email or password.") || b.cookie != "" {
		t.Fatalf("wrong password: %d cookie %q", resp.StatusCode, b.cookie)
	}
	resp = b.signIn(t, "asha@example.org", "a long enough password", "/?tab=handoff")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/?tab=handoff" {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	set := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"HttpOnly", "SameSite=Lax", "Secure", "Path=/"} {
		if !strings.Contains(strings.ToLower(set), strings.ToLower(attr)) {
			t.Errorf("session cookie lacks %s: %s", attr, set)
		}
	}
	resp, page = b.do(t, "GET", "/", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "asha@example.org · agent") {
		t.Fatalf("signed in: %d\n%s", resp.StatusCode, page)
	}
	csrf := csrfRE.FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no CSRF token on the page")
	}

	// Sign-out is state-changing: without the token it is refused.
	if resp, _ := b.do(t, "POST", "/logout", url.Values{}, nil); resp.StatusCode != 403 {
		t.Fatalf("sign-out without the CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := b.do(t, "POST", "/logout", url.Values{}, map[string]string{"X-CSRF-Token": "forged"}); resp.StatusCode != 403 {
		t.Fatalf("sign-out with a forged token: %d", resp.StatusCode)
	}
	old := b.cookie
	if resp, _ := b.do(t, "POST", "/logout", url.Values{"_csrf": {csrf[1]}}, nil); resp.StatusCode != 303 || resp.Header.Get("Location") != "/login" {
		t.Fatalf("sign-out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	b.cookie = old // a copy of the cookie kept after signing out opens nothing
	if resp, _ := b.do(t, "GET", "/", nil, nil); resp.StatusCode != 303 {
		t.Fatalf("the old cookie after sign-out: %d", resp.StatusCode)
	}

	for _, secret := range []string{"a long enough password", old, csrf[1]} {
		if strings.Contains(site.logs.String(), secret) {
			t.Fatalf("a secret is in the log")
		}
	}

	// Each step is in the audit log, with who, in which role, from where.
	rows, err := site.db.Pool.Query(context.Background(), `SELECT action, coalesce(actor_id::text, ''), actor_role, request_id <> '', ip,
		position('asha@example.org'::bytea in coalesce(details_enc, ''::bytea)) FROM audit_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var action, actor, role, ip string
		var hasRequest bool
		var plain int
		if err := rows.Scan(&action, &actor, &role, &hasRequest, &ip, &plain); err != nil {
			t.Fatal(err)
		}
		if !hasRequest || ip != "127.0.0.1" || plain != 0 {
			t.Errorf("%s: request id %v, ip %q, email in the clear %v", action, hasRequest, ip, plain != 0)
		}
		got = append(got, action+"/"+role+"/"+map[bool]string{true: "actor", false: "nobody"}[actor != ""])
	}
	// The failed sign-in is counted outside the chain (TestAudit_FailedSignInsAreBounded);
	// the inbox's listing without a query is no search.
	want := "staff.sign_in/agent/actor staff.sign_out/agent/actor"
	if strings.Join(got, " ") != want {
		t.Fatalf("audited %q\nwant %q", strings.Join(got, " "), want)
	}
}

func TestConsole_SessionsEnd(t *testing.T) {
	site := newConsoleSite(t, nil)
	hash, _ := auth.HashPassword("a long enough password")
	u, err := site.staff.Create(context.Background(), "", "ravi@example.org", models.RoleViewer, hash)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		label string
		end   func(t *testing.T)
	}{
		{"idle for longer than 30 minutes", func(t *testing.T) {
			_, _ = site.db.Pool.Exec(ctx, `UPDATE staff_sessions SET last_seen_at = now() - interval '31 minutes'`)
		}},
		{"older than 12 hours", func(t *testing.T) {
			_, _ = site.db.Pool.Exec(ctx, `UPDATE staff_sessions SET created_at = now() - interval '13 hours'`)
		}},
		{"the account deactivated", func(t *testing.T) {
			if err := site.staff.SetActive(ctx, nil, u.ID, false); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			_ = site.staff.SetActive(ctx, nil, u.ID, true)
			b := &browser{site: site}
			if resp := b.signIn(t, "ravi@example.org", "a long enough password", "/"); resp.StatusCode != 303 {
				t.Fatalf("sign-in: %d", resp.StatusCode)
			}
			if resp, _ := b.do(t, "GET", "/", nil, nil); resp.StatusCode != 200 {
				t.Fatalf("before: %d", resp.StatusCode)
			}
			tt.end(t)
			if resp, _ := b.do(t, "GET", "/", nil, nil); resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
				t.Fatalf("after: %d %s, want sent to sign in", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
	// An HTMX request is told where to go instead.
	b := &browser{site: site}
	_ = site.staff.SetActive(ctx, nil, u.ID, true)
	b.signIn(t, "ravi@example.org", "a long enough password", "/")
	_, _ = site.db.Pool.Exec(ctx, `UPDATE staff_sessions SET last_seen_at = now() - interval '31 minutes'`)
	if resp, _ := b.do(t, "GET", "/", nil, map[string]string{"HX-Request": "true"}); resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("HX-Redirect"), "/login") {
		t.Fatalf("HTMX after the session ended: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestConsole_SignInGoesOnlyToThisSite(t *testing.T) {
	site := newConsoleSite(t, nil)
	hash, _ := auth.HashPassword("a long enough password")
	_, _ = site.staff.Create(context.Background(), "", "a@example.org", models.RoleViewer, hash)
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", "/\t/evil.example/x", "/%2F%2Fevil.example"} {
		b := &browser{site: site}
		if resp := b.signIn(t, "a@example.org", "a long enough password", next); resp.Header.Get("Location") != "/" {
			t.Errorf("next %q: went to %q", next, resp.Header.Get("Location"))
		}
	}
	// A sign-in posted from another site is refused.
	b := &browser{site: site}
	resp, _ := b.do(t, "POST", "/login", url.Values{"email": {"a@example.org"}, "password": {"a long enough password"}}, map[string]string{"Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != 403 || b.cookie != "" {
		t.Fatalf("cross-site sign-in: %d", resp.StatusCode)
	}
}

func newCryptoForTest(t testing.TB) store.Crypto {
	t.Helper()
	ring, err := crypt.NewKeyRing([]crypt.Key{{ID: "k1", Secret: []byte(strings.Repeat("e", 32))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ix, _ := crypt.NewIndexer([]byte(strings.Repeat("i", 32)))
	return store.Crypto{Ring: ring, Index: ix, Phones: phone.New("IN")}
}

// In Supabase mode the console signs in through Supabase Auth (the fake
// speaks GoTrue), keeps its tokens server-side, refreshes them before they
// expire, and signs out at Supabase too.
func TestConsole_SupabaseSignInRefreshAndSignOut(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	var gotrue *auth.GoTrue
	site := newConsoleSite(t, func(a *handlers.Access, staff *store.StaffStore) handlers.SignInProvider {
		keys, err := auth.JWKS(t.Context(), p.JWKSURL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		a.Verifier, _ = auth.NewVerifier(auth.VerifierConfig{Issuer: p.Issuer(), Keys: keys})
		gotrue = auth.NewGoTrue(p.URL, authtest.AnonKey, nil)
		return handlers.SupabaseSignIn{Client: gotrue, Staff: staff, Guard: auth.NewGuard()}
	})
	ctx := context.Background()
	staffID := p.AddUser("meera@example.org", "her supabase password")
	p.AddUser("outsider@example.org", "not on the staff list")
	if _, err := site.staff.Create(ctx, staffID, "meera@example.org", models.RoleSupervisor, ""); err != nil {
		t.Fatal(err)
	}

	b := &browser{site: site}
	if resp := b.signIn(t, "outsider@example.org", "not on the staff list", "/"); resp.StatusCode != 401 || b.cookie != "" {
		t.Fatalf("a Supabase user who is not staff: %d", resp.StatusCode)
	}
	if resp := b.signIn(t, "meera@example.org", "wrong", "/"); resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	if resp := b.signIn(t, "meera@example.org", "her supabase password", "/"); resp.StatusCode != 303 {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	resp, page := b.do(t, "GET", "/", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "meera@example.org · supervisor") {
		t.Fatalf("signed in: %d", resp.StatusCode)
	}
	// The access token nears its end, and the browser sends several
	// requests at once: one refreshes it (Supabase's refresh tokens are
	// single-use), the others take the new tokens, all go through.
	_, _ = site.db.Pool.Exec(ctx, `UPDATE staff_sessions SET access_expires_at = now() + interval '1 minute'`)
	var wg sync.WaitGroup
	statuses := make([]int, 6)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := (&browser{site: site, cookie: b.cookie}).do(t, "GET", "/", nil, nil)
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		if st != 200 {
			t.Fatalf("request %d during the refresh: %d", i, st)
		}
	}
	if p.Refreshes() != 1 {
		t.Fatalf("%d refreshes, want 1", p.Refreshes())
	}
	var left time.Duration
	_ = site.db.Pool.QueryRow(ctx, `SELECT access_expires_at - now() FROM staff_sessions WHERE revoked_at IS NULL`).Scan(&left)
	if left < 50*time.Minute {
		t.Fatalf("the renewed token lasts %v", left)
	}
	csrf := csrfRE.FindStringSubmatch(page)
	if n := p.LiveSessions(staffID); n != 1 {
		t.Fatalf("%d live sessions at Supabase before signing out", n)
	}
	if resp, _ := b.do(t, "POST", "/logout", url.Values{"_csrf": {csrf[1]}}, nil); resp.StatusCode != 303 {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	if n := p.LiveSessions(staffID); n != 0 {
		t.Fatal("the session was not signed out at Supabase")
	}
}

// Session keys rotate: a new pair goes first and signs, the old one still
// opens the cookies it made; a cookie of a key no longer listed opens
// nothing.
func TestConsole_SessionKeysRotate(t *testing.T) {
	pair := func(c byte) securecookie.Codec {
		return securecookie.New([]byte(strings.Repeat(string(c), 32)), []byte(strings.Repeat(string(c+1), 32)))
	}
	oldKey, newKey, gone := pair('o'), pair('n'), pair('g')
	site := newConsoleSiteWith(t, nil, []securecookie.Codec{newKey, oldKey})
	hash, _ := auth.HashPassword("a long enough password")
	u, _ := site.staff.Create(context.Background(), "", "a@example.org", models.RoleViewer, hash)
	sessions := store.NewSessionStore(site.db, newCryptoForTest(t))
	for _, tt := range []struct {
		label string
		codec securecookie.Codec
		want  int
	}{{"the new key", newKey, 200}, {"the old key", oldKey, 200}, {"a key no longer listed", gone, 303}} {
		name, err := sessions.Create(context.Background(), u.ID, "stale", "", time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		cookie, _ := securecookie.EncodeMulti("parley_session", name, tt.codec)
		site2 := &browser{site: site, cookie: cookie}
		// The stored access token is a stand-in: refresh it first (local mode
		// issues one while the account is active).
		_, _ = site.db.Pool.Exec(context.Background(), `UPDATE staff_sessions SET access_expires_at = now()`)
		if resp, _ := site2.do(t, "GET", "/", nil, nil); resp.StatusCode != tt.want {
			t.Errorf("a cookie made with %s: %d, want %d", tt.label, resp.StatusCode, tt.want)
		}
	}
}
