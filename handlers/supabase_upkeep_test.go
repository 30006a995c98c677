package handlers_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// supabaseSite is the real server in Supabase mode against the GoTrue
// fake, with the pipeline's sign-in upkeep (not started: a test starts
// it when it wants its jobs run).
func supabaseSite(t *testing.T, p *authtest.Project) *consoleSite {
	t.Helper()
	db := pgtest.Open(t)
	crypto := newCryptoForTest(t)
	readiness, _ := store.NewReadiness(db)
	site := &consoleSite{db: db, staff: store.NewStaffStore(db), logs: &lockedBuffer{}, crypto: crypto}
	keys, err := auth.JWKS(t.Context(), p.JWKSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	verifier, _ := auth.NewVerifier(auth.VerifierConfig{Issuer: p.Issuer(), Keys: keys})
	gotrue := auth.NewGoTrue(p.URL, authtest.AnonKey, nil)
	sessions := store.NewSessionStore(db, crypto)
	access := &handlers.Access{Verifier: verifier, Staff: site.staff, Audit: store.NewAuditStore(db, crypto),
		Remote: gotrue.Admin(authtest.ServiceRoleKey)}
	pipe, err := pipeline.New(pipeline.Deps{DB: db, Crypto: crypto, Logger: slog.New(slog.DiscardHandler),
		Supabase: auth.SupabaseUsers{Auth: gotrue, Admin: gotrue.Admin(authtest.ServiceRoleKey)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pipe.Stop(context.Background()) })
	site.pipe = pipe
	console := &handlers.Console{Access: access, Sessions: sessions, SignOutLater: pipe.SignOutLater,
		Provider: handlers.SupabaseSignIn{Client: gotrue, Staff: site.staff, Guard: auth.NewGuard()},
		Codecs:   []securecookie.Codec{securecookie.New([]byte(strings.Repeat("h", 32)), []byte(strings.Repeat("b", 32)))},
		CSRFKey:  []byte(strings.Repeat("c", 32)), Secure: true}
	app := handlers.NewServer(handlers.Deps{Logger: slog.New(slog.NewJSONHandler(site.logs, nil)), Readiness: readiness,
		Registry: prometheus.NewRegistry(), Version: "test", Access: access, Console: console})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	site.base = "http://" + ln.Addr().String()
	return site
}

// supabaseMember adds a user to the project and to the staff, and signs
// them in to the console.
func supabaseMember(t *testing.T, site *consoleSite, p *authtest.Project, email string, role models.Role) (string, *browser) {
	t.Helper()
	id := p.AddUser(email, "their supabase password")
	if _, err := site.staff.Create(context.Background(), id, email, role, ""); err != nil {
		t.Fatal(err)
	}
	b := &browser{site: site}
	if resp := b.signIn(t, email, "their supabase password", "/"); resp.StatusCode != 303 {
		t.Fatalf("%s signs in: %d", email, resp.StatusCode)
	}
	return id, b
}

// signedIn reports whether the browser's session still opens a page.
func (b *browser) signedIn(t *testing.T) bool {
	t.Helper()
	resp, _ := b.do(t, "GET", "/status", nil, nil)
	return resp.StatusCode == 200
}

// A logout while Supabase Auth is down ends the session here at once, and
// at Supabase later: a job retries the sign-out once Auth is back. The
// session's token was about to expire, so the logout goes through without
// the refresh Auth cannot give, and the job refreshes before signing out.
func TestConsole_SignOutDuringAnOutageIsRetried(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	site := supabaseSite(t, p)
	id, b := supabaseMember(t, site, p, "meera@example.org", models.RoleAgent)
	_, page := b.do(t, "GET", "/status", nil, nil)
	csrf := csrfRE.FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no CSRF token on the page")
	}
	cookie := b.cookie
	if _, err := site.db.Pool.Exec(t.Context(), `UPDATE staff_sessions SET access_expires_at = now() + interval '30 seconds'`); err != nil {
		t.Fatal(err)
	}

	p.Down.Store(true)
	if resp, _ := b.do(t, "POST", "/logout", url.Values{"_csrf": {csrf[1]}}, nil); resp.StatusCode != 303 {
		t.Fatalf("sign-out during the outage: %d", resp.StatusCode)
	}
	if (&browser{site: site, cookie: cookie}).signedIn(t) {
		t.Fatal("the session still opens pages after signing out")
	}
	p.Down.Store(false)
	if n := p.LiveSessions(id); n != 1 {
		t.Fatalf("%d live sessions at Supabase before the retry, want 1 (the outage kept it)", n)
	}
	if err := site.pipe.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); p.LiveSessions(id) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the session was never signed out at Supabase")
		}
		time.Sleep(20 * time.Millisecond) // polling the fake, not waiting for a guess
	}
	if p.Refreshes() != 1 {
		t.Fatalf("%d refreshes, want 1: the job renews the nearly expired token before signing out", p.Refreshes())
	}
}

// A user banned or deleted at Supabase directly loses console and API
// access at the next re-check (driven here, every 5 minutes in service),
// and is listed as inactive; the check during an outage changes nobody.
func TestRecheck_BannedOrDeletedAtSupabaseLoseAccess(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	site := supabaseSite(t, p)
	ctx := t.Context()
	adminID, admin := supabaseMember(t, site, p, "admin@example.org", models.RoleAdmin)
	bannedID, banned := supabaseMember(t, site, p, "banned@example.org", models.RoleAgent)
	goneID, gone := supabaseMember(t, site, p, "gone@example.org", models.RoleViewer)
	bannedToken := p.Sign(p.Claims(bannedID, "banned@example.org"))
	supa := auth.NewGoTrue(p.URL, authtest.AnonKey, nil).Admin(authtest.ServiceRoleKey)
	if err := supa.SetBanned(ctx, bannedID, true); err != nil {
		t.Fatal(err)
	}
	if err := supa.Delete(ctx, goneID); err != nil {
		t.Fatal(err)
	}
	if !banned.signedIn(t) || !gone.signedIn(t) {
		t.Fatal("before the re-check the sessions are expected to still open (the tokens are valid)")
	}

	// Supabase down: nobody is signed out.
	p.Down.Store(true)
	if n, err := site.pipe.Recheck(ctx); models.ErrorCode(err) != models.EUNAVAILABLE || n != 0 {
		t.Fatalf("re-check during an outage: %d, %v", n, err)
	}
	p.Down.Store(false)
	if !admin.signedIn(t) || !banned.signedIn(t) {
		t.Fatal("an outage signed people out")
	}

	if n, err := site.pipe.Recheck(ctx); err != nil || n != 2 {
		t.Fatalf("re-check: %d deactivated, %v; want 2", n, err)
	}
	if banned.signedIn(t) || gone.signedIn(t) {
		t.Fatal("a member banned or deleted at Supabase still opens pages")
	}
	if !admin.signedIn(t) {
		t.Fatal("the admin, in good standing, was signed out")
	}
	req, _ := http.NewRequest("GET", site.base+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+bannedToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("the banned member's token on the API: %v %v, want 403", resp, err)
	}
	req, _ = http.NewRequest("GET", site.base+"/api/v1/staff", nil)
	req.Header.Set("Authorization", "Bearer "+p.Sign(p.Claims(adminID, "admin@example.org")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Staff []struct {
			ID     string `json:"id"`
			Active bool   `json:"active"`
		} `json:"staff"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	active := map[string]bool{}
	for _, s := range list.Staff {
		active[s.ID] = s.Active
	}
	if !active[adminID] || active[bannedID] || active[goneID] || len(active) != 3 {
		t.Fatalf("staff list %+v: want the banned and the deleted inactive", list.Staff)
	}
}

// Supabase Auth down since the start: a console session is kept (503, not
// signed out, since nothing can be said of its token), and opens pages
// again within a second or two of Auth's return.
func TestConsole_SessionOutlivesAKeySetOutageAtStart(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	p.Down.Store(true)
	site := supabaseSite(t, p) // its key set cannot load
	p.Down.Store(false)
	id := p.AddUser("meera@example.org", "her supabase password")
	if _, err := site.staff.Create(context.Background(), id, "meera@example.org", models.RoleAgent, ""); err != nil {
		t.Fatal(err)
	}
	b := &browser{site: site}
	if resp := b.signIn(t, "meera@example.org", "her supabase password", "/"); resp.StatusCode != 303 {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	p.Down.Store(true)
	if resp, _ := b.do(t, "GET", "/status", nil, nil); resp.StatusCode != 503 {
		t.Fatalf("a page while the key set cannot load: %d, want 503", resp.StatusCode)
	}
	p.Down.Store(false)
	for deadline := time.Now().Add(5 * time.Second); !b.signedIn(t); { // well short of the 30 s between refreshes
		if time.Now().After(deadline) {
			t.Fatal("the session does not open pages 5 s after Supabase Auth came back")
		}
	}
}
