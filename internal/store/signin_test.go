package store_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Two instances on one database share the sign-in throttle: failures on
// one slow the next try on the other, an address past its limit is
// refused on both, and no email or address is stored as such.
func TestSignInFailures_SharedByInstances(t *testing.T) {
	db := pgtest.Open(t)
	c := newCrypto(t, randomKey(t, "k1"))
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	first := auth.NewGuard().WithLog(store.NewSignInThrottle(db, c)).WithClock(clock)
	second := auth.NewGuard().WithLog(store.NewSignInThrottle(db, c)).WithClock(clock)
	wrong := func() error { return auth.ErrWrongCredentials }
	ctx := t.Context()

	for i, g := range []*auth.Guard{first, second, first, second, first} {
		if err := g.Try(ctx, "asha@example.org", "198.51.100.7", wrong); models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	if _, ok := auth.ThrottledFor(second.Try(ctx, "asha@example.org", "198.51.100.7", func() error { return nil })); !ok {
		t.Fatal("five failures across two instances: the next try went through")
	}
	if err := second.Try(ctx, "asha@example.org", "203.0.113.5", func() error { return nil }); err != nil {
		t.Fatalf("the owner from her own address: %v", err)
	}
	// The delay passes; a success clears the account's run from there.
	now = now.Add(time.Minute)
	if err := first.Try(ctx, "asha@example.org", "198.51.100.7", func() error { return nil }); err != nil {
		t.Fatalf("after the delay: %v", err)
	}
	if err := second.Try(ctx, "asha@example.org", "198.51.100.7", wrong); models.ErrorCode(err) != models.EUNAUTHORIZED {
		t.Fatalf("a failure after the success is the first of a new run: %v", err)
	}

	// A run is over 15 minutes after its last failure.
	for i := range 20 {
		g := []*auth.Guard{first, second}[i%2]
		if err := g.Try(ctx, "nobody"+string(rune('a'+i))+"@example.org", "192.0.2.44", wrong); models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Fatalf("spray %d: %v", i+1, err)
		}
	}
	if _, ok := auth.ThrottledFor(first.Try(ctx, "ravi@example.org", "192.0.2.44", func() error { return nil })); !ok {
		t.Fatal("an address past its 20 failures went through")
	}
	now = now.Add(15*time.Minute + time.Second)
	if err := second.Try(ctx, "ravi@example.org", "192.0.2.44", func() error { return nil }); err != nil {
		t.Fatalf("15 minutes after the last failure: %v", err)
	}

	var keys [][]byte
	rows, err := db.Pool.Query(ctx, `SELECT key FROM sign_in_throttle`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k []byte
		_ = rows.Scan(&k)
		keys = append(keys, k)
	}
	for _, k := range keys {
		for _, plain := range []string{"asha", "example.org", "198.51.100.7", "192.0.2.44"} {
			if bytes.Contains(k, []byte(plain)) {
				t.Fatalf("a key holds %q in the clear", plain)
			}
		}
	}
}

// Tries arriving together, through two instances, see each other: of 200
// at once from one address, no more than the limits allow reach the
// password check (five at one account, twenty across many), and none
// stays counted in flight once all have ended.
func TestSignInThrottle_ABurstGetsNoMoreThanTheLimit(t *testing.T) {
	db := pgtest.Open(t)
	c := newCrypto(t, randomKey(t, "k1"))
	guards := []*auth.Guard{auth.NewGuard().WithLog(store.NewSignInThrottle(db, c)), auth.NewGuard().WithLog(store.NewSignInThrottle(db, c))}
	for _, tc := range []struct {
		name    string
		ip      string
		emailOf func(int) string
		limit   int
	}{
		{"one account", "198.51.100.7", func(int) string { return "asha@example.org" }, 5},
		{"many accounts", "198.51.100.8", func(i int) string { return fmt.Sprintf("nobody%d@example.org", i) }, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reached, errs := authtest.Burst(t.Context(), guards, 200, tc.emailOf, tc.ip)
			if len(errs) > 0 {
				t.Fatal(errs[0])
			}
			if reached > tc.limit || reached == 0 {
				t.Fatalf("%d of 200 tries reached the password check, want at most %d", reached, tc.limit)
			}
		})
	}
	var inFlight int
	if err := db.Pool.QueryRow(t.Context(), `SELECT coalesce(sum(in_flight), 0) FROM sign_in_throttle`).Scan(&inFlight); err != nil || inFlight != 0 {
		t.Fatalf("%d attempts still counted in flight (%v)", inFlight, err)
	}
}
