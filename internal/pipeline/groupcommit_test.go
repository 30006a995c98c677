package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
)

// A batch of webhooks whose shared transaction fails (its connection
// killed while it waits on a slow commit), and whose retries one by one
// cannot commit before their deadlines: every one is answered with an
// error, and nothing is stored or queued, so no error hides a stored
// message and no 200 a lost one. Redelivered after a restart, each is
// stored once; delivered a third time, acknowledged and stored no more.
func TestIngest_AFailedBatchAnswersEveryMemberWithAnError(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	metrics := pipeline.NewMetrics(reg)
	newPipeline := func() *pipeline.Pipeline {
		p, err := pipeline.New(pipeline.Deps{DB: e.db, Crypto: e.crypto, Metrics: metrics, Logger: slog.New(slog.DiscardHandler),
			Config: pipeline.Config{IngestTimeout: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := newPipeline()
	const n = 30
	messages := make([]channel.Inbound, n)
	for i := range messages {
		messages[i] = sms(fmt.Sprintf("SMfail%03d", i), fmt.Sprintf("+9198765%05d", i), "hi")
	}
	ingestAll := func(p *pipeline.Pipeline) ([]int, []error) {
		stored, errs := make([]int, n), make([]error, n)
		var wg sync.WaitGroup
		for i := range messages {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stored[i], errs[i] = p.Ingest(context.Background(), messages[i:i+1])
			}()
		}
		wg.Wait()
		return stored, errs
	}

	ctx := context.Background()
	hold, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(ctx) //nolint:errcheck // released below; this is for a failure before
	if _, err := hold.Exec(ctx, "LOCK TABLE contacts IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var errs []error
	done := make(chan struct{})
	go func() { _, errs = ingestAll(p); close(done) }()
	// Once every webhook is in, kill the batches' connections where they
	// wait: their transactions fail as a dropped connection fails them.
	waitFor(t, "every webhook waiting for its commit", func() bool {
		return gathered(t, reg, "parley_ingest_pending", "") == n
	})
	if _, err := e.db.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if models.ErrorCode(err) != models.EUNAVAILABLE {
			t.Fatalf("webhook %d: %v, want unavailable (never a false acknowledgement)", i, err)
		}
	}
	if got := e.count(t, "SELECT count(*) FROM messages"); got != 0 {
		t.Fatalf("%d messages stored behind errors", got)
	}
	if got := e.count(t, "SELECT count(*) FROM river_job"); got != 0 {
		t.Fatalf("%d jobs queued behind errors", got)
	}
	if failed := gathered(t, reg, "parley_ingest_commits_total", "failed"); failed < 2 {
		t.Fatalf("%.0f failed ingest transactions, want the batch's and its retries'", failed)
	}

	// The platform redelivers, to a restarted instance.
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	p = newPipeline()
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	for round, want := range []int{1, 0} {
		stored, errs := ingestAll(p)
		for i := range messages {
			if errs[i] != nil || stored[i] != want {
				t.Fatalf("delivery %d of webhook %d: stored %d, %v; want %d stored and no error", round+2, i, stored[i], errs[i], want)
			}
		}
		if got := e.count(t, "SELECT count(*) FROM messages"); got != n {
			t.Fatalf("after delivery %d: %d messages stored, want %d", round+2, got, n)
		}
	}
}

// gathered is the value of reg's metric name (a counter or gauge), of the
// series with outcome when one is given.
func gathered(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if outcome != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != outcome) {
				continue
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
