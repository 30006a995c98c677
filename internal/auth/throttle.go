package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/models"
)

// Guard limits failed sign-ins so that guessing is slow, without letting
// an attacker lock an account's owner out. It keys everything to the
// client's real address (see handlers' trusted-proxy setting; an IPv6
// client by its /64), first:
//
//   - per address: after 20 failures, whatever the accounts, the address
//     is refused until 15 minutes after its last failure. Only the
//     attacker's own address is stopped.
//   - per account and address: after 5 failures each further try from that
//     address waits a delay that doubles (1 s, 2 s, 4 s …, at most
//     5 minutes) counted from its own last failure.
//   - per account, from everywhere (many addresses against one account):
//     past 10 failures, an address that has itself failed on the account
//     waits the account's delay too (doubling, at most a minute), again
//     from its own last failure.
//
// An address with no failure on an account is never delayed for it, so
// the owner signing in from their own address gets in while the account
// is being attacked from elsewhere. A run of failures is forgotten 15
// minutes after its last one; a success forgets those of its account from
// its address.
//
// Where the counts live is the FailureLog's choice: in memory (NewGuard,
// per instance) or in the database, shared by every instance.
type Guard struct {
	log FailureLog
	now func() time.Time
}

// FailureLog keeps runs of failed sign-ins by key, and the attempts in
// flight. A run whose last failure is a window old is over: it reads as
// none, and the next failure starts a new one.
//
// An attempt is counted when it begins, in the same step that reads the
// runs, so that tries arriving together see each other: reading first and
// counting after the password check let any number of parallel guesses
// through at once.
type FailureLog interface {
	// Begin counts an attempt in flight under each key at now and returns
	// the runs of keys as they were just before it (other attempts still
	// in flight included).
	Begin(ctx context.Context, keys []string, now time.Time, window time.Duration) (map[string]Run, error)
	// End ends an attempt begun under keys: it is no longer in flight,
	// and when failed it counts as a failure of each key at now.
	End(ctx context.Context, keys []string, now time.Time, window time.Duration, failed bool) error
	// Clear forgets key's failures.
	Clear(ctx context.Context, key string) error
}

// Run is a key's failures since its run began (how many, and the last's
// time) and its attempts in flight.
type Run struct {
	Failures int
	Last     time.Time
	InFlight int
}

// InFlightFor is how long an attempt counts as in flight at most: one
// whose end was never recorded (its instance died, its deadline passed)
// stops counting then. A sign-in is bounded well within it. A FailureLog
// in a database ages its in-flight counts by it too.
const InFlightFor = time.Minute

// The limits described on Guard.
const (
	window   = 15 * time.Minute
	maxAddr  = 20
	pairFree = 5
	pairBase = time.Second
	pairCap  = 5 * time.Minute
	acctFree = 10
	acctBase = time.Second
	acctCap  = time.Minute
)

// NewGuard returns a guard keeping its counts in memory, per instance.
func NewGuard() *Guard { return &Guard{log: &memoryLog{runs: map[string]memoryRun{}}, now: time.Now} }

// WithLog makes the guard keep its counts in log (the database's, shared
// by every instance), and returns it.
func (g *Guard) WithLog(log FailureLog) *Guard {
	g.log = log
	return g
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
// lately (tries still in flight count as failures): then it returns an
// EUNAVAILABLE error wrapping *Throttled, without trying. An EUNAUTHORIZED from signIn counts as a failure.
// Unknown accounts count like known ones, so the answer never tells them
// apart.
func (g *Guard) Try(ctx context.Context, email, ip string, signIn func() error) error {
	account := strings.ToLower(strings.TrimSpace(email))
	from := addressKey(ip)
	keys := []string{"address:" + from, "pair:" + account + "\x00" + from, "account:" + account}
	runs, err := g.log.Begin(ctx, keys, g.now(), window)
	if err != nil {
		return err
	}
	if wait := g.wait(runs[keys[0]], runs[keys[1]], runs[keys[2]]); wait > 0 {
		if err := g.log.End(ctx, keys, g.now(), window, false); err != nil {
			return err
		}
		secs := int((wait + time.Second - 1) / time.Second)
		return models.Wrap(&Throttled{Wait: wait}, models.EUNAVAILABLE,
			fmt.Sprintf("Too many failed sign-ins; try again in %d seconds.", secs))
	}
	err = signIn()
	// Only a wrong password counts: an outage (EUNAVAILABLE) is nothing
	// the client did.
	failed := models.ErrorCode(err) == models.EUNAUTHORIZED
	if eerr := g.log.End(ctx, keys, g.now(), window, failed); eerr != nil {
		return eerr
	}
	if err == nil {
		// The address's own failures stay: signing in to an account of
		// one's own must not buy more guesses at others.
		if cerr := g.log.Clear(ctx, keys[1]); cerr != nil {
			return cerr
		}
	}
	return err
}

// addressKey is the address the throttle counts ip under: an IPv6 client
// by its /64, the block one subscriber is given (rotating through it
// would otherwise start afresh with every address), an IPv4 one (mapped
// into IPv6 or not) by itself.
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// wait is how long an address must wait before trying an account, given
// its runs: the address's, the pair's and the account's.
//
// An attempt in flight counts as a failure at now: it may yet be one, and
// counting it so is what stops a burst of parallel guesses.
func (g *Guard) wait(address, pair, account Run) time.Duration {
	now := g.now()
	address, pair, account = address.pessimistic(now), pair.pessimistic(now), account.pessimistic(now)
	var wait time.Duration
	if address.Failures >= maxAddr {
		wait = address.Last.Add(window).Sub(now)
	}
	if pair.Failures == 0 {
		return wait // no failure of its own on this account: never delayed for it
	}
	wait = max(wait, pair.Last.Add(backoff(pair.Failures, pairFree, pairBase, pairCap)).Sub(now))
	return max(wait, pair.Last.Add(backoff(account.Failures, acctFree, acctBase, acctCap)).Sub(now))
}

// pessimistic is r with its attempts in flight counted as failures at now.
func (r Run) pessimistic(now time.Time) Run {
	if r.InFlight <= 0 {
		return r
	}
	return Run{Failures: r.Failures + r.InFlight, Last: now}
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

// memoryLog is a FailureLog in this instance's memory: several instances
// multiply an attacker's allowance by their number, and a restart forgets.
type memoryLog struct {
	mu   sync.Mutex
	runs map[string]memoryRun
}

// memoryRun is a key's run and when its latest attempt began.
type memoryRun struct {
	Run
	began time.Time
}

// maxKeys bounds the memory log: a flood of keys forgets the lot rather
// than grow without bound.
const maxKeys = 300_000

func (m *memoryLog) Begin(_ context.Context, keys []string, now time.Time, window time.Duration) (map[string]Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bound()
	out := map[string]Run{}
	for _, k := range keys {
		r := m.runs[k]
		if now.Sub(r.began) > InFlightFor {
			r.InFlight = 0
		}
		seen := r.Run
		if now.Sub(r.Last) > window {
			seen.Failures, seen.Last = 0, time.Time{}
		}
		out[k] = seen
		r.InFlight++
		r.began = now
		m.runs[k] = r
	}
	return out, nil
}

func (m *memoryLog) End(_ context.Context, keys []string, now time.Time, window time.Duration, failed bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		r := m.runs[k]
		r.InFlight = max(r.InFlight-1, 0)
		if failed {
			if now.Sub(r.Last) > window {
				r.Failures = 0
			}
			r.Failures++
			r.Last = now
		}
		m.runs[k] = r
	}
	return nil
}

func (m *memoryLog) Clear(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.runs[key]; ok {
		r.Failures, r.Last = 0, time.Time{}
		m.runs[key] = r
	}
	return nil
}

// bound forgets the lot when the keys pass maxKeys (callers hold mu).
func (m *memoryLog) bound() {
	if len(m.runs) > maxKeys {
		m.runs = map[string]memoryRun{}
	}
}
