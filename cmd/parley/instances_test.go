package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
)

// quickFlow asks a name with a reminder after 2 s and a time-out after 6 s,
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
      timeout: {remind_after: 2s, remind: {en: "Are you still there?"}, expire_after: 6s, then: bye}
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
	asked := map[string]bool{} // asked their name before they answer
	for _, s := range fake.Sent() {
		asked[s.To] = true
	}
	for c := 0; c < contacts; c += 2 {
		post(1, c, fmt.Sprintf("Asha %d", c))
	}
	db := openDB(t, dsn)
	// A silent contact is reminded once and told goodbye once; when its
	// reminder's job is held up past the expiry (it ran on the killed
	// instance, or was retried under load), the reminder is stale and
	// never sent after the goodbye.
	want := func(c int) []string {
		if c%2 == 0 {
			return []string{fmt.Sprintf("What is your name?|Thanks, Asha %d.", c)}
		}
		return []string{"What is your name?|Are you still there?|Goodbye for now.", "What is your name?|Goodbye for now."}
	}
	least := contacts/2*2 + contacts/2*2 // every reply but the reminders
	start := time.Now()
	deadline := time.Now().Add(90 * time.Second)
	ended := func() bool { // every conversation has its last word
		n := 0
		for _, s := range fake.Sent() {
			if s.Body == "Goodbye for now." || strings.HasPrefix(s.Body, "Thanks, ") {
				n++
			}
		}
		return n >= contacts
	}
	for !ended() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	took := time.Since(start)
	waitSettled(t, db, len(fake.Sent())) // and nothing more on its way
	got := map[string][]string{}
	for _, s := range fake.Sent() {
		got[s.To] = append(got[s.To], s.Body)
	}
	for c := range contacts {
		if g := strings.Join(got[contactNumber(c)], "|"); !slices.Contains(want(c), g) {
			t.Errorf("contact %d got %q, want one of %q", c, g, want(c))
		}
	}
	if t.Failed() {
		rows, _ := db.Pool.Query(t.Context(), `SELECT c.id, c.status, c.node, c.error, (SELECT string_agg(coalesce(m.error_code,'') || '/' || m.status, ',') FROM messages m WHERE m.contact_id = c.contact_id)
			FROM conversations c ORDER BY c.contact_id`)
		for rows.Next() {
			var id int64
			var st, node, e string
			var msgs *string
			_ = rows.Scan(&id, &st, &node, &e, &msgs)
			t.Logf("conversation %d: %s at %s %q; messages %v", id, st, node, e, msgs)
		}
		rows.Close()
		t.FailNow()
	}
	// Each conversation reads in the order it happened, whichever instance
	// wrote each message: replies in the order they went out, each after
	// what it answers, and a question asked before the answer came above it.
	answeredAfterAsked := 0
	for c := range contacts {
		number := contactNumber(c)
		conv := placed(t, db, first, number)
		if !slices.Equal(outOf(conv), got[number]) || len(conv) == 0 || conv[0] != "> hi" {
			t.Errorf("contact %d reads %q; want hi first and the replies in the order sent, %q", c, conv, got[number])
		}
		if c%2 == 0 && asked[number] {
			answeredAfterAsked++
			answer := fmt.Sprintf("Asha %d", c)
			if want := []string{"> hi", "< What is your name?", "> " + answer, "< Thanks, " + answer + "."}; !slices.Equal(conv, want) {
				t.Errorf("contact %d, asked before answering, reads %q; want %q", c, conv, want)
			}
		}
	}
	if answeredAfterAsked == 0 {
		t.Errorf("no contact answered after being asked: the order of a question and its answer went unchecked")
	}
	reminded := len(fake.Sent()) - least
	t.Logf("two instances: %d contacts, one instance killed after at least %d replies; all %d replies out %.1f s after, each once and in order "+
		"(%d of %d reminders came before their expiry)", contacts, contacts/3, len(fake.Sent()), took.Seconds(), reminded, contacts/2)
}
