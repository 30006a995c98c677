package handlers

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/auth"
)

// WaitingCounter counts the conversations waiting for a person
// (store.ConversationStore.Waiting).
type WaitingCounter interface {
	Waiting(ctx context.Context) (int64, error)
}

// waitingCache shares one count among every open console page of this
// instance: a count younger than ttl is answered from memory, and an older
// one is asked for once however many pages want it at the same time, so 50
// open tabs make one query per ttl, not 50.
type waitingCache struct {
	src WaitingCounter
	ttl time.Duration

	mu    sync.Mutex
	n     int64
	at    time.Time     // when n was read; zero: never
	ahead chan struct{} // closed when the read in flight ends; nil: none
}

// get returns the count, reading it when it is older than ttl. A caller
// that finds a read in flight waits for it, but never past its own
// deadline.
func (w *waitingCache) get(ctx context.Context) (int64, error) {
	for {
		w.mu.Lock()
		if !w.at.IsZero() && time.Since(w.at) < w.ttl {
			n := w.n
			w.mu.Unlock()
			return n, nil
		}
		if ahead := w.ahead; ahead != nil {
			w.mu.Unlock()
			select {
			case <-ahead:
				continue // read by another caller (or failed: try in turn)
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		ahead := make(chan struct{})
		w.ahead = ahead
		w.mu.Unlock()

		n, err := w.src.Waiting(ctx)
		w.mu.Lock()
		if err == nil {
			w.n, w.at = n, time.Now()
		}
		w.ahead = nil
		close(ahead)
		w.mu.Unlock()
		return n, err
	}
}

// waiting answers the count as JSON, for a page without event streams
// and for scripts.
func waiting(w *waitingCache) fiber.Handler {
	return func(c *fiber.Ctx) error {
		n, err := w.get(c.UserContext())
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(fiber.Map{"waiting": n})
	}
}

// waitingEvents streams the count (server-sent events, "waiting" with the
// count as data and id) to every console page of a member who works
// hand-offs: at once when it connects, then whenever it changes, paced and
// ended as the conversation page's stream is (Inbox.PollEvery, StreamFor).
// A count names nobody, so the stream is not audited.
func (in *Inbox) waitingEvents(w *waitingCache) fiber.Handler {
	return func(c *fiber.Ctx) error {
		pollEvery, streamFor := in.pace()
		unseen := func(int64) int64 { return -1 } // the count is told at once
		return pollStream(c, pollEvery, streamFor, unseen, w.get, announceWaiting)
	}
}

// pace is how often the live streams look for changes and how long one
// lasts (2 s and 15 s unless the Inbox says otherwise).
func (in *Inbox) pace() (pollEvery, streamFor time.Duration) {
	pollEvery, streamFor = in.PollEvery, in.StreamFor
	if pollEvery <= 0 {
		pollEvery = 2 * time.Second
	}
	if streamFor <= 0 {
		streamFor = 15 * time.Second
	}
	return pollEvery, streamFor
}

// announceWaiting writes one "waiting" event carrying the count.
func announceWaiting(out *bufio.Writer, n int64) {
	s := strconv.FormatInt(n, 10)
	fmt.Fprintf(out, "id: %s\nevent: waiting\ndata: %s\n\n", s, s)
}

// registerWaiting serves the count to members who work hand-offs, when
// the conversations' store can count them.
func (in *Inbox) registerWaiting(app *fiber.App, signedIn fiber.Handler) {
	src, ok := in.Convs.(WaitingCounter)
	if !ok {
		return
	}
	pollEvery, _ := in.pace()
	w := &waitingCache{src: src, ttl: pollEvery}
	work := require(auth.HandoffWork)
	app.Get("/handoffs/waiting", signedIn, work, waiting(w))
	app.Get("/handoffs/waiting/events", signedIn, work, in.waitingEvents(w))
}
