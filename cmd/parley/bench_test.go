package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/pgcluster"
)

// BenchmarkServe_AnsweredPerSecond measures what users get, end to end:
// the binary the Dockerfile builds, started as `parley serve` on a
// PostgreSQL cluster of its own with fsync on, takes signed Twilio webhooks
// over HTTP from a load generator (one message per request, each from a
// new contact saying "hi", PARLEY_BENCH_CONNS connections), runs the
// built-in clinic flow, and sends its two replies through a fake Twilio in
// another process that answers after a latency and refuses past a rate
// cap with Twilio's 429. It reports messages answered per second (first
// webhook to the last reply's answer from Twilio), the rate the webhooks
// were acknowledged at (first sent to last answered), inbound-to-reply p50
// and p99 (a webhook sent to its contact's second reply answered), the
// most sends Twilio held at once, the webhooks not answered 2xx, the 429s,
// and pgbench's one-row durable commit rate on the same cluster in the
// same run, with the ratio of the two.
//
// "instant" is a provider answering at once, "latency" one answering after
// PARLEY_BENCH_LATENCY (150ms), as the real APIs do: when concurrency
// hides the provider's latency the two are close.
//
// Settings, from the environment: PARLEY_BENCH_CONTACTS (2000),
// PARLEY_BENCH_CONNS (32), PARLEY_BENCH_LATENCY (150ms),
// PARLEY_BENCH_PROVIDER_RATE (Twilio's cap, 1000 a second; 0 for none),
// PARLEY_BENCH_PGBENCH_SECONDS (5). Any other PARLEY_ setting in the
// environment (PARLEY_SEND_WORKERS, PARLEY_SEND_RATE, PARLEY_WORKERS,
// PARLEY_DB_MAX_CONNS, …) is handed to `parley serve` over the
// benchmark's own, so one run shows what a setting changes; the settings
// it ran with are logged. B/op and allocs/op (make bench's -benchmem)
// count the load generator's allocations only, not Parley's.
func BenchmarkServe_AnsweredPerSecond(b *testing.B) {
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
	b.Run("instant", func(b *testing.B) { benchServe(b, load, 0) })
	b.Run("latency="+latency.String(), func(b *testing.B) { benchServe(b, load, latency) })
}

// benchLoad is what one end-to-end run sends, and its yardstick.
type benchLoad struct {
	contacts, conns int
	rate            float64       // the fake Twilio's cap, a second
	pgbench         time.Duration // how long pgbench measures the commit ceiling
}

// benchRound is what one round of webhooks measured.
type benchRound struct {
	answeredPerSec, p50, p99 float64
	webhooksPerSec           float64 // acknowledged, first sent to last answered
	maxInFlight, limited     int64
	non2xx                   int
}

func benchServe(b *testing.B, load benchLoad, latency time.Duration) {
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

	fake := startFakeTwilio(b, e2eAccountSID, token, latency, load.rate)
	env := serveEnv(b, dsn, fake.URL, token)
	startProcess(b, env, "serve")

	var rounds []benchRound
	round := 0
	for b.Loop() {
		rounds = append(rounds, webhookRound(b, env["PARLEY_PUBLIC_URL"], token, fake, load, round))
		round++
	}
	statementsReport(b, dsn, round*load.contacts, "message")
	var sum benchRound
	for _, r := range rounds {
		sum.answeredPerSec += r.answeredPerSec / float64(len(rounds))
		sum.webhooksPerSec += r.webhooksPerSec / float64(len(rounds))
		sum.p50 = max(sum.p50, r.p50)
		sum.p99 = max(sum.p99, r.p99)
		sum.maxInFlight = max(sum.maxInFlight, r.maxInFlight)
		sum.limited += r.limited
		sum.non2xx += r.non2xx
	}
	b.ReportMetric(0, "ns/op") // a round's length: answered/s says it better
	b.ReportMetric(sum.answeredPerSec, "answered/s")
	b.ReportMetric(sum.webhooksPerSec, "webhooks/s")
	b.ReportMetric(sum.p50, "p50-ms")
	b.ReportMetric(sum.p99, "p99-ms")
	b.ReportMetric(float64(sum.maxInFlight), "max-in-flight")
	b.ReportMetric(float64(sum.non2xx), "non-2xx")
	b.ReportMetric(float64(sum.limited), "429s")
	b.ReportMetric(ceiling, "pgbench-tps")
	b.ReportMetric(sum.answeredPerSec/ceiling, "ratio")
	loadAfter := loadAverage()
	b.ReportMetric(loadAfter, "load-avg")
	b.Logf("%d contacts over %d connections, Twilio answering after %s (cap %.0f/s): %.0f answered/s (webhooks acknowledged at %.0f/s), p50 %.0f ms, p99 %.0f ms, "+
		"%d sends in flight at most, %d 429s, %d webhooks not 2xx; pgbench %.0f tps; ratio %.3f; serve ran with %s; "+machineLoad,
		load.contacts, load.conns, latency, load.rate, sum.answeredPerSec, sum.webhooksPerSec, sum.p50, sum.p99, sum.maxInFlight, sum.limited, sum.non2xx,
		ceiling, sum.answeredPerSec/ceiling, tuning(env), loadBefore, loadAfter, runtime.NumCPU())
}

// webhookRound sends one signed "hi" from each of load.contacts new
// contacts (numbered after the earlier rounds') and waits until Twilio
// has answered both replies of each.
func webhookRound(b *testing.B, base, token string, fake *fakeProcess, load benchLoad, round int) benchRound {
	b.Helper()
	before, err := fake.stats(false)
	if err != nil {
		b.Fatal(err)
	}
	first := round * load.contacts
	reqs, err := benchRequests(base, token, first, load.contacts)
	if err != nil {
		b.Fatal(err)
	}
	fired, err := fire(base, reqs, load.conns, 0)
	if err != nil {
		b.Fatal(err)
	}
	sentAt := fired.sent

	// Every contact answered twice, or the deadline: a minute, plus a
	// second for each ten contacts (10/s is far below any rate worth
	// measuring).
	want := before.Accepted + 2*load.contacts
	deadline := time.Now().Add(time.Minute + time.Duration(load.contacts)*time.Second/10)
	var s fakeStats
	for {
		if s, err = fake.stats(false); err != nil {
			b.Fatal(err)
		}
		if s.Accepted >= want {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("Twilio has taken %d of %d replies by the deadline (%d webhooks not 2xx)", s.Accepted-before.Accepted, 2*load.contacts, fired.non2xx)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
	if s, err = fake.stats(true); err != nil {
		b.Fatal(err)
	}
	var lats []float64
	var last int64
	for i := range load.contacts {
		answered := s.Answered[benchNumber(first+i)]
		if len(answered) != 2 {
			b.Errorf("%s got %d replies, want 2", benchNumber(first+i), len(answered))
			continue
		}
		done := slices.Max(answered)
		last = max(last, done)
		lats = append(lats, float64(done-sentAt[i])/1e6)
	}
	sort.Float64s(lats)
	start := slices.Min(sentAt)
	return benchRound{
		answeredPerSec: float64(load.contacts) / (float64(last-start) / 1e9),
		webhooksPerSec: float64(load.contacts) / fired.took.Seconds(),
		p50:            percentile(lats, 0.50), p99: percentile(lats, 0.99),
		maxInFlight: s.MaxInFlight, limited: s.Limited - before.Limited, non2xx: int(fired.non2xx),
	}
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// benchNumber is contact n's number: an Indian mobile, as the clinic's.
func benchNumber(n int) string { return fmt.Sprintf("+9198%08d", n) }

// serveEnv is production's configuration of `parley serve` for the
// benchmark: its keys, staff sign-in chosen, a Twilio account with a
// sender, the public URL webhooks are signed over, a metrics token, and a
// send rate at the provider tier the issue aims for (1,000/s). PARLEY_
// settings from the benchmark's environment come last and win.
func serveEnv(b *testing.B, dsn, twilioURL, token string) map[string]string {
	env := baseEnv(b, dsn)
	delete(env, "PARLEY_SHUTDOWN_GRACE") // production's default
	for k, v := range map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": e2eAccountSID, "PARLEY_TWILIO_AUTH_TOKEN": token,
		"PARLEY_TWILIO_FROM": "+14155550000", "PARLEY_TWILIO_API_BASE_URL": twilioURL, "PARLEY_PUBLIC_URL": "http://" + env["PARLEY_ADDR"],
		"PARLEY_DEFAULT_REGION": "IN", "PARLEY_METRICS_TOKEN": testMetricsToken, "PARLEY_SEND_RATE": "1000"} {
		env[k] = v
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PARLEY_") && !strings.HasPrefix(k, "PARLEY_BENCH_") && !strings.HasPrefix(k, "PARLEY_TEST_") && k != "PARLEY_PG_OPTS" {
			env[k] = v
		}
	}
	return env
}

// tuning lists the settings that size Parley's work, as serve ran with
// them ("default" when unset).
func tuning(env map[string]string) string {
	var out []string
	for _, k := range []string{"PARLEY_SEND_RATE", "PARLEY_SEND_MAX_IN_FLIGHT", "PARLEY_SEND_WORKERS", "PARLEY_WORKERS", "PARLEY_AI_WORKERS", "PARLEY_DB_MAX_CONNS", "PARLEY_LOG_LEVEL"} {
		v := env[k]
		if v == "" {
			v = "default"
		}
		out = append(out, k+"="+v)
	}
	return strings.Join(out, " ")
}

// durableCluster starts a PostgreSQL cluster with fsync on, as production
// runs, for one benchmark, and returns the DSN of its postgres database.
// It lives in a parley-pgtest- directory owning the benchmark's pid, so a
// later test run reaps it if this process is killed before its clean-up.
func durableCluster(b *testing.B) string {
	b.Helper()
	dir, err := os.MkdirTemp("", "parley-pgtest-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		b.Fatal(err)
	}
	c, err := pgcluster.New(filepath.Join(dir, "data"))
	if err != nil {
		b.Fatal(err)
	}
	c.Options = os.Getenv("PARLEY_PG_OPTS")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = c.Stop(ctx)
	})
	return c.DSN("postgres")
}

var pgbenchTPS = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)

// pgbench runs pgbench on dsn for d with clients connections, each
// transaction one durable INSERT of a message-sized row, and returns its
// transactions a second: the commit ceiling the benchmark's rate stands
// beside.
func pgbench(b *testing.B, dsn string, clients int, d time.Duration) float64 {
	b.Helper()
	dir, err := pgcluster.FindBinaries()
	if err != nil {
		b.Fatal(err)
	}
	script := filepath.Join(b.TempDir(), "insert.sql")
	if err := os.WriteFile(script, []byte("INSERT INTO bench_commit (body) VALUES ('a message-sized body of text');\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	create := exec.CommandContext(ctx, filepath.Join(dir, "psql"), "-v", "ON_ERROR_STOP=1", "-c",
		"CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, body text NOT NULL)", dsn)
	if out, err := create.CombinedOutput(); err != nil {
		b.Fatalf("psql: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "pgbench"), "-n", "-c", strconv.Itoa(clients),
		"-j", strconv.Itoa(min(clients, runtime.NumCPU())), "-T", strconv.Itoa(int(d.Seconds())), "-f", script, dsn).CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}
	m := pgbenchTPS.FindSubmatch(out)
	if m == nil {
		b.Fatalf("pgbench printed no tps:\n%s", out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	return tps
}

func benchInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q is not a count", name, v)
	}
	return n
}

// statementsReset starts counting statements afresh when the cluster runs
// with pg_stat_statements loaded (PARLEY_PG_OPTS="-c
// shared_preload_libraries=pg_stat_statements -c
// pg_stat_statements.track=all"), so the report after a run shows that
// run's statements only; otherwise it does nothing.
func statementsReset(b *testing.B, dsn string) {
	if !strings.Contains(os.Getenv("PARLEY_PG_OPTS"), "pg_stat_statements") {
		return
	}
	psql(b, dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	psql(b, dsn, "SELECT pg_stat_statements_reset()")
}

// statementsReport logs the statements run since statementsReset, most
// database time first, each with its calls and time per unit of work
// (per messages or webhooks).
func statementsReport(b *testing.B, dsn string, per int, unit string) {
	if !strings.Contains(os.Getenv("PARLEY_PG_OPTS"), "pg_stat_statements") || per == 0 {
		return
	}
	out := psql(b, dsn, fmt.Sprintf(`SELECT round(calls::numeric / %[1]d, 3) || ' calls, ' || round((total_exec_time * 1000 / %[1]d)::numeric, 1) || ' µs a %[2]s, planning ' || round((total_plan_time * 1000 / %[1]d)::numeric, 1) || ' µs in ' || plans || ', mean ' || round((mean_exec_time * 1000)::numeric) || ' µs, max ' || round((max_exec_time * 1000)::numeric) || ' µs, ' || round(rows::numeric / greatest(calls, 1), 1) || ' rows: ' || left(regexp_replace(query, '\s+', ' ', 'g'), 160)
		FROM pg_stat_statements WHERE query NOT LIKE '%%pg_stat_statements%%' ORDER BY total_exec_time DESC LIMIT 40`, per, unit))
	total := psql(b, dsn, fmt.Sprintf(`SELECT round(sum(calls)::numeric / %[1]d, 2) || ' statements, ' || round((sum(total_exec_time) * 1000 / %[1]d)::numeric, 1) || ' µs executing a %[2]s'
		FROM pg_stat_statements WHERE query NOT LIKE '%%pg_stat_statements%%'`, per, unit))
	// On standard error: a benchmark's log keeps only its first lines.
	fmt.Fprintf(os.Stderr, "%s: statements (pg_stat_statements, %d %ss): %s\n%s\n", b.Name(), per, unit, total, out)
}
