package handlers_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
)

// A webhook whose message could never be stored (a NUL byte, or bytes that
// are not UTF-8, in its id or an address) is answered 400 with a reason
// naming the field, before it joins a commit: a 5xx would have Twilio
// redeliver it forever. Posted while twenty good webhooks wait in one held
// commit, each bad one is refused at once, again when delivered a second
// time; the twenty are stored, no transaction failed, and nothing of the
// bad ones was stored. A body or profile name with such bytes is cleaned
// and kept, not refused.
func TestTwilioWebhook_UnstorableMessageIsRefusedAtParse(t *testing.T) {
	h := newHooks(t, false)
	const good = 20
	var messages []map[string]string
	for i := range good {
		messages = append(messages, twilioFrom(fmt.Sprintf("SMok%03d", i), fmt.Sprintf("+9198765%05d", i)))
	}
	dirty := twilioFrom("SMdirtytext", "+919876599990") // kept, cleaned
	dirty["Body"], dirty["ProfileName"] = "caf\xe9 at 10\x00", "A\x00sha"
	messages = append(messages, dirty)
	nulSid := twilioFrom("SMnul\x00", "+919876599991")
	badFrom := twilioFrom("SMbadfrom", "+91987659\xe9")
	nulMedia := twilioFrom("SMnulmedia", "+919876599993")
	nulMedia["NumMedia"], nulMedia["MediaUrl0"], nulMedia["MediaContentType0"] = "1", "https://api.twilio.com/x", "image/\x00"
	bad := []struct {
		label  string
		params map[string]string
		reason string
	}{
		{"NUL in the message id", nulSid, "message id"},
		{"Latin-1 sender", badFrom, "sender"},
		{"NUL in a media type", nulMedia, "media"},
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
				if strings.Contains(body, "+9198765") || strings.Contains(body, "SMnul") {
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
	if got := h.count(t, "SELECT count(*) FROM messages WHERE direction = 'in'"); got != good+1 {
		t.Fatalf("%d messages stored, want the %d good ones and the cleaned one", got, good+1)
	}
	if got := h.count(t, "SELECT count(*) FROM contacts"); got != good+1 {
		t.Fatalf("%d contacts, want %d (none for a refused message)", got, good+1)
	}
	if failed := metric(t, h.reg, "parley_ingest_commits_total", map[string]string{"outcome": "failed"}); failed != 0 {
		t.Fatalf("%.0f failed ingest transactions, want none: a refused message never reaches a commit", failed)
	}
	if n := metric(t, h.reg, "parley_webhooks_total", map[string]string{"provider": "twilio", "outcome": "malformed"}); n != float64(2*len(bad)) {
		t.Fatalf("%.0f webhooks counted malformed, want %d", n, 2*len(bad))
	}
}

// Meta's and Siren's JSON can carry a NUL too (\u0000): in an id it is
// refused with 400 naming the field and nothing of it is stored; in a body
// the message is kept without it.
func TestJSONWebhooks_UnstorableMessageIsRefusedAtParse(t *testing.T) {
	h := newHooks(t, false)
	meta := func(id, text string) []byte {
		return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
 "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000000","phone_number_id":"123"},
 "contacts":[{"profile":{"name":"Asha"},"wa_id":"919876543210"}],
 "messages":[{"from":"919876543210","id":"` + id + `","timestamp":"1763780000","type":"text","text":{"body":"` + text + `"}}]}}]}]}`)
	}
	siren := func(id string) []byte {
		return []byte(`{"event":"message.received","timestamp":"2026-11-22T01:00:00Z","channel":"WHATSAPP","message":{"id":"` + id + `","from":"+919876543211","to":"+15550000000","text":"hi","timestamp":"2026-11-22T01:00:00Z"}}`)
	}
	for _, tc := range []struct {
		label, path string
		body        []byte
		headers     func([]byte) map[string]string
		want        int
		reason      string
		stored      int
	}{
		{"Meta, NUL in the id", "/webhooks/meta", meta(`wamid.\u0000`, "hello"), metaHeaders, 400, "message id", 0},
		{"Meta, NUL in the body: kept without it", "/webhooks/meta", meta("wamid.N1", `a\u0000b`), metaHeaders, 200, "", 1},
		{"Siren, NUL in the id", "/webhooks/siren", siren(`s\u0000`), sirenHeaders, 400, "message id", 1},
		{"Siren, good", "/webhooks/siren", siren("s1"), sirenHeaders, 200, "", 2},
	} {
		status, body, _ := h.post(t, tc.path, "application/json", tc.body, tc.headers(tc.body))
		if status != tc.want || !strings.Contains(body, tc.reason) {
			t.Fatalf("%s: %d %q, want %d naming the %s", tc.label, status, body, tc.want, tc.reason)
		}
		if n := h.count(t, "SELECT count(*) FROM messages"); n != tc.stored {
			t.Fatalf("%s: %d messages stored, want %d", tc.label, n, tc.stored)
		}
	}
}

func metaHeaders(body []byte) map[string]string {
	return map[string]string{"X-Hub-Signature-256": signMeta(body)}
}

func sirenHeaders(body []byte) map[string]string {
	return map[string]string{"X-Siren-Signature": signSiren(body), "X-Siren-Event": "message.received"}
}
