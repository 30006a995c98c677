package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
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

// BenchmarkPipeline_InboundToReply is an in-process benchmark, not what
// users get: it hands Ingest hundreds of messages a commit without HTTP,
// and its fake Twilio answers in microseconds inside the same process. It
// shows what the pipeline's statements cost; the end-to-end figure
// (the built binary, webhooks over HTTP, a provider with latency in its
// own process) is cmd/parley's BenchmarkServe_AnsweredPerSecond.
//
// It measures messages per second from
// ingest to every reply accepted by the fake Twilio API (through twilio-go),
// running the sample flow on a running pipeline, with the same-run commit
// ceiling beside it. "durable" runs on a cluster of its own with fsync on,
// as production does (the yardstick of the README's table); "throwaway"
// on the shared test cluster, fsync off, where commits cost next to
// nothing and the statements themselves are what is measured.
// "conversation" is 200 contacts writing three times each, one commit
// after another (each message waits for the one before it of its
// contact); "wave" is a broadcast answered: 10,000 contacts writing once,
// in commits of 500.
func BenchmarkPipeline_InboundToReply(b *testing.B) {
	conversation := replyLoad{contacts: 200, texts: []string{"hello", "Asha", "34"}, replies: 4, perCommit: 200}
	wave := replyLoad{contacts: 10000, texts: []string{"hello"}, replies: 2, perCommit: 500}
	b.Run("durable", func(b *testing.B) { benchInboundToReply(b, true, conversation) })
	b.Run("durable-wave", func(b *testing.B) { benchInboundToReply(b, true, wave) })
	b.Run("throwaway", func(b *testing.B) { benchInboundToReply(b, false, conversation) })
	// The same wave, smaller, with the fake Twilio answering after the
	// 150 ms the real APIs take: what bounds the calls in flight shows.
	slow := replyLoad{contacts: 3000, texts: []string{"hello"}, replies: 2, perCommit: 500, latency: 150 * time.Millisecond}
	b.Run("durable-wave-150ms", func(b *testing.B) { benchInboundToReply(b, true, slow) })
}

// replyLoad is what the contacts of an inbound-to-reply run write.
type replyLoad struct {
	contacts  int
	texts     []string      // what each contact writes, in turn
	replies   int           // how many replies the flow gives one contact for them all
	perCommit int           // messages an ingest commit holds (a group of webhooks)
	latency   time.Duration // how long the fake Twilio takes to answer a send
}

func benchInboundToReply(b *testing.B, durable bool, load replyLoad) {
	messages, replies := load.contacts*len(load.texts), load.contacts*load.replies
	e := newEnvTB(b)
	if durable {
		e.db = pgtest.OpenDurable(b)
	}
	var rate, ceiling, busy, self float64
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		notify := make(chan twiliotest.Sent, replies)
		e.api.Notify = notify
		e.api.Delay = load.latency
		p, err := pipeline.New(pipeline.Deps{
			DB: e.db, Crypto: e.crypto, Responder: pipeline.NewFlows(engine.Builtin(), e.db, e.crypto),
			Senders: map[string]channel.Sender{channel.Twilio: e.twilio}, Logger: slog.New(slog.DiscardHandler),
			Config: pipeline.Config{SendRate: 1e6, SendBurst: 1000},
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		census := pgtest.Census(b, e.db, messages)
		b.StartTimer()
		m0, s0 := cpuNow()
		start := time.Now()
		var batch []channel.Inbound
		for step, text := range load.texts {
			for c := range load.contacts {
				batch = append(batch, sms(fmt.Sprintf("SM%d-%d-%d", round, c, step), fmt.Sprintf("+91%d%08d", 90+round, c), text))
				if len(batch) == load.perCommit || c == load.contacts-1 {
					if _, err := p.Ingest(context.Background(), batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
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
		rate = float64(messages) / time.Since(start).Seconds()
		b.StopTimer()
		m1, s1 := cpuNow()
		busy, self = m1-m0, s1-s0
		census()
		_ = p.Stop(context.Background())
		ceiling = pgtest.CommitCeiling(b, e.db, 4000, 16)
		b.StartTimer()
	}
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(ceiling, "commits/s")
	b.ReportMetric(rate/ceiling, "ratio")
	b.ReportMetric(float64(e.api.MostInFlight()), "most-in-flight")
	b.Logf("inbound to reply through the whole pipeline: %.0f messages/s (%d from %d contacts, %d replies); same-run single-row commits %.0f/s; ratio %.3f; "+
		"CPU per message %.1f ms, %.1f ms of it this process (Go, and the fake Twilio API)",
		rate, messages, load.contacts, replies, ceiling, rate/ceiling, 1000*busy/float64(messages), 1000*self/float64(messages))
}

// cpuNow returns the CPU seconds the machine and this process have used
// (Linux; zeros elsewhere): the machine's share beside this process's says
// whether PostgreSQL or Go is the limit.
func cpuNow() (machine, self float64) {
	const tick = 100 // USER_HZ
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		var user, nice, sys, idle, iowait, irq, softirq float64
		if _, err := fmt.Sscanf(string(b), "cpu %f %f %f %f %f %f %f", &user, &nice, &sys, &idle, &iowait, &irq, &softirq); err == nil {
			machine = (user + nice + sys + irq + softirq) / tick
		}
	}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		// The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
		if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 12 {
			utime, _ := strconv.ParseFloat(f[11], 64)
			stime, _ := strconv.ParseFloat(f[12], 64)
			self = (utime + stime) / tick
		}
	}
	return machine, self
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
