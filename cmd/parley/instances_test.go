package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
)

// quickFlow asks a name with a reminder after 2 s and a time-out after 4 s,
// so timers fire within a test.
const quickFlow = `id: quick
languages: [en]
start: ask_name
nodes:
  ask_name:
    ask:
      prompt: {en: "What is your name?"}
      type: text
      save: name
      timeout: {remind_after: 2s, remind: {en: "Are you still there?"}, expire_after: 4s, then: bye}
    next: thanks
  thanks:
    end: {send: {en: "Thanks, {{name}}."}}
  bye:
    end: {send: {en: "Goodbye for now."}}
`

// Two `parley serve` processes on one database are one system: webhooks
// for the same contacts spread across both, one is killed mid-way (its
// traffic goes to the other, as a load balancer does), and every contact
// still gets its replies exactly once and in order, each timer firing once.
func TestInstances_TwoServeOneDatabaseOneKilled(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	const contacts = 24
	fake := twiliotest.NewAPI(e2eAccountSID, token)
	fake.Delay = 50 * time.Millisecond
	t.Cleanup(fake.Close)
	flows := t.TempDir()
	if err := os.WriteFile(filepath.Join(flows, "quick.yaml"), []byte(quickFlow), 0o644); err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.DSN(t)
	// The same keys and settings; each its own address.
	first := twilioEnv(t, dsn, fake, token)
	first["PARLEY_FLOWS_DIR"] = flows
	second := maps.Clone(first)
	second["PARLEY_ADDR"] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	second["PARLEY_PUBLIC_URL"] = "http://" + second["PARLEY_ADDR"]
	envs := []map[string]string{first, second}
	var procs []*process
	for _, env := range envs {
		procs = append(procs, startProcess(t, env, "serve"))
	}
	// Each instance checks signatures over its own public URL, as each
	// would sit behind its own address here.
	base := func(i int) string { return envs[i]["PARLEY_PUBLIC_URL"] }
	n := 0
	post := func(instance, contact int, body string) {
		n++
		if status := postTwilio(base(instance), token, contactNumber(contact), body, n); status != 200 {
			t.Fatalf("a webhook to instance %d: %d", instance, status)
		}
	}
	// Everyone writes, spread over both instances.
	for c := range contacts {
		post(c%2, c, "hi")
	}
	waitFor(t, "the first questions to go out", func() bool { return len(fake.Sent()) >= contacts/3 })
	procs[0].kill()
	// The even contacts answer; what would have gone to the dead instance
	// goes to the live one. The odd ones stay silent: their timers fire.
	for c := 0; c < contacts; c += 2 {
		post(1, c, fmt.Sprintf("Asha %d", c))
	}
	db := openDB(t, dsn)
	want := func(c int) string {
		if c%2 == 0 {
			return fmt.Sprintf("What is your name?|Thanks, Asha %d.", c)
		}
		return "What is your name?|Are you still there?|Goodbye for now."
	}
	total := contacts/2*2 + contacts/2*3
	start := time.Now()
	deadline := time.Now().Add(90 * time.Second)
	for len(fake.Sent()) < total && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	took := time.Since(start)
	waitSettled(t, db, total)
	got := map[string][]string{}
	for _, s := range fake.Sent() {
		got[s.To] = append(got[s.To], s.Body)
	}
	for c := range contacts {
		if g := strings.Join(got[contactNumber(c)], "|"); g != want(c) {
			t.Errorf("contact %d got %q, want %q", c, g, want(c))
		}
	}
	if len(fake.Sent()) != total {
		t.Errorf("Twilio took %d messages, want %d", len(fake.Sent()), total)
	}
	t.Logf("two instances: %d contacts, one instance killed after at least %d replies; all %d replies settled %.1f s after, each once and in order",
		contacts, contacts/3, total, took.Seconds())
}
