package auth

import (
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/models"
)

// Throttle limits failed sign-ins per key (an account, an address): at
// most Max failures within Window; past that the key is refused until the
// oldest failure ages out. It is per instance: with several instances an
// attacker gets Max per instance, still few.
type Throttle struct {
	Max    int
	Window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	fails map[string][]time.Time
}

// NewThrottle returns a throttle of max failures per window.
func NewThrottle(max int, window time.Duration) *Throttle {
	return &Throttle{Max: max, Window: window, now: time.Now, fails: map[string][]time.Time{}}
}

// Allowed reports whether key may try again now.
func (t *Throttle) Allowed(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.recent(key)) < t.Max
}

// Failed records a failure of key.
func (t *Throttle) Failed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fails[key] = append(t.recent(key), t.now())
	if len(t.fails) > 100_000 { // a flood of keys: forget the lot rather than grow without bound
		t.fails = map[string][]time.Time{}
	}
}

// Succeeded forgets key's failures.
func (t *Throttle) Succeeded(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, key)
}

// recent drops key's failures older than the window; t.mu is held.
func (t *Throttle) recent(key string) []time.Time {
	cut := t.now().Add(-t.Window)
	fails := t.fails[key]
	i := 0
	for i < len(fails) && fails[i].Before(cut) {
		i++
	}
	fails = fails[i:]
	if len(fails) == 0 {
		delete(t.fails, key)
		return nil
	}
	t.fails[key] = fails
	return fails
}

// Guard limits failed sign-ins per account and per address.
type Guard struct {
	PerAccount, PerAddress *Throttle
}

// NewGuard allows 5 failures per account and 20 per address in 15 minutes.
func NewGuard() *Guard {
	return &Guard{PerAccount: NewThrottle(5, 15*time.Minute), PerAddress: NewThrottle(20, 15*time.Minute)}
}

// Try runs signIn unless the account or the address failed too often
// lately (EUNAVAILABLE then, without trying); an EUNAUTHORIZED from
// signIn counts as a failure of both. Unknown accounts count like known
// ones, so the answer never tells them apart.
func (g *Guard) Try(email, ip string, signIn func() error) error {
	account := "account:" + strings.ToLower(strings.TrimSpace(email))
	address := "address:" + ip
	if !g.PerAccount.Allowed(account) || !g.PerAddress.Allowed(address) {
		return models.Errorf(models.EUNAVAILABLE, "Too many failed sign-ins; wait a few minutes and try again.")
	}
	err := signIn()
	switch models.ErrorCode(err) {
	case "":
		g.PerAccount.Succeeded(account)
	case models.EUNAUTHORIZED:
		g.PerAccount.Failed(account)
		g.PerAddress.Failed(address)
	}
	return err
}
