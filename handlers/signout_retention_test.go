package handlers_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Retention running between a logout during an outage and its retried
// sign-out keeps the session's row (the job reads its tokens there), so
// the session still ends at Supabase; once signed out, the row goes.
func TestConsole_RetentionKeepsASessionWhoseSignOutIsPending(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	site := supabaseSite(t, p)
	ctx := t.Context()
	id, b := supabaseMember(t, site, p, "meera@example.org", models.RoleAgent)
	_, page := b.do(t, "GET", "/status", nil, nil)
	csrf := csrfRE.FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no CSRF token on the page")
	}
	p.Down.Store(true)
	if resp, _ := b.do(t, "POST", "/logout", url.Values{"_csrf": {csrf[1]}}, nil); resp.StatusCode != 303 {
		t.Fatalf("sign-out during the outage: %d", resp.StatusCode)
	}
	p.Down.Store(false)

	retention := store.NewRetentionStore(site.db)
	everything := store.Cut{Before: time.Now().Add(time.Hour)}
	if _, err := retention.Purge(ctx, everything, 100); err != nil {
		t.Fatal(err)
	}
	sessions := func() (n int) {
		t.Helper()
		if err := site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM staff_sessions WHERE user_id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := sessions(); n != 1 {
		t.Fatalf("%d session rows after retention, want 1: its sign-out at Supabase is still pending", n)
	}

	if err := site.pipe.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		var pending int
		if err := site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'supabase_sign_out' AND state <> 'completed'`).
			Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sign-out job never completed")
		}
		time.Sleep(20 * time.Millisecond) // polling the queue, not waiting for a guess
	}
	if n := p.LiveSessions(id); n != 0 {
		t.Fatalf("%d live sessions at Supabase after the retried sign-out, want 0", n)
	}
	if _, err := retention.Purge(ctx, everything, 100); err != nil {
		t.Fatal(err)
	}
	if n := sessions(); n != 0 {
		t.Fatalf("%d session rows after the sign-out and retention, want 0", n)
	}
}
