package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/pipeline"
)

// BenchmarkPipeline_InboundToReply measures messages per second from
// ingest to every reply accepted by the fake Twilio API (through twilio-go),
// running the sample flow, with the same-run commit ceiling beside it.
func BenchmarkPipeline_InboundToReply(b *testing.B) {
	const contacts, perContact = 200, 3 // hello, a name, an age: four replies
	const replies = contacts * 4
	var rate, ceiling float64
	for b.Loop() {
		b.StopTimer()
		e := newEnvTB(b)
		notify := make(chan twiliotest.Sent, replies)
		e.api.Notify = notify
		p, err := pipeline.New(pipeline.Deps{
			DB: e.db, Crypto: e.crypto, Responder: pipeline.NewFlows(engine.Builtin(), e.db, e.crypto),
			Senders: map[string]channel.Sender{channel.Twilio: e.twilio},
			Config:  pipeline.Config{SendRate: 1e6, SendBurst: 1000, FetchInterval: 100 * time.Millisecond},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := p.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		for step, text := range []string{"hello", "Asha", "34"} {
			var batch []channel.Inbound
			for c := range contacts {
				batch = append(batch, sms(fmt.Sprintf("SM%d-%d", c, step), fmt.Sprintf("+9198%08d", c), text))
			}
			if _, err := p.Ingest(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
		deadline := time.After(5 * time.Minute)
		for i := range replies {
			select {
			case <-notify:
			case <-deadline:
				b.Fatalf("only %d of %d replies arrived", i, replies)
			}
		}
		rate = float64(contacts*perContact) / time.Since(start).Seconds()
		b.StopTimer()
		_ = p.Stop(context.Background())
		ceiling = pgtest.CommitCeiling(b, e.db, 4000, 16)
		b.StartTimer()
	}
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(ceiling, "commits/s")
	b.ReportMetric(rate/ceiling, "ratio")
	b.Logf("inbound to reply through the whole pipeline: %.0f messages/s (%d replies); same-run single-row commits %.0f/s; ratio %.3f",
		rate, replies, ceiling, rate/ceiling)
}

// BenchmarkIngest_DurableCommit calls Pipeline.Ingest directly from 64
// goroutines (no HTTP, no signatures): the database side of the webhook
// path, beside the same-run commit ceiling. The gap between its ratio and
// the webhook benchmark's (handlers) is what HTTP costs on this machine.
func BenchmarkIngest_DurableCommit(b *testing.B) {
	e := newEnvTB(b)
	e.db = pgtest.OpenDurable(b)
	p, err := pipeline.New(pipeline.Deps{DB: e.db, Crypto: e.crypto, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	const n, workers = 8000, 64
	var rate, ceiling float64
	round := 0
	for b.Loop() {
		round++
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1); i <= n; i = next.Add(1) {
					in := channel.Inbound{Provider: channel.Twilio, ProviderMessageID: fmt.Sprintf("SM%d-%d", round, i), From: fmt.Sprintf("+9198%08d", i%1000), Body: "hello there"}
					if _, err := p.Ingest(context.Background(), []channel.Inbound{in}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		rate = float64(n) / time.Since(start).Seconds()
		ceiling = max(pgtest.CommitCeiling(b, e.db, n/2, 16), pgtest.CommitCeiling(b, e.db, n/2, 64))
	}
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(ceiling, "commits/s")
	b.ReportMetric(rate/ceiling, "ratio")
	b.Logf("ingest to durable commit without HTTP: %.0f msgs/s; raw single-row commits %.0f/s; ratio %.2f", rate, ceiling, rate/ceiling)
}
