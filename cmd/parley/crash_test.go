package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
)

// process is `parley serve` running as its own process.
type process struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

// startProcess runs the real binary with env and waits for /healthz.
func startProcess(t testing.TB, env map[string]string, args ...string) *process {
	t.Helper()
	bin, err := buildParley()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: exec.Command(bin, args...), logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	base := "http://" + env["PARLEY_ADDR"]
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-p.done:
			t.Fatalf("parley exited before serving:\n%s", p.logs)
		default:
		}
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer within a minute:\n%s", p.logs)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// kill ends the process at once, as an OOM kill or a preempted machine.
func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// twilioEnv is the environment of an instance on db talking to a Twilio
// fake, with short recovery settings.
func twilioEnv(t *testing.T, dsn string, fake *twiliotest.API, token string) map[string]string {
	env := baseEnv(t, dsn)
	for k, v := range map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": e2eAccountSID, "PARLEY_TWILIO_AUTH_TOKEN": token,
		"PARLEY_TWILIO_FROM": "+14155550000", "PARLEY_TWILIO_API_BASE_URL": fake.URL, "PARLEY_PUBLIC_URL": "http://" + env["PARLEY_ADDR"],
		"PARLEY_DEFAULT_REGION": "IN", "PARLEY_METRICS_TOKEN": testMetricsToken, "PARLEY_SEND_RATE": "200", "PARLEY_JOB_TIMEOUT": "3s", "PARLEY_JOB_RESCUE_AFTER": "7s"} {
		env[k] = v
	}
	return env
}

// waitSettled waits until want replies are stored and none is queued or
// in flight, and returns how long it took.
func waitSettled(t *testing.T, db *store.DB, want int) time.Duration {
	t.Helper()
	start := time.Now()
	var stored, open, unprocessed int
	settled := func() bool {
		_ = db.Pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE direction = 'out'),
			count(*) FILTER (WHERE direction = 'out' AND status IN ('queued', 'sending')),
			count(*) FILTER (WHERE direction = 'in' AND processed_at IS NULL) FROM messages`).Scan(&stored, &open, &unprocessed)
		return stored == want && open == 0 && unprocessed == 0
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !settled() {
		if time.Now().After(deadline) {
			t.Fatalf("three minutes on, the replies have not settled: %d of %d stored, %d queued or in flight, %d inbound unprocessed",
				stored, want, open, unprocessed)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	return time.Since(start)
}

// checkAnsweredOnce checks that each contact got the flow's two replies
// exactly once, in order, and that Parley recorded each sent with its SID.
func checkAnsweredOnce(t *testing.T, db *store.DB, fake *twiliotest.API, numbers []string) {
	t.Helper()
	got := map[string][]string{}
	for _, s := range fake.Sent() {
		got[s.To] = append(got[s.To], s.Body)
	}
	want := "Hi! I'm the clinic assistant.|What is your name?"
	for _, n := range numbers {
		if strings.Join(got[n], "|") != want {
			t.Errorf("%s got %q, want each reply once, in order", n, got[n])
		}
	}
	if len(fake.Sent()) != len(numbers)*2 {
		t.Errorf("Twilio took %d messages, want %d", len(fake.Sent()), len(numbers)*2)
	}
	// And Parley knows it: each reply recorded sent with Twilio's SID, none
	// left uncertain for staff to chase.
	var recorded int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(DISTINCT provider_message_id) FROM messages
		WHERE direction = 'out' AND status = 'sent'`).Scan(&recorded); err != nil || recorded != len(numbers)*2 {
		t.Errorf("%d replies recorded sent with their own SID, want %d (%v)", recorded, len(numbers)*2, err)
	}
}

func openDB(t *testing.T, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func contactNumber(i int) string { return fmt.Sprintf("+9198765%05d", i) }

// The operator's crash: sixty contacts write, every webhook is
// acknowledged, and the server is killed (SIGKILL) while replies are
// going out through a slow Twilio. Started again, every contact gets
// each of its replies exactly once, in order, within the recovery the
// settings promise; the sends the kill cut off are reconciled with Twilio.
func TestCrash_SIGKILLMidBurstEveryMessageAnsweredOnce(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	const contacts = 60
	fake := twiliotest.NewAPI(e2eAccountSID, token)
	fake.Delay = 150 * time.Millisecond // sends are in flight when the kill comes
	t.Cleanup(fake.Close)
	dsn := pgtest.DSN(t)
	env := twilioEnv(t, dsn, fake, token)
	base := env["PARLEY_PUBLIC_URL"]
	first := startProcess(t, env, "serve")
	var numbers []string
	var wg sync.WaitGroup
	for i := range contacts {
		numbers = append(numbers, contactNumber(i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			twilioInbound(t, base, token, contactNumber(i), "hi", i+1) // fails the test unless acknowledged (200)
		}()
	}
	wg.Wait()
	waitFor(t, "the first replies to go out", func() bool { return len(fake.Sent()) >= contacts/4 })
	first.kill()
	sentBefore := len(fake.Sent())
	db := openDB(t, dsn)
	var running, sending int // what the kill left behind
	if err := db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM river_job WHERE state = 'running'),
		(SELECT count(*) FROM messages WHERE status = 'sending')`).Scan(&running, &sending); err != nil {
		t.Fatal(err)
	}

	startProcess(t, env, "serve")
	recovered := waitSettled(t, db, contacts*2)
	checkAnsweredOnce(t, db, fake, numbers)
	_, metrics := getMetrics(t, base, testMetricsToken)
	t.Logf("crash: %d of %d replies at Twilio at the kill, %d jobs left running and %d sends in flight; all settled %.1f s after the restart, "+
		"%.0f in-flight sends found at Twilio and recorded, not sent again (job limit 3s, rescue after 7s)",
		sentBefore, contacts*2, running, sending, recovered.Seconds(),
		metricValue(t, metrics, "parley_sends_total", `outcome="reconciled_sent",provider="twilio"`))
}

// The same crash with hundreds of sends in flight: six hundred contacts
// write (every webhook acknowledged), the calls in flight grow with the
// send rate and Twilio's one-second latency to a few hundred, and the
// server is killed among them. Started again, every contact gets each of
// its replies exactly once, in order: the cut-off calls are reconciled
// with Twilio, not sent again.
func TestCrash_SIGKILLWithHundredsInFlightEveryMessageAnsweredOnce(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	const contacts, posters = 600, 32
	fake := twiliotest.NewAPI(e2eAccountSID, token)
	fake.Delay = time.Second
	t.Cleanup(fake.Close)
	dsn := pgtest.DSN(t)
	env := twilioEnv(t, dsn, fake, token)
	env["PARLEY_SEND_RATE"], env["PARLEY_SEND_MAX_IN_FLIGHT"] = "1000", "400"
	env["PARLEY_JOB_TIMEOUT"], env["PARLEY_JOB_RESCUE_AFTER"], env["PARLEY_SEND_WORKERS"] = "6s", "13s", "20"
	base := env["PARLEY_PUBLIC_URL"]
	first := startProcess(t, env, "serve")
	var numbers []string
	for i := range contacts {
		numbers = append(numbers, contactNumber(i))
	}
	next := make(chan int, contacts)
	for i := range contacts {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range posters {
		wg.Go(func() {
			for i := range next {
				twilioInbound(t, base, token, contactNumber(i), "hi", i+1) // fails the test unless acknowledged (200)
			}
		})
	}
	wg.Wait()
	waitFor(t, "hundreds of sends in flight", func() bool { return fake.InFlight() >= 200 })
	inFlight := fake.InFlight()
	first.kill()
	sentBefore := len(fake.Sent())
	db := openDB(t, dsn)
	var sending int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM messages WHERE status = 'sending'`).Scan(&sending); err != nil {
		t.Fatal(err)
	}

	startProcess(t, env, "serve")
	recovered := waitSettled(t, db, contacts*2)
	checkAnsweredOnce(t, db, fake, numbers)
	_, metrics := getMetrics(t, base, testMetricsToken)
	t.Logf("crash with %d calls in flight (most at once %d): %d of %d replies at Twilio at the kill, %d sends left open; all settled %.1f s after the restart, "+
		"%.0f found at Twilio and recorded, not sent again",
		inFlight, fake.MostInFlight(), sentBefore, contacts*2, sending, recovered.Seconds(),
		metricValue(t, metrics, "parley_sends_total", `outcome="reconciled_sent",provider="twilio"`))
}

// SIGTERM under load, as Cloud Run stops an instance: webhooks are refused
// (503) or never reach it, what was acknowledged is kept, the instance
// exits within its grace, and the next instance answers everything once.
func TestShutdown_SIGTERMUnderLoadExitsInItsGraceAndLosesNothing(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	const grace = 2 * time.Second
	fake := twiliotest.NewAPI(e2eAccountSID, token)
	fake.Delay = 300 * time.Millisecond
	t.Cleanup(fake.Close)
	dsn := pgtest.DSN(t)
	env := twilioEnv(t, dsn, fake, token)
	env["PARLEY_SHUTDOWN_GRACE"] = grace.String()
	base := env["PARLEY_PUBLIC_URL"]
	first := startProcess(t, env, "serve")

	// Webhooks keep coming, before and through the shutdown.
	var mu sync.Mutex
	var acked []string
	refused, unreachable := 0, 0
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := contactNumber(w*1000 + i)
				status := postTwilio(base, token, n, "hi", w*1000+i+1)
				mu.Lock()
				switch status {
				case http.StatusOK:
					acked = append(acked, n)
				case http.StatusServiceUnavailable:
					refused++
				case 0:
					unreachable++
				default:
					t.Errorf("a webhook during the shutdown: %d", status)
				}
				mu.Unlock()
				if status == 0 {
					return // the instance is gone
				}
				time.Sleep(100 * time.Millisecond) // the load's pace, not synchronisation
			}
		}()
	}
	waitFor(t, "replies to be going out", func() bool { return len(fake.Sent()) >= 10 })
	termAt := time.Now()
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.done:
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("still running %s after SIGTERM, with a grace of %s", time.Since(termAt), grace)
	}
	exited := time.Since(termAt)
	close(stop)
	wg.Wait()
	if exited > grace+time.Second {
		t.Errorf("exited %s after SIGTERM, want within the grace (%s) and a second", exited, grace)
	}
	if refused == 0 {
		t.Error("no webhook was answered 503 while the instance drained")
	}
	if !strings.Contains(first.logs.String(), "shutting down") {
		t.Errorf("no word of the shutdown in the log:\n%s", first.logs)
	}

	db := openDB(t, dsn)
	startProcess(t, env, "serve")
	waitSettled(t, db, len(acked)*2)
	checkAnsweredOnce(t, db, fake, acked)
	t.Logf("SIGTERM: exited %.1f s after it (grace %s); %d webhooks acknowledged and all answered once, %d refused with 503, %d found it gone",
		exited.Seconds(), grace, len(acked), refused, unreachable)
}
