package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
)

// buildParley builds the real binary once per test process.
var buildParley = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "parley-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "parley")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// process is `parley serve` running as its own process.
type process struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

// startProcess runs the real binary with env and waits for /healthz.
func startProcess(t *testing.T, env map[string]string, args ...string) *process {
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
	env := baseEnv(t, pgtest.DSN(t))
	base := "http://" + env["PARLEY_ADDR"]
	for k, v := range map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": e2eAccountSID, "PARLEY_TWILIO_AUTH_TOKEN": token,
		"PARLEY_TWILIO_FROM": "+14155550000", "PARLEY_TWILIO_API_BASE_URL": fake.URL, "PARLEY_PUBLIC_URL": base,
		"PARLEY_DEFAULT_REGION": "IN", "PARLEY_SEND_RATE": "200", "PARLEY_JOB_TIMEOUT": "1s", "PARLEY_JOB_RESCUE_AFTER": "3s"} {
		env[k] = v
	}
	first := startProcess(t, env, "serve")
	number := func(i int) string { return fmt.Sprintf("+9198765%05d", i) }
	var wg sync.WaitGroup
	for i := range contacts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			twilioInbound(t, base, token, number(i), "hi", i+1) // fails the test unless acknowledged (200)
		}()
	}
	wg.Wait()
	waitFor(t, "the first replies to go out", func() bool { return len(fake.Sent()) >= contacts/4 })
	first.kill()
	killedAt, sentBefore := time.Now(), len(fake.Sent())

	db, err := store.Open(context.Background(), env["DATABASE_URL"], store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var running, sending int // what the kill left behind
	if err := db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM river_job WHERE state = 'running'),
		(SELECT count(*) FROM messages WHERE status = 'sending')`).Scan(&running, &sending); err != nil {
		t.Fatal(err)
	}
	startProcess(t, env, "serve")
	// Settled: every reply stored and none still queued or in flight.
	settled := func() bool {
		var stored, open int
		_ = db.Pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE status IN ('queued', 'sending'))
			FROM messages WHERE direction = 'out'`).Scan(&stored, &open)
		return stored == contacts*2 && open == 0
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !settled() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	recovered := time.Since(killedAt)
	if !settled() {
		t.Fatalf("two minutes after the kill the replies have not settled (%d at Twilio)", len(fake.Sent()))
	}
	got := map[string][]string{}
	for _, s := range fake.Sent() {
		got[s.To] = append(got[s.To], s.Body)
	}
	want := "Hi! I'm the clinic assistant.|What is your name?"
	for i := range contacts {
		if strings.Join(got[number(i)], "|") != want {
			t.Errorf("%s got %q, want each reply once, in order", number(i), got[number(i)])
		}
	}
	if len(fake.Sent()) != contacts*2 {
		t.Errorf("Twilio took %d messages, want %d", len(fake.Sent()), contacts*2)
	}
	// And Parley knows it: each reply recorded sent with Twilio's SID, none
	// left uncertain for staff to chase.
	var recorded int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(DISTINCT provider_message_id) FROM messages
		WHERE direction = 'out' AND status = 'sent'`).Scan(&recorded); err != nil || recorded != contacts*2 {
		t.Errorf("%d replies recorded sent with their own SID, want %d (%v)", recorded, contacts*2, err)
	}
	_, metrics := get(t, base+"/metrics")
	t.Logf("crash: %d of %d replies at Twilio at the kill, %d jobs left running and %d sends in flight; all %d settled %.1f s after the kill, "+
		"%.0f in-flight sends found at Twilio and recorded, not sent again (job limit 1s, rescue after 3s)",
		sentBefore, contacts*2, running, sending, len(fake.Sent()), recovered.Seconds(),
		metricValue(t, metrics, "parley_sends_total", `outcome="reconciled_sent",provider="twilio"`))
}
