package store_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/auth"
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
