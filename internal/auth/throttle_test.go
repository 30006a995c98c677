package auth_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/models"
)

// clock is a time the test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newGuard() (*auth.Guard, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)}
	return auth.NewGuard().WithClock(c.now), c
}
func wrong() error { return auth.ErrWrongCredentials }
func waitOf(t *testing.T, err error) time.Duration {
	t.Helper()
	w, ok := auth.ThrottledFor(err)
	if !ok || models.ErrorCode(err) != models.EUNAVAILABLE {
		t.Fatalf("want a throttled refusal, got %v", err)
	}
	return w
}

// An attacker hammering an account from one address is slowed more and
// more (the wait doubles), while the owner signs in from their own
// address at once; nobody is locked out of the account.
func TestGuard_BackoffSlowsTheAttackerNotTheOwner(t *testing.T) {
	g, c := newGuard()
	const attacker, owner = "198.51.100.7", "203.0.113.5"
	for i := range 5 { // the first five failures are free
		if err := g.Try(t.Context(), "asha@example.org", attacker, wrong); models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	var waits []time.Duration
	for range 6 {
		tried := false
		w := waitOf(t, g.Try(t.Context(), "ASHA@example.org", attacker, func() error { tried = true; return nil }))
		if tried {
			t.Fatal("a throttled try reached the password check")
		}
		waits = append(waits, w)
		c.add(w) // wait it out, fail again
		if err := g.Try(t.Context(), "asha@example.org", attacker, wrong); models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Fatalf("after waiting %v: %v", w, err)
		}
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] != 2*waits[i-1] {
			t.Fatalf("waits %v: each should double", waits)
		}
	}
	// The owner, from their own address, is not held up at all.
	if err := g.Try(t.Context(), "asha@example.org", owner, func() error { return nil }); err != nil {
		t.Fatalf("the owner from their own address: %v", err)
	}
	// The wait stops growing at 5 minutes (the address stays under its
	// own limit of 20 failures here).
	var last time.Duration
	for range 8 {
		last = waitOf(t, g.Try(t.Context(), "asha@example.org", attacker, wrong))
		if last > 5*time.Minute {
			t.Fatalf("wait %v beyond the cap", last)
		}
		c.add(last)
		if err := g.Try(t.Context(), "asha@example.org", attacker, wrong); models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Fatalf("after waiting %v: %v", last, err)
		}
	}
	if last != 5*time.Minute {
		t.Fatalf("the last wait %v, want the cap of 5 minutes", last)
	}
}

// One address trying many accounts, known or not, is refused after 20
// failures until 15 minutes after its last; other addresses are not.
func TestGuard_LimitsEachAddress(t *testing.T) {
	g, c := newGuard()
	for i := range 20 {
		if err := g.Try(t.Context(), fmt.Sprintf("nobody%d@example.org", i), "198.51.100.7", wrong); models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Fatalf("failure %d from one address: %v", i+1, err)
		}
	}
	if w := waitOf(t, g.Try(t.Context(), "someone-else@example.org", "198.51.100.7", func() error { return nil })); w != 15*time.Minute {
		t.Fatalf("the 21st from one address waits %v, want 15m", w)
	}
	if err := g.Try(t.Context(), "someone-else@example.org", "198.51.100.8", func() error { return nil }); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// Signing in to an account of one's own buys no more guesses.
	c.add(time.Minute)
	if _, ok := auth.ThrottledFor(g.Try(t.Context(), "mine@example.org", "198.51.100.7", func() error { return nil })); !ok {
		t.Fatal("an address past its limit signed in")
	}
	c.add(15 * time.Minute)
	if err := g.Try(t.Context(), "someone-else@example.org", "198.51.100.7", func() error { return nil }); err != nil {
		t.Fatalf("15 minutes later: %v", err)
	}
}

// Many addresses against one account: each address is slowed after its
// own first failure once the account has had 10, but an address with no
// failure on the account (the owner's) is not.
func TestGuard_ManyAddressesAgainstOneAccount(t *testing.T) {
	g, _ := newGuard()
	for i := range 10 {
		if err := g.Try(t.Context(), "ravi@example.org", fmt.Sprintf("192.0.2.%d", i), wrong); models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	waitOf(t, g.Try(t.Context(), "ravi@example.org", "192.0.2.3", wrong))
	if err := g.Try(t.Context(), "ravi@example.org", "203.0.113.5", func() error { return nil }); err != nil {
		t.Fatalf("the owner's address: %v", err)
	}
}

// A burst of tries from one address, all at once, gets no more to the
// password check than the limits allow: five at one account, twenty at
// as many accounts as it likes (the address's limit).
func TestGuard_ABurstGetsNoMoreThanTheLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		emailOf func(int) string
		limit   int
	}{
		{"one account", func(int) string { return "asha@example.org" }, 5},
		{"many accounts", func(i int) string { return fmt.Sprintf("nobody%d@example.org", i) }, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := newGuard()
			reached, errs := authtest.Burst(t.Context(), []*auth.Guard{g}, 200, tc.emailOf, "198.51.100.7")
			if len(errs) > 0 {
				t.Fatal(errs[0])
			}
			if reached != tc.limit {
				t.Fatalf("%d of 200 tries reached the password check, want %d", reached, tc.limit)
			}
		})
	}
}

// An IPv6 client is counted by its /64: rotating through the addresses
// of its block buys no more guesses, while the next block is not held up.
func TestGuard_CountsIPv6ByItsSlash64(t *testing.T) {
	g, _ := newGuard()
	for i := range 20 {
		ip := fmt.Sprintf("2001:db8:1:2::%x", i+1)
		if err := g.Try(t.Context(), fmt.Sprintf("nobody%d@example.org", i), ip, wrong); models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	if _, ok := auth.ThrottledFor(g.Try(t.Context(), "asha@example.org", "2001:db8:1:2:ffff:1:2:3", func() error { return nil })); !ok {
		t.Fatal("a new address in the same /64 went through")
	}
	if err := g.Try(t.Context(), "asha@example.org", "2001:db8:1:3::1", func() error { return nil }); err != nil {
		t.Fatalf("the next /64: %v", err)
	}
	// An account's own backoff follows the block too.
	for i := range 5 {
		if err := g.Try(t.Context(), "ravi@example.org", fmt.Sprintf("2001:db8:9:9::%x", i+1), wrong); models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Fatalf("ravi failure %d: %v", i+1, err)
		}
	}
	waitOf(t, g.Try(t.Context(), "ravi@example.org", "2001:db8:9:9::ff", wrong))
	// IPv4, bare or mapped, is its own address.
	for i := range 20 {
		if err := g.Try(t.Context(), fmt.Sprintf("v4-%d@example.org", i), "192.0.2.1", wrong); models.ErrorCode(err) != models.EUNAUTHORIZED {
			t.Fatalf("v4 failure %d: %v", i+1, err)
		}
	}
	waitOf(t, g.Try(t.Context(), "x@example.org", "::ffff:192.0.2.1", wrong))
	if err := g.Try(t.Context(), "x@example.org", "192.0.2.2", func() error { return nil }); err != nil {
		t.Fatalf("the next IPv4 address: %v", err)
	}
}
