package handlers

import (
	"bufio"
	"context"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
)

// pollStream answers c with server-sent events that follow a state read
// by get every pollEvery, for streamFor (the browser then reconnects):
// announce for each new state, ": idle" between. The first state is
// announced when it differs from seen(first), what the client last saw. A
// failed read ends the stream; the browser reconnects and asks again.
func pollStream[T comparable](c *fiber.Ctx, pollEvery, streamFor time.Duration, seen func(first T) T,
	get func(context.Context) (T, error), announce func(*bufio.Writer, T)) error {
	first, err := get(c.UserContext())
	if err != nil {
		return err
	}
	last := seen(first)
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		// Not the request's context: Fiber reuses it once the handler
		// has returned, and the stream outlives the handler.
		ctx, cancel := context.WithTimeout(context.Background(), streamFor)
		defer cancel()
		fmt.Fprint(w, "retry: 2000\n\n")
		if first != last {
			last = first
			announce(w, last)
		}
		if w.Flush() != nil {
			return
		}
		tick := time.NewTicker(pollEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			now, err := get(ctx)
			switch {
			case err != nil:
				return
			case now != last:
				last = now
				announce(w, last)
			default:
				fmt.Fprint(w, ": idle\n\n")
			}
			if w.Flush() != nil {
				return // the browser left
			}
		}
	})
	return nil
}
