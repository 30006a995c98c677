package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/store"
)

// A retention pass deletes failed sign-ins (each keeps an address) past
// the retention's cut, even when that is sooner than their own 30 days,
// and the throttle's dead rows, without waiting for a new failure to
// sweep them; newer ones stay.
func TestRetention_ClearsOldSignInFailuresAndThrottleRows(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	audit := store.NewAuditStore(f.db, f.crypto)
	ages := map[string]string{"ancient@example.org": "45 days", "past-cut@example.org": "20 days", "recent@example.org": "5 days"}
	for email, age := range ages {
		if err := audit.SignInFailed(ctx, email, "console", "198.51.100.7", false); err != nil {
			t.Fatal(err)
		}
		fp := audit.Fingerprint(email)
		if _, err := f.db.Pool.Exec(ctx, `UPDATE sign_in_failures SET window_start = window_start - $2::interval,
			first_at = first_at - $2::interval, last_at = last_at - $2::interval WHERE encode(email_fp, 'hex') = $1`, fp, age); err != nil {
			t.Fatal(err)
		}
	}
	guard := auth.NewGuard().WithLog(store.NewSignInThrottle(f.db, f.crypto))
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		if err := guard.Try(ctx, "asha@example.org", ip, func() error { return auth.ErrWrongCredentials }); err == nil {
			t.Fatal("a wrong password went through")
		}
	}
	// The first address's rows (and the account's) are two hours old.
	if _, err := f.db.Pool.Exec(ctx, `UPDATE sign_in_throttle SET last_at = now() - interval '2 hours', began_at = now() - interval '2 hours'
		WHERE last_at = (SELECT min(last_at) FROM sign_in_throttle)`); err != nil {
		t.Fatal(err)
	}
	throttleBefore := f.countRows(t, `SELECT count(*) FROM sign_in_throttle`)
	aged := f.countRows(t, `SELECT count(*) FROM sign_in_throttle WHERE last_at < now() - interval '1 hour'`)
	if aged == 0 || aged == throttleBefore {
		t.Fatalf("%d of %d throttle rows aged: the test needs some of each", aged, throttleBefore)
	}

	if _, err := store.NewRetentionStore(f.db).Purge(ctx, store.Cut{Before: time.Now().AddDate(0, 0, -14)}, 1); err != nil {
		t.Fatal(err)
	}
	var left []string
	for email := range ages {
		if f.countRows(t, fmt.Sprintf(`SELECT count(*) FROM sign_in_failures WHERE encode(email_fp, 'hex') = '%s'`, audit.Fingerprint(email))) > 0 {
			left = append(left, email)
		}
	}
	if len(left) != 1 || left[0] != "recent@example.org" {
		t.Fatalf("failed sign-ins left %v, want only the recent one", left)
	}
	if n := f.countRows(t, `SELECT count(*) FROM sign_in_throttle`); n != throttleBefore-aged {
		t.Fatalf("%d throttle rows left of %d, want the %d fresh ones", n, throttleBefore, throttleBefore-aged)
	}
}
