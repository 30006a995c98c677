package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
)

// benchSetting is an integer setting of a benchmark from the environment.
func benchSetting(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkBroadcast_PlanThenSendBesideReplies plans a broadcast of
// 100,000 contacts twice on a cluster with fsync on, as production runs:
// from a CSV of new numbers (contacts created, recipients written), then
// from a filter over those contacts; each plan is confirmed, which queues
// its driver. It then runs the filter's broadcast through a fake Twilio
// answering in 150 ms at the configured send rate, while people who wrote
// get their replies: one inbound message every 50 ms, answered by Ack.
// It reports the plan times, the broadcast's sends a second (between its
// 1,000th send and the window's end) and the replies' latency from ingest
// to Twilio during the broadcast, and in the five seconds before it.
//
// PARLEY_BENCH_BROADCAST_CONTACTS (100000), PARLEY_BENCH_BROADCAST_RATE
// (sends a second, 500) and PARLEY_BENCH_BROADCAST_WINDOW (broadcast
// sends measured, 10000) shape it.
func BenchmarkBroadcast_PlanThenSendBesideReplies(b *testing.B) {
	contacts := benchSetting("PARLEY_BENCH_BROADCAST_CONTACTS", 100000)
	rate := benchSetting("PARLEY_BENCH_BROADCAST_RATE", 500)
	window := min(benchSetting("PARLEY_BENCH_BROADCAST_WINDOW", 10000), contacts)
	e := newEnvTB(b)
	e.db = pgtest.OpenDurable(b)
	e.api.Delay = 150 * time.Millisecond
	e.addTemplates(b, visitReminder)
	ctx := context.Background()
	for b.Loop() {
		p, err := pipeline.New(pipeline.Deps{DB: e.db, Crypto: e.crypto, Responder: pipeline.Ack{Text: "thanks"},
			Senders: map[string]channel.Sender{channel.Twilio: e.twilio}, Templates: envRegistry{e}, Logger: slog.New(slog.DiscardHandler),
			Config: pipeline.Config{SendRate: float64(rate), FetchInterval: 20 * time.Millisecond}})
		if err != nil {
			b.Fatal(err)
		}
		var csv strings.Builder
		csv.WriteString("phone,name\n")
		for i := range contacts {
			fmt.Fprintf(&csv, "+9198%08d,Person %d\n", i, i)
		}
		tpl := &models.TemplateRef{Name: "visit_reminder", Language: "en", Params: map[string]string{"1": "{{name}}"}}
		start := time.Now()
		fromCSV, err := p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{Name: "from a CSV", Channel: models.ChannelWhatsApp,
			Message: models.BroadcastMessage{Template: tpl}, CSV: strings.NewReader(csv.String())})
		if err != nil {
			b.Fatal(err)
		}
		csvPlan := time.Since(start)
		start = time.Now()
		plan, err := p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{Name: "by filter", Channel: models.ChannelWhatsApp,
			Message: models.BroadcastMessage{Template: &models.TemplateRef{Name: "visit_reminder", Language: "en", Params: map[string]string{"1": "friend"}}}})
		if err != nil {
			b.Fatal(err)
		}
		filterPlan := time.Since(start)
		if fromCSV.Progress.Reached != contacts || plan.Progress.Reached != contacts {
			b.Fatalf("reached %d and %d, want %d", fromCSV.Progress.Reached, plan.Progress.Reached, contacts)
		}
		// Twilio's own times are whole seconds: note each send as it is taken.
		var mu sync.Mutex
		var sends []time.Time
		answered := map[string]time.Time{}
		notify := make(chan twiliotest.Sent, 1024)
		e.api.Notify = notify
		taken := make(chan struct{})
		go func() {
			defer close(taken)
			for s := range notify {
				mu.Lock()
				if strings.HasPrefix(s.Body, "Dear ") {
					sends = append(sends, time.Now())
				} else if s.Body == "thanks" {
					answered[s.To] = time.Now()
				}
				mu.Unlock()
			}
		}()
		if err := p.Start(ctx); err != nil {
			b.Fatal(err)
		}
		// People who wrote, one every 50 ms, while the broadcast goes.
		wrote := map[string]time.Time{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				from := fmt.Sprintf("whatsapp:+9197%08d", i)
				mu.Lock()
				wrote[from] = time.Now()
				mu.Unlock()
				if _, err := p.Ingest(ctx, []channel.Inbound{{Provider: channel.Twilio, ProviderMessageID: fmt.Sprintf("SMin%030d", i), From: from, To: "+15005550006", Body: "hello"}}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
		// Five seconds of replies alone, for comparison; then the broadcast.
		time.Sleep(5 * time.Second) // the length of a phase of the load, not synchronisation
		confirmed := time.Now()
		if err := p.ConfirmBroadcast(ctx, broadcaster, plan.Broadcast.ID); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Minute)
		for {
			mu.Lock()
			n := len(sends)
			mu.Unlock()
			if n >= window {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d broadcast sends after ten minutes", n)
			}
			time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
		}
		close(stop)
		wg.Wait()
		if err := p.CancelBroadcast(ctx, broadcaster, plan.Broadcast.ID); err != nil {
			b.Fatal(err)
		}
		waitUntil := time.Now().Add(time.Minute)
		for {
			mu.Lock()
			all := len(answered) == len(wrote)
			mu.Unlock()
			if all || time.Now().After(waitUntil) {
				break
			}
			time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
		}
		_ = p.Stop(ctx)
		e.api.Notify = nil
		close(notify)
		<-taken
		var latencies, alone []time.Duration
		for to, at := range answered {
			if wrote[to].Before(confirmed) {
				alone = append(alone, at.Sub(wrote[to]))
			} else {
				latencies = append(latencies, at.Sub(wrote[to]))
			}
		}
		slices.Sort(alone)
		slices.SortFunc(sends, func(a, c time.Time) int { return a.Compare(c) })
		from := min(1000, len(sends)/10)
		perSecond := float64(len(sends)-1-from) / sends[len(sends)-1].Sub(sends[from]).Seconds()
		slices.Sort(latencies)
		b.ReportMetric(csvPlan.Seconds(), "csv_plan_s")
		b.ReportMetric(filterPlan.Seconds(), "plan_s")
		b.ReportMetric(perSecond, "sends/s")
		b.ReportMetric(float64(rate), "cap/s")
		if n := len(latencies); n > 0 {
			b.ReportMetric(latencies[n/2].Seconds()*1000, "reply_p50_ms")
			b.ReportMetric(latencies[n*99/100].Seconds()*1000, "reply_p99_ms")
			b.ReportMetric(float64(n), "replies")
		}
		b.Logf("%d contacts: planned from a CSV in %.1f s, by filter in %.1f s; %d broadcast sends at %.0f/s (cap %d/s); "+
			"%d replies during it, p50 %v, p99 %v (before it, alone: %d, p50 %v, p99 %v)",
			contacts, csvPlan.Seconds(), filterPlan.Seconds(), len(sends), perSecond, rate, len(latencies), pct(latencies, 50), pct(latencies, 99),
			len(alone), pct(alone, 50), pct(alone, 99))
	}
	b.ReportMetric(0, "ns/op")
}

// pct is the p-th percentile of sorted durations (0 when none).
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[len(sorted)*p/100].Round(time.Millisecond)
}
