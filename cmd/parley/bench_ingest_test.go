package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/pgcluster"
)

// BenchmarkServe_IngestPerSecond measures how fast the built binary
// acknowledges webhooks, the figure a platform's retries depend on: signed
// Twilio webhooks over HTTP (PARLEY_BENCH_CONNS connections, one message a
// request, each from a new contact) against `parley serve` on a durable
// cluster of its own, beside pgbench's one-row commit rate in the same run.
//
//   - "held": processing held back (the queue's default queue paused in
//     River's own table before serve starts, so no job runs), the webhook
//     path alone. Issue #21's target: 0.6 of the ceiling.
//   - "pipeline": the whole pipeline at its defaults, processing and
//     sending the clinic flow's replies to a fake Twilio (answering after
//     PARLEY_BENCH_LATENCY, capped at PARLEY_BENCH_PROVIDER_RATE) while
//     the webhooks come in. Target: 0.25 of the ceiling.
//
// Each runs two rounds of PARLEY_BENCH_CONTACTS webhooks: as fast as the
// connections allow (req/s, ack p50/p99, non-2xx), then paced at half that
// rate (a webhook due every 2/rate seconds whatever the answers before
// it, each acknowledgement timed from when it was due, so a stall counts
// for every webhook it delays). Target: ack p99 under 25 ms at half the
// maximum rate. In "pipeline" the paced round starts once the first
// round's replies have all gone, so it measures its own load only.
func BenchmarkServe_IngestPerSecond(b *testing.B) {
	load := benchLoad{
		contacts: benchInt(b, "PARLEY_BENCH_CONTACTS", 2000),
		conns:    benchInt(b, "PARLEY_BENCH_CONNS", 32),
		rate:     float64(benchInt(b, "PARLEY_BENCH_PROVIDER_RATE", 1000)),
		pgbench:  time.Duration(benchInt(b, "PARLEY_BENCH_PGBENCH_SECONDS", 5)) * time.Second,
	}
	latency := 150 * time.Millisecond
	if v := os.Getenv("PARLEY_BENCH_LATENCY"); v != "" {
		var err error
		if latency, err = time.ParseDuration(v); err != nil {
			b.Fatalf("PARLEY_BENCH_LATENCY: %v", err)
		}
	}
	b.Run("held", func(b *testing.B) { benchIngest(b, load, latency, true) })
	b.Run("pipeline", func(b *testing.B) { benchIngest(b, load, latency, false) })
}

// ingestRound is what one round of webhooks measured.
type ingestRound struct {
	perSec, p50, p99 float64
	non2xx           int
}

func benchIngest(b *testing.B, load benchLoad, latency time.Duration, held bool) {
	const token = "0123456789abcdef0123456789abcdef"
	dsn := durableCluster(b)
	bin, err := buildParley()
	if err != nil {
		b.Fatal(err)
	}
	migrate := exec.Command(bin, "migrate", "up")
	migrate.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + dsn}
	if out, err := migrate.CombinedOutput(); err != nil {
		b.Fatalf("parley migrate up: %v\n%s", err, out)
	}
	loadBefore := loadAverage()
	ceiling := pgbench(b, dsn, load.conns, load.pgbench)
	statementsReset(b, dsn)
	if held {
		holdProcessing(b, dsn)
	}
	fake := startFakeTwilio(b, e2eAccountSID, token, latency, load.rate)
	env := serveEnv(b, dsn, fake.URL, token)
	startProcess(b, env, "serve")
	base := env["PARLEY_PUBLIC_URL"]

	var full, paced ingestRound
	var pacedRate float64
	round := 0
	for b.Loop() {
		first := 2 * round * load.contacts
		full = ingestRate(b, base, token, load, first, 0)
		if !held {
			waitReplies(b, fake, 2*(round+1)*load.contacts)
		}
		pacedRate = full.perSec / 2
		paced = ingestRate(b, base, token, load, first+load.contacts, pacedRate)
		if !held {
			waitReplies(b, fake, 2*(round+1)*load.contacts+load.contacts)
		}
		round++
	}
	if held {
		if n := psql(b, dsn, "SELECT count(*) FROM messages WHERE processed_at IS NOT NULL"); n != "0" {
			b.Fatalf("%s messages were processed while processing was held back: the figures are not the webhook path's alone", n)
		}
	}
	statementsReport(b, dsn, 2*round*load.contacts, "webhook")
	mode, target := "processing held back", 0.6
	if !held {
		mode, target = "the whole pipeline running (Twilio answering after "+latency.String()+")", 0.25
	}
	b.ReportMetric(0, "ns/op") // a round's length: req/s says it better
	b.ReportMetric(full.perSec, "req/s")
	b.ReportMetric(full.p50, "ack-p50-ms")
	b.ReportMetric(full.p99, "ack-p99-ms")
	b.ReportMetric(float64(full.non2xx+paced.non2xx), "non-2xx")
	b.ReportMetric(ceiling, "pgbench-tps")
	b.ReportMetric(full.perSec/ceiling, "ratio")
	b.ReportMetric(paced.p99, "half-rate-ack-p99-ms")
	loadAfter := loadAverage()
	b.ReportMetric(loadAfter, "load-avg")
	b.Logf("%d webhooks over %d connections, %s: %.0f req/s, ack p50 %.1f ms, p99 %.1f ms, %d not 2xx; pgbench %.0f tps; ratio %.3f (target %.2f); "+
		"paced at %.0f/s (half): ack p99 %.1f ms (target < 25), p50 %.1f ms, %d not 2xx; serve ran with %s; "+machineLoad,
		load.contacts, load.conns, mode, full.perSec, full.p50, full.p99, full.non2xx, ceiling, full.perSec/ceiling, target,
		pacedRate, paced.p99, paced.p50, paced.non2xx, tuning(env), loadBefore, loadAfter, runtime.NumCPU())
}

// holdProcessing pauses River's default queue, where processing jobs
// run, before serve starts: a producer starting on a paused queue runs
// nothing (River's QueuePause, as an operator would use it), so ingest is
// measured alone while its jobs pile up.
func holdProcessing(b *testing.B, dsn string) {
	psql(b, dsn, `INSERT INTO river_queue (name, created_at, metadata, paused_at, updated_at) VALUES ('default', now(), '{}', now(), now())
		ON CONFLICT (name) DO UPDATE SET paused_at = now()`)
}

// psql runs one statement on dsn and returns what it printed, unaligned.
func psql(b *testing.B, dsn, sql string) string {
	b.Helper()
	dir, err := pgcluster.FindBinaries()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "psql"), "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql, dsn).CombinedOutput()
	if err != nil {
		b.Fatalf("psql: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// ingestRate posts one signed "hi" from each of load.contacts new
// contacts numbered from first: as fast as load.conns connections allow
// (rate 0), or at rate a second, open loop (webhook i is due at i/rate
// from the start whatever the answers before it, its acknowledgement
// timed from when it was due).
func ingestRate(b *testing.B, base, token string, load benchLoad, first int, rate float64) ingestRound {
	b.Helper()
	reqs, err := benchRequests(base, token, first, load.contacts)
	if err != nil {
		b.Fatal(err)
	}
	f, err := fire(base, reqs, load.conns, rate)
	if err != nil {
		b.Fatal(err)
	}
	sort.Float64s(f.acks)
	return ingestRound{perSec: float64(load.contacts) / f.took.Seconds(), p50: percentile(f.acks, 0.5), p99: percentile(f.acks, 0.99), non2xx: f.non2xx}
}

// waitReplies waits until the fake Twilio has taken want replies in all,
// so the next round runs on a pipeline that has caught up.
func waitReplies(b *testing.B, fake *fakeProcess, want int) {
	b.Helper()
	deadline := time.Now().Add(time.Minute + time.Duration(want)*time.Second/10)
	for {
		s, err := fake.stats(false)
		if err != nil {
			b.Fatal(err)
		}
		if s.Accepted >= want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("Twilio has taken %d of %d replies by the deadline", s.Accepted, want)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
}

// machineLoad follows each end-to-end benchmark's log line: its figures
// share the machine with whatever else runs, and say so.
const machineLoad = "machine load %.1f before, %.1f after (1-minute load average, %d CPUs: above the CPUs, the figures are the machine's, not Parley's)"

// loadAverage is the machine's 1-minute load average (0 where the system
// does not say).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), " ")
	v, _ := strconv.ParseFloat(first, 64)
	return v
}
