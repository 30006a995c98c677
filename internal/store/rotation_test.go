package store_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/store"
)

func TestEncryptedColumns_MatchTheSchema(t *testing.T) {
	db := newFixture(t).db
	var cols []string
	if err := db.Gorm.Raw(`SELECT table_name || '.' || column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND column_name LIKE '%\_enc' ORDER BY 1`).Scan(&cols).Error; err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, c := range store.EncryptedColumns {
		listed = append(listed, c.Table+"."+c.Name)
	}
	sort.Strings(listed)
	if fmt.Sprint(cols) != fmt.Sprint(listed) {
		t.Fatalf("schema's encrypted columns %v, store.EncryptedColumns %v: rotation would miss some", cols, listed)
	}
}

// rotationFixture holds data sealed under k1 and a ring whose active key is
// k2 with k1 still present.
type rotationFixture struct {
	*fixture
	rotated store.Crypto // k2 active, k1 still present
	k2      crypt.Key
	ids     []int64
}

func newRotationFixture(t *testing.T, messages int) *rotationFixture {
	t.Helper()
	k1, k2 := randomKey(t, "k1"), randomKey(t, "k2")
	f := newFixture(t)
	f.crypto = newCrypto(t, k1)
	f.contacts, f.messages = store.NewContactStore(f.db, f.crypto), store.NewMessageStore(f.db, f.crypto)
	rf := &rotationFixture{fixture: f, k2: k2}
	c := f.contact(t, "+919876543210", "Asha Verma")
	for i := range messages {
		rf.ids = append(rf.ids, f.message(t, c, fmt.Sprintf("message number %d", i)).ID)
	}
	rf.rotated = newCrypto(t, k2, k1)
	rf.rotated.Index = f.crypto.Index
	return rf
}

func keyCounts(t *testing.T, r *store.Rotator) map[string]int64 {
	t.Helper()
	counts, err := r.KeyCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, c := range counts {
		out[c.KeyID] += c.Count
	}
	return out
}

func TestRotator_ReencryptsEverythingWhileReadsGoOn(t *testing.T) {
	rf := newRotationFixture(t, 60)
	rot := store.NewRotator(rf.db, rf.rotated.Ring)
	rot.BatchSize = 7
	if got := keyCounts(t, rot); got["k1"] != 62 || got["k2"] != 0 { // 60 bodies, an address and a name
		t.Fatalf("before rotation: %v", got)
	}

	// Readers on the rotated ring, as a server restarted with k2 first.
	reader := store.NewMessageStore(rf.db, rf.rotated)
	var reads, failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := rf.ids[i%len(rf.ids)]
				m, err := reader.Get(context.Background(), id)
				if err != nil || m.Body == "" {
					failures.Add(1)
				}
				reads.Add(1)
			}
		}()
	}
	var lastDone, lastTotal int64
	err := rot.Run(context.Background(), func(done, total int64) { lastDone, lastTotal = done, total })
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if failures.Load() != 0 || reads.Load() == 0 {
		t.Fatalf("%d of %d reads during rotation failed", failures.Load(), reads.Load())
	}
	if got := keyCounts(t, rot); got["k1"] != 0 || got["k2"] != 62 {
		t.Fatalf("after rotation: %v, want all 62 values under k2", got)
	}
	if lastDone != 62 || lastTotal != 62 {
		t.Fatalf("progress ended at %d/%d, want 62/62", lastDone, lastTotal)
	}
	rf.assertOpensUnderNewKeyAlone(t)
	statuses, err := rot.Rotations(context.Background())
	if err != nil || len(statuses) != len(store.EncryptedColumns) {
		t.Fatalf("Rotations = %d rows, %v", len(statuses), err)
	}
	for _, s := range statuses {
		if s.FinishedAt == nil || s.TargetKey != "k2" {
			t.Errorf("%s.%s: finished %v target %q", s.Table, s.Name, s.FinishedAt, s.TargetKey)
		}
	}
}

func TestRotator_ResumesAfterAKill(t *testing.T) {
	rf := newRotationFixture(t, 40)
	rot := store.NewRotator(rf.db, rf.rotated.Ring)
	rot.BatchSize = 5

	ctx, kill := context.WithCancel(context.Background())
	batches := 0
	err := rot.Run(ctx, func(done, total int64) {
		batches++
		if batches == 4 { // the initial report, then three batches
			kill()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("killed run returned %v, want context.Canceled", err)
	}
	mid := keyCounts(t, rot)
	if mid["k1"] == 0 || mid["k2"] == 0 {
		t.Fatalf("after the kill: %v, want a mix of k1 and k2", mid)
	}

	var first int64 = -1
	if err := rot.Run(context.Background(), func(done, total int64) {
		if first < 0 {
			first = done
		}
	}); err != nil {
		t.Fatal(err)
	}
	if first <= 0 {
		t.Fatalf("resumed run started from %d rows done, want the killed run's progress", first)
	}
	if got := keyCounts(t, rot); got["k1"] != 0 || got["k2"] != 42 {
		t.Fatalf("after resuming: %v, want all 42 values under k2", got)
	}
	rf.assertOpensUnderNewKeyAlone(t)
}

// assertOpensUnderNewKeyAlone shows the old key is no longer needed.
func (rf *rotationFixture) assertOpensUnderNewKeyAlone(t *testing.T) {
	t.Helper()
	onlyNew := rf.rotated
	ring, err := crypt.NewKeyRing([]crypt.Key{rf.k2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	onlyNew.Ring = ring
	messages := store.NewMessageStore(rf.db, onlyNew)
	for _, id := range rf.ids {
		if m, err := messages.Get(context.Background(), id); err != nil || m.Body == "" {
			t.Fatalf("message %d does not open under k2 alone: %v", id, err)
		}
	}
	if c, err := store.NewContactStore(rf.db, onlyNew).FindByPhone(context.Background(), "+919876543210"); err != nil || len(c) != 1 || c[0].Name != "Asha Verma" {
		t.Fatalf("contact under k2 alone: %+v, %v", c, err)
	}
}
