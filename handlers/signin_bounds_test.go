package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Supabase Auth down is no failed sign-in: the answer is 503 and neither
// the record of failed sign-ins nor the throttle counts it, so an outage
// neither fills the record nor throttles staff once Supabase is back.
func TestConsole_SupabaseDownIsNoFailedSignIn(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"message":"upstream unavailable"}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(broken.Close)
	guard := auth.NewGuard()
	site := newConsoleSite(t, func(_ *handlers.Access, staff *store.StaffStore) handlers.SignInProvider {
		return handlers.SupabaseSignIn{Client: auth.NewGoTrue(broken.URL, "anon", nil), Staff: staff, Guard: guard}
	})
	guard.WithLog(store.NewSignInThrottle(site.db, site.crypto)) // the database's, as served
	for range 6 {                                                // past the five free failures, were they counted
		if resp := signInFrom(t, site, "198.51.100.7", "asha@example.org", "a long enough password"); resp.StatusCode != 503 {
			t.Fatalf("Supabase down: %d, want 503", resp.StatusCode)
		}
	}
	var recorded, failures, inFlight int
	if err := site.db.Pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM sign_in_failures),
		(SELECT coalesce(sum(failures), 0) FROM sign_in_throttle), (SELECT coalesce(sum(in_flight), 0) FROM sign_in_throttle)`).
		Scan(&recorded, &failures, &inFlight); err != nil {
		t.Fatal(err)
	}
	if recorded != 0 || failures != 0 || inFlight != 0 {
		t.Fatalf("an outage recorded %d failed sign-ins, counted %d throttle failures, left %d in flight", recorded, failures, inFlight)
	}
}

// Everything a sign-in waits on (the throttle's counts, the provider, the
// record of failures, the audit) has a deadline, whether the sign-in fails
// or succeeds: none waits as long as the client cares to stay connected.
func TestConsole_SignInWorkHasADeadline(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	seen := &deadlines{}
	guard := auth.NewGuard()
	site := newConsoleSite(t, func(a *handlers.Access, staff *store.StaffStore) handlers.SignInProvider {
		a.Audit = deadlineAuditor{Auditor: a.Audit, seen: seen}
		a.Local.Guard = guard // the API's token route too
		return handlers.SupabaseSignIn{Client: auth.NewGoTrue(p.URL, authtest.AnonKey, nil), Staff: staff, Guard: guard}
	})
	guard.WithLog(deadlineLog{FailureLog: store.NewSignInThrottle(site.db, site.crypto), seen: seen})
	staffID := p.AddUser("meera@example.org", "her supabase password")
	if _, err := site.staff.Create(t.Context(), staffID, "meera@example.org", models.RoleSupervisor, ""); err != nil {
		t.Fatal(err)
	}
	if resp := signInFrom(t, site, "198.51.100.7", "meera@example.org", "wrong"); resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	if resp := signInFrom(t, site, "198.51.100.7", "meera@example.org", "her supabase password"); resp.StatusCode != 303 {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	// The API's sign-in (the local provider's token route), failing.
	req, _ := http.NewRequest("POST", site.base+"/auth/v1/token?grant_type=password", strings.NewReader(`{"email":"meera@example.org","password":"wrong"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("the API's wrong password: %d", resp.StatusCode)
	}
	calls, unbounded := seen.report()
	// Begin, End, SignInFailed; Begin, End, Clear, Record; Begin, End, SignInFailed.
	if calls < 10 || len(unbounded) > 0 {
		t.Fatalf("%d calls seen; without a deadline: %v", calls, unbounded)
	}
}

// deadlines notes which calls ran without a deadline, or with one further
// off than a sign-in may take.
type deadlines struct {
	mu        sync.Mutex
	calls     int
	unbounded []string
}

func (d *deadlines) note(ctx context.Context, call string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > time.Minute {
		d.unbounded = append(d.unbounded, call)
	}
}

func (d *deadlines) report() (int, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls, d.unbounded
}

// deadlineAuditor is the real audit store, watched.
type deadlineAuditor struct {
	handlers.Auditor
	seen *deadlines
}

func (a deadlineAuditor) Record(ctx context.Context, e *models.AuditEvent) error {
	a.seen.note(ctx, "Record")
	return a.Auditor.Record(ctx, e)
}

func (a deadlineAuditor) SignInFailed(ctx context.Context, email, via, ip string, throttled bool) error {
	a.seen.note(ctx, "SignInFailed")
	return a.Auditor.SignInFailed(ctx, email, via, ip, throttled)
}

// deadlineLog is the real throttle store, watched.
type deadlineLog struct {
	auth.FailureLog
	seen *deadlines
}

func (l deadlineLog) Begin(ctx context.Context, keys []string, now time.Time, window time.Duration) (map[string]auth.Run, error) {
	l.seen.note(ctx, "Begin")
	return l.FailureLog.Begin(ctx, keys, now, window)
}

func (l deadlineLog) End(ctx context.Context, keys []string, now time.Time, window time.Duration, failed bool) error {
	l.seen.note(ctx, "End")
	return l.FailureLog.End(ctx, keys, now, window, failed)
}

func (l deadlineLog) Clear(ctx context.Context, key string) error {
	l.seen.note(ctx, "Clear")
	return l.FailureLog.Clear(ctx, key)
}
