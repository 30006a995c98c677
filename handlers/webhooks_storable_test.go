package handlers_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
)

// A webhook whose message PostgreSQL could never store (a NUL byte, or
// bytes that are not UTF-8, in any field it keeps) is answered 400 with a
// reason naming the field, before it joins a commit: a 5xx would have
// Twilio redeliver it forever. Posted while twenty good webhooks wait in
// one held commit, each bad one is refused at once, again when delivered a
// second time; the twenty are stored, no transaction failed, and nothing
// of the bad ones was stored.
func TestTwilioWebhook_UnstorableMessageIsRefusedAtParse(t *testing.T) {
	h := newHooks(t, false)
	const good = 20
	var messages []map[string]string
	for i := range good {
		messages = append(messages, twilioFrom(fmt.Sprintf("SMok%03d", i), fmt.Sprintf("+9198765%05d", i)))
	}
	nulSid := twilioFrom("SMnul\x00", "+919876599991")
	badBody := twilioFrom("SMbadutf8", "+919876599992")
	badBody["Body"] = "caf\xe9 at 10"
	nulName := twilioFrom("SMnulname", "+919876599993")
	nulName["ProfileName"] = "A\x00"
	bad := []struct {
		label  string
		params map[string]string
		reason string
	}{
		{"NUL in the message id", nulSid, "message id"},
		{"Latin-1 body", badBody, "body"},
		{"NUL in the profile name", nulName, "profile name"},
	}
	release := h.holdIngest(t)
	statuses := h.postAll(t, messages, func() {
		for _, b := range bad {
			for delivery := 1; delivery <= 2; delivery++ {
				status, body, _ := h.post(t, "/webhooks/twilio", "application/x-www-form-urlencoded", form(b.params),
					map[string]string{"X-Twilio-Signature": twiliotest.Sign(authToken, publicURL+"/webhooks/twilio", b.params)})
				if status != http.StatusBadRequest || !strings.Contains(body, b.reason) {
					t.Errorf("%s, delivery %d: %d %q, want 400 naming the %s", b.label, delivery, status, body, b.reason)
				}
				if strings.Contains(body, "+9198765") || strings.Contains(body, "caf") {
					t.Errorf("%s: the answer repeats what the message holds: %q", b.label, body)
				}
			}
		}
		release()
	})
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("good webhook %d answered %d, want 200 beside the refused ones", i, s)
		}
	}
	if got := h.count(t, "SELECT count(*) FROM messages WHERE direction = 'in'"); got != good {
		t.Fatalf("%d messages stored, want the %d good ones", got, good)
	}
	if got := h.count(t, "SELECT count(*) FROM contacts"); got != good {
		t.Fatalf("%d contacts, want the %d good ones' (none for a refused message)", got, good)
	}
	if failed := metric(t, h.reg, "parley_ingest_commits_total", map[string]string{"outcome": "failed"}); failed != 0 {
		t.Fatalf("%.0f failed ingest transactions, want none: a refused message never reaches a commit", failed)
	}
	if n := metric(t, h.reg, "parley_webhooks_total", map[string]string{"provider": "twilio", "outcome": "malformed"}); n != float64(2*len(bad)) {
		t.Fatalf("%.0f webhooks counted malformed, want %d", n, 2*len(bad))
	}
}
