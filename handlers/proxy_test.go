package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// signInFrom posts the sign-in form as it arrives through Cloud Run's
// front end: xff is X-Forwarded-For as the proxy passes it on (whatever
// the client sent, then the client's address).
func signInFrom(t *testing.T, site *consoleSite, xff, email, password string) *http.Response {
	t.Helper()
	b := &browser{site: site}
	resp, _ := b.do(t, "POST", "/login", map[string][]string{"email": {email}, "password": {password}, "next": {"/"}},
		map[string]string{"X-Forwarded-For": xff})
	return resp
}

// Behind a trusted proxy the sign-in throttle and the audit log key on the
// client's address, the proxy's last X-Forwarded-For entry, never on the
// proxy's own address or on what the client wrote into the header: an
// attacker is slowed (the owner is not), and one client's failures do not
// stop another behind the same proxy.
func TestConsole_ThrottleKeysOnTheClientBehindAProxy(t *testing.T) {
	frozen := time.Now() // the guard's clock stands still: a wait never runs out mid-test
	site := newConsoleSite(t, func(a *handlers.Access, staff *store.StaffStore) handlers.SignInProvider {
		a.Local.Guard = auth.NewGuard().WithClock(func() time.Time { return frozen })
		return handlers.LocalSignIn{LocalProvider: a.Local, Staff: staff}
	})
	ctx := context.Background()
	for _, email := range []string{"asha@example.org", "ravi@example.org"} {
		hash, _ := auth.HashPassword("a long enough password")
		if _, err := site.staff.Create(ctx, "", email, models.RoleViewer, hash); err != nil {
			t.Fatal(err)
		}
	}
	const attacker, owner = "198.51.100.7", "203.0.113.5"

	// An attacker guesses Asha's password: after five failures even the
	// right one waits, with Retry-After saying how long.
	for i := range 5 {
		if resp := signInFrom(t, site, attacker, "asha@example.org", "guess"+strconv.Itoa(i)); resp.StatusCode != 401 {
			t.Fatalf("failure %d: %d", i+1, resp.StatusCode)
		}
	}
	resp := signInFrom(t, site, attacker, "asha@example.org", "a long enough password")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the attacker's sixth try: %d (Retry-After %q), want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Writing the owner's address first in X-Forwarded-For changes
	// nothing: the proxy appended the attacker's real one.
	if resp := signInFrom(t, site, owner+", "+attacker, "asha@example.org", "a long enough password"); resp.StatusCode != 429 {
		t.Fatalf("a spoofed leftmost entry: %d, want 429", resp.StatusCode)
	}
	// Asha, from her own address, signs in at once.
	if resp := signInFrom(t, site, owner, "asha@example.org", "a long enough password"); resp.StatusCode != 303 {
		t.Fatalf("the owner from her own address: %d, want 303", resp.StatusCode)
	}

	// Another client trying many accounts is stopped after 20 failures;
	// Ravi, behind the same proxy, is not.
	const sprayer, colleague = "192.0.2.44", "192.0.2.45"
	for i := range 20 {
		if resp := signInFrom(t, site, sprayer, fmt.Sprintf("nobody%d@example.org", i), "guess"); resp.StatusCode != 401 {
			t.Fatalf("spray %d: %d", i+1, resp.StatusCode)
		}
	}
	if resp := signInFrom(t, site, sprayer, "ravi@example.org", "a long enough password"); resp.StatusCode != 429 {
		t.Fatalf("the sprayer's 21st: %d, want 429", resp.StatusCode)
	}
	if resp := signInFrom(t, site, colleague, "ravi@example.org", "a long enough password"); resp.StatusCode != 303 {
		t.Fatalf("Ravi behind the same proxy: %d, want 303", resp.StatusCode)
	}

	// The audit log (sign-ins) and the record of failed ones name the
	// clients, not the proxy.
	var ips []string
	if err := site.db.Gorm.WithContext(ctx).Raw(`SELECT DISTINCT ip FROM (SELECT ip FROM audit_events WHERE action = 'staff.sign_in'
		UNION SELECT last_ip FROM sign_in_failures) a ORDER BY ip`).Scan(&ips).Error; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ips) != fmt.Sprint([]string{sprayer, colleague, attacker, owner}) {
		t.Fatalf("audited addresses %v, want the four clients'", ips)
	}
}

// Supabase Auth down (unreachable, or answering 5xx) is a 503 on the
// sign-in page, not the client's fault (429).
func TestConsole_SupabaseDownAnswers503(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"message":"An invalid response was received from the upstream server"}`, http.StatusBadGateway)
	}))
	t.Cleanup(broken.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // nothing listens there any more
	for _, url := range []string{broken.URL, gone.URL} {
		site := newConsoleSite(t, func(_ *handlers.Access, staff *store.StaffStore) handlers.SignInProvider {
			return handlers.SupabaseSignIn{Client: auth.NewGoTrue(url, "anon", nil), Staff: staff, Guard: auth.NewGuard()}
		})
		resp := signInFrom(t, site, "198.51.100.7", "asha@example.org", "a long enough password")
		if resp.StatusCode != 503 {
			t.Fatalf("Supabase at %s down: %d, want 503", url, resp.StatusCode)
		}
	}
}
