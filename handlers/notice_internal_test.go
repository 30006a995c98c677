package handlers

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
)

// heldCounter is the real store's count, held at its start until release
// is closed (or the caller's deadline passes), so a test sees callers
// arrive while a read is in flight.
type heldCounter struct {
	real    WaitingCounter
	calls   atomic.Int64
	entered chan struct{}
	release chan struct{}
}

func (h *heldCounter) Waiting(ctx context.Context) (int64, error) {
	if h.calls.Add(1) == 1 {
		close(h.entered)
	}
	select {
	case <-h.release:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return h.real.Waiting(ctx)
}

// Fifty pages asking at once make one query, and all hear its count; one
// whose deadline passes while that query runs is answered with its own
// deadline, not kept waiting.
func TestWaitingCache_OneQueryForManyPages(t *testing.T) {
	db := pgtest.Open(t)
	h := &heldCounter{real: store.NewConversationStore(db, store.Crypto{}), entered: make(chan struct{}), release: make(chan struct{})}
	w := &waitingCache{src: h, ttl: time.Hour}
	var wg sync.WaitGroup
	got := make([]int64, 50)
	errs := make([]error, 50)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = w.get(context.Background())
		}()
	}
	<-h.entered
	late, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.get(late); !errors.Is(err, context.Canceled) {
		t.Errorf("a caller past its deadline during the read: %v", err)
	}
	close(h.release)
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != 0 {
			t.Fatalf("page %d: %d %v", i, got[i], errs[i])
		}
	}
	if n := h.calls.Load(); n != 1 {
		t.Fatalf("%d queries for fifty pages, want 1", n)
	}
}
