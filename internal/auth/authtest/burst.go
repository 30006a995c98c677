package authtest

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// Burst makes n sign-in tries at once from ip, the i-th through
// guards[i%len(guards)] (instances sharing a log) at emailOf(i), each a wrong password, and returns how many reached the
// password check. No check answers until every try has either reached it
// or been refused, so every try is decided while all the others are in
// flight: a throttle that reads its counts before a check and writes
// them after lets the whole burst through.
func Burst(ctx context.Context, guards []*auth.Guard, n int, emailOf func(i int) string, ip string) (reached int, errs []error) {
	var (
		count   atomic.Int64
		decided sync.WaitGroup
		done    sync.WaitGroup
		mu      sync.Mutex
		release = make(chan struct{})
	)
	decided.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			inCheck := false
			err := guards[i%len(guards)].Try(ctx, emailOf(i), ip, func() error {
				inCheck = true
				count.Add(1)
				decided.Done()
				select {
				case <-release:
				case <-ctx.Done():
				}
				return auth.ErrWrongCredentials
			})
			if !inCheck {
				decided.Done()
			}
			if _, throttled := auth.ThrottledFor(err); err != nil && !throttled && models.ErrorCode(err) != models.EUNAUTHORIZED {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	decided.Wait()
	close(release)
	done.Wait()
	return int(count.Load()), errs
}
