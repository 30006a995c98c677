package auth_test

import (
	"fmt"
	"testing"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// Failed sign-ins are limited per account and per address; accounts that
// do not exist count alike, and a success clears its account's failures.
func TestGuard_LimitsPerAccountAndPerAddress(t *testing.T) {
	g := auth.NewGuard()
	wrong := func() error { return auth.ErrWrongCredentials }
	right := func() error { return nil }
	code := func(err error) string { return models.ErrorCode(err) }

	// One account from many addresses: the sixth try is refused untried.
	for i := range 5 {
		if c := code(g.Try("asha@example.org", fmt.Sprintf("192.0.2.%d", i), wrong)); c != models.EUNAUTHORIZED {
			t.Fatalf("failure %d: %s", i+1, c)
		}
	}
	tried := false
	err := g.Try("ASHA@example.org", "192.0.2.99", func() error { tried = true; return nil })
	if code(err) != models.EUNAVAILABLE || tried {
		t.Fatalf("the sixth try: %v (tried %v), want refused without trying", err, tried)
	}

	// One address trying many accounts, known or not: the 21st is refused.
	for i := range 20 {
		if c := code(g.Try(fmt.Sprintf("nobody%d@example.org", i), "198.51.100.7", wrong)); c != models.EUNAUTHORIZED {
			t.Fatalf("failure %d from one address: %s", i+1, c)
		}
	}
	if c := code(g.Try("someone-else@example.org", "198.51.100.7", right)); c != models.EUNAVAILABLE {
		t.Fatalf("the 21st from one address: %s, want refused", c)
	}

	// A success clears its account's failures.
	for range 4 {
		g.Try("ravi@example.org", "203.0.113.1", wrong)
	}
	if err := g.Try("ravi@example.org", "203.0.113.1", right); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if c := code(g.Try("ravi@example.org", "203.0.113.1", wrong)); c != models.EUNAUTHORIZED {
			t.Fatalf("after a success, failure %d: %s", i+1, c)
		}
	}
}
