package auth

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/models"
)

// Guard limits failed sign-ins so that guessing is slow, without letting
// an attacker lock an account's owner out. It keys everything to the
// client's real address (see handlers' trusted-proxy setting), first:
//
//   - per address: at most 20 failures in 15 minutes, whatever the
//     accounts; past that the address is refused until its oldest failure
//     ages out. Only the attacker's own address is stopped.
//   - per account and address: after 3 failures each further try from that
//     address waits a delay that doubles (1 s, 2 s, 4 s …, at most
//     5 minutes) counted from its own last failure.
//   - per account, from everywhere (many addresses against one account):
//     past 10 failures, an address that has itself failed on the account
//     waits the account's delay too (doubling, at most a minute), again
//     from its own last failure.
//
// An address with no failure on an account is never delayed for it, so
// the owner signing in from their own address gets in while the account
// is being attacked from elsewhere. Failures are forgotten 15 minutes
// after the last one; a success forgets those of its account from its
// address.
//
// The state is in memory, per instance: with several instances an
// attacker's allowance is multiplied by their number, which stays small;
// a restart forgets it.
type Guard struct {
	mu       sync.Mutex
	now      func() time.Time
	address  map[string][]time.Time // failures per address, oldest first
	pair     map[string]*streak     // per account and address
	account  map[string]*streak     // per account
	maxAddr  int
	window   time.Duration
	pairFree int
	pairBase time.Duration
	pairCap  time.Duration
	acctFree int
	acctBase time.Duration
	acctCap  time.Duration
}

// streak is a run of failures: how many, and the last one's time.
type streak struct {
	n    int
	last time.Time
}

// maxKeys bounds each map: a flood of keys forgets the lot rather than
// grow without bound.
const maxKeys = 100_000

// NewGuard returns a guard with the limits described on Guard.
func NewGuard() *Guard {
	return &Guard{now: time.Now, address: map[string][]time.Time{}, pair: map[string]*streak{}, account: map[string]*streak{},
		maxAddr: 20, window: 15 * time.Minute,
		pairFree: 3, pairBase: time.Second, pairCap: 5 * time.Minute,
		acctFree: 10, acctBase: time.Second, acctCap: time.Minute}
}

// WithClock makes the guard read the time from now instead of the
// system clock (tests step it by hand), and returns it.
func (g *Guard) WithClock(now func() time.Time) *Guard {
	g.now = now
	return g
}

// Throttled is why a sign-in was refused untried: Wait is how long until
// it may be tried again.
type Throttled struct{ Wait time.Duration }

func (t *Throttled) Error() string { return fmt.Sprintf("sign-in throttled for %v", t.Wait) }

// ThrottledFor returns how long a refused sign-in must wait, and whether
// err is such a refusal (rather than, say, Supabase being down).
func ThrottledFor(err error) (time.Duration, bool) {
	var t *Throttled
	if errors.As(err, &t) {
		return t.Wait, true
	}
	return 0, false
}

// Try runs signIn unless the address or the account failed too often
// lately: then it returns an EUNAVAILABLE error wrapping *Throttled,
// without trying. An EUNAUTHORIZED from signIn counts as a failure.
// Unknown accounts count like known ones, so the answer never tells them
// apart.
func (g *Guard) Try(email, ip string, signIn func() error) error {
	account := strings.ToLower(strings.TrimSpace(email))
	pair := account + "\x00" + ip
	if wait := g.wait(account, pair, ip); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		return models.Wrap(&Throttled{Wait: wait}, models.EUNAVAILABLE,
			fmt.Sprintf("Too many failed sign-ins; try again in %d seconds.", secs))
	}
	err := signIn()
	switch models.ErrorCode(err) {
	case "":
		g.succeeded(pair)
	case models.EUNAUTHORIZED:
		g.failed(account, pair, ip)
	}
	return err
}

// wait is how long this address must wait before trying this account.
func (g *Guard) wait(account, pair, ip string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	var wait time.Duration
	if fails := g.recent(ip, now); len(fails) >= g.maxAddr {
		wait = fails[0].Add(g.window).Sub(now)
	}
	p := g.streak(g.pair, pair, now)
	if p == nil {
		return wait // no failure of its own on this account: never delayed for it
	}
	wait = max(wait, p.last.Add(backoff(p.n, g.pairFree, g.pairBase, g.pairCap)).Sub(now))
	if a := g.streak(g.account, account, now); a != nil {
		wait = max(wait, p.last.Add(backoff(a.n, g.acctFree, g.acctBase, g.acctCap)).Sub(now))
	}
	return wait
}

// backoff is the delay after n failures: none for the first free ones,
// then base doubling up to limit.
func backoff(n, free int, base, limit time.Duration) time.Duration {
	if n < free {
		return 0
	}
	if shift := n - free; shift < 30 && base<<shift < limit {
		return base << shift
	}
	return limit
}

func (g *Guard) failed(account, pair, ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.address[ip] = append(g.recent(ip, now), now)
	for key, m := range map[string]map[string]*streak{pair: g.pair, account: g.account} {
		s := g.streak(m, key, now)
		if s == nil {
			s = &streak{}
			m[key] = s
		}
		s.n, s.last = s.n+1, now
	}
	for _, n := range []int{len(g.address), len(g.pair), len(g.account)} {
		if n > maxKeys {
			g.address, g.pair, g.account = map[string][]time.Time{}, map[string]*streak{}, map[string]*streak{}
			return
		}
	}
}

// succeeded forgets the failures of this account from this address. The
// address's own failures stay: signing in to an account of one's own must
// not buy more guesses at others.
func (g *Guard) succeeded(pair string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.pair, pair)
}

// streak returns key's streak unless it ended a window ago; g.mu is held.
func (g *Guard) streak(m map[string]*streak, key string, now time.Time) *streak {
	s := m[key]
	if s != nil && now.Sub(s.last) > g.window {
		delete(m, key)
		return nil
	}
	return s
}

// recent drops ip's failures older than the window; g.mu is held.
func (g *Guard) recent(ip string, now time.Time) []time.Time {
	cut := now.Add(-g.window)
	fails := g.address[ip]
	i := 0
	for i < len(fails) && fails[i].Before(cut) {
		i++
	}
	fails = fails[i:]
	if len(fails) == 0 {
		delete(g.address, ip)
		return nil
	}
	g.address[ip] = fails
	return fails
}
