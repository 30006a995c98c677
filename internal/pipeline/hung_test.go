package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// hungDatabase accepts connections and never answers: a database behind a
// broken proxy, or one stuck on its disk.
func hungDatabase(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return fmt.Sprintf("postgres://parley@%s/parley?sslmode=disable", ln.Addr())
}

// More webhooks than one batch holds, against a database that never
// answers: each is answered "unavailable" by its deadline, none held for
// the batch's retries one by one.
func TestIngest_AHungDatabaseAnswersEveryRequestByItsDeadline(t *testing.T) {
	e := newEnv(t)
	db, err := store.Open(context.Background(), hungDatabase(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	const bound = time.Second
	p, err := pipeline.New(pipeline.Deps{DB: db, Crypto: e.crypto, Config: pipeline.Config{IngestTimeout: bound}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })

	const n = 80
	var wg sync.WaitGroup
	took := make([]time.Duration, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, errs[i] = p.Ingest(context.Background(), []channel.Inbound{sms(fmt.Sprintf("SM%d", i), fmt.Sprintf("+9198765%05d", i), "hi")})
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	var longest time.Duration
	for i := range n {
		if models.ErrorCode(errs[i]) != models.EUNAVAILABLE {
			t.Fatalf("request %d: err = %v, want unavailable", i, errs[i])
		}
		longest = max(longest, took[i])
	}
	t.Logf("slowest answer %v", longest)
	// The deadline, and the moment it takes to notice it; before the fix a
	// failed batch retried each request alone with ten seconds apiece.
	if longest > 3*bound {
		t.Fatalf("the slowest answer took %v, want about %v", longest, bound)
	}

	// Delivery statuses, the other thing webhooks store, are held no longer.
	start := time.Now()
	err = p.ApplyStatuses(context.Background(), []channel.Status{{Provider: channel.Twilio, ProviderMessageID: "SM1", Status: models.StatusDelivered}})
	if models.ErrorCode(err) != models.EUNAVAILABLE || time.Since(start) > 3*bound {
		t.Fatalf("a status against the hung database: %v after %v", err, time.Since(start))
	}
}
