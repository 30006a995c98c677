package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
)

// apiToken makes a staff member of role with the CLI and signs them in
// to the instance at base for the JSON API.
func apiToken(t *testing.T, env map[string]string, base, role string) string {
	t.Helper()
	email := role + "@example.org"
	withStdin(t, "a long enough password\n", func() {
		if code, _, stderr := runCmd(t, env, "users", "create", "--email", email, "--role", role); code != exitOK {
			t.Fatalf("users create: %d %s", code, stderr)
		}
	})
	resp, err := http.Post(base+"/auth/v1/token?grant_type=password", "application/json",
		strings.NewReader(`{"email":"`+email+`","password":"a long enough password"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("sign-in: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// apiPost posts body as JSON with token and decodes the answer into out
// (when not nil), failing unless it answers want.
func apiPost(t *testing.T, url, token string, body any, want int, out any) {
	t.Helper()
	var r *bytes.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	} else {
		r = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest("POST", url, r)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		t.Fatalf("POST %s: %d %s, want %d", url, resp.StatusCode, b.String(), want)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// broadcastSettled reports whether the broadcast is done and none of its
// messages is queued or in flight.
func broadcastSettled(t *testing.T, db *store.DB, id int64) (bool, string) {
	t.Helper()
	var status string
	var open int
	err := db.Pool.QueryRow(context.Background(), `SELECT b.status, (SELECT count(*) FROM broadcast_recipients r
			LEFT JOIN messages m ON m.id = r.message_id
			WHERE r.broadcast_id = b.id AND (r.status = 'pending' OR m.status IN ('queued', 'sending')))
		FROM broadcasts b WHERE b.id = $1`, id).Scan(&status, &open)
	if err != nil {
		t.Fatal(err)
	}
	return status == "done" && open == 0, fmt.Sprintf("%s with %d pending, queued or in flight", status, open)
}

// The operator's crash, mid-broadcast: a thousand people are being
// messaged through a Twilio that answers in 100 ms when the server is
// killed (SIGKILL) with sends in flight. Started again, the broadcast
// finishes with every one of them messaged exactly once, counted at
// Twilio: nobody twice (a send cut off is reconciled with Twilio, not
// sent again) and nobody skipped (a recipient's message and its send are
// written with its row, in one transaction).
func TestCrash_SIGKILLMidBroadcastEveryRecipientMessagedOnce(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	const recipients = 1000
	fake := twiliotest.NewAPI(e2eAccountSID, token)
	fake.Delay = 100 * time.Millisecond // sends are in flight when the kill comes
	t.Cleanup(fake.Close)
	dsn := pgtest.DSN(t)
	env := twilioEnv(t, dsn, fake, token)
	base := env["PARLEY_PUBLIC_URL"]
	first := startProcess(t, env, "serve")
	addVisitReminder(t, fake, env)
	bearer := apiToken(t, env, base, "supervisor")
	var csv strings.Builder
	csv.WriteString("phone,name\n")
	for i := range recipients {
		fmt.Fprintf(&csv, "%s,Person %d\n", contactNumber(i), i)
	}
	var plan struct {
		Broadcast struct{ ID int64 } `json:"broadcast"`
	}
	apiPost(t, base+"/api/v1/broadcasts", bearer, map[string]any{"name": "Flu clinic", "channel": "whatsapp",
		"template": map[string]any{"name": "visit_reminder", "language": "en", "params": map[string]string{"1": "{{name}}"}}, "csv": csv.String()}, 201, &plan)
	id := plan.Broadcast.ID
	apiPost(t, fmt.Sprintf("%s/api/v1/broadcasts/%d/confirm", base, id), bearer, nil, 204, nil)
	waitFor(t, "a third of the broadcast to go out", func() bool { return len(fake.Sent()) >= recipients/3 })
	first.kill()
	sentBefore := len(fake.Sent())
	db := openDB(t, dsn)
	var sending, pending int // what the kill left behind
	if err := db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM messages WHERE status = 'sending'),
		(SELECT count(*) FROM broadcast_recipients WHERE status = 'pending')`).Scan(&sending, &pending); err != nil {
		t.Fatal(err)
	}
	if pending == 0 {
		t.Fatal("the broadcast was fully queued before the kill: the test proves nothing")
	}

	startProcess(t, env, "serve")
	start := time.Now()
	var state string
	for settled := false; !settled; {
		if settled, state = broadcastSettled(t, db, id); !settled && time.Since(start) > 3*time.Minute {
			t.Fatalf("three minutes after the restart the broadcast is %s", state)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	got := map[string]int{}
	for _, s := range fake.Sent() {
		got[strings.TrimPrefix(s.To, "whatsapp:")]++
	}
	for i := range recipients {
		if n := got[contactNumber(i)]; n != 1 {
			t.Errorf("%s was messaged %d times, want once", contactNumber(i), n)
		}
	}
	if len(fake.Sent()) != recipients {
		t.Errorf("Twilio took %d messages, want %d", len(fake.Sent()), recipients)
	}
	t.Logf("broadcast crash: %d of %d at Twilio at the kill, %d sends in flight, %d recipients not yet queued; done %.1f s after the restart",
		sentBefore, recipients, sending, pending, time.Since(start).Seconds())
}

// addVisitReminder gives the fake Twilio the approved template the
// broadcast tests send, and syncs it into the registry as an operator
// does (parley templates sync).
func addVisitReminder(t *testing.T, fake *twiliotest.API, env map[string]string) {
	t.Helper()
	fake.AddContent(twiliotest.Content{SID: "HX00000000000000000000000000000007", FriendlyName: "visit_reminder", Language: "en",
		Body: "Dear {{1}}, the flu clinic is open on Saturday.", Status: "approved", Category: "utility"})
	if code, out, stderr := runCmd(t, env, "templates", "sync"); code != exitOK {
		t.Fatalf("templates sync = %d: %s %s", code, out, stderr)
	}
}
