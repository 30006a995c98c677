package handlers_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
)

const (
	publicURL   = "https://parley.example.org"
	accountSID  = "AC00000000000000000000000000000001"
	authToken   = "twiliotoken123"
	appSecret   = "meta-app-secret"
	verifyToken = "meta-verify-token"
	sirenSecret = "siren-secret"
)

// hooks is the real server with webhooks over a fresh database, listening
// on loopback, and a fake Twilio behind the pipeline.
type hooks struct {
	base string
	db   *store.DB
	api  *twiliotest.API
	pipe *pipeline.Pipeline
	reg  *prometheus.Registry // the server's metrics
}

func newHooks(t testing.TB, start bool) *hooks {
	t.Helper()
	return newHooksOn(t, pgtest.Open(t), start)
}

func newHooksOn(t testing.TB, db *store.DB, start bool) *hooks {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ring, _ := crypt.NewKeyRing([]crypt.Key{{ID: "k1", Secret: key}}, nil)
	ix, _ := crypt.NewIndexer(bytes.Repeat([]byte{4}, 32))
	c := store.Crypto{Ring: ring, Index: ix, Phones: phone.New("IN")}
	api := twiliotest.NewAPI(accountSID, authToken)
	t.Cleanup(api.Close)
	tc, err := twilio.NewClient(twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: "+15005550006", APIBaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics := pipeline.NewMetrics(reg)
	pipe, err := pipeline.New(pipeline.Deps{
		DB: db, Crypto: c, Responder: pipeline.Ack{Text: "Thanks!"}, Metrics: metrics, Logger: slog.New(slog.DiscardHandler),
		Senders: map[string]channel.Sender{channel.Twilio: tc}, Fetchers: map[string]channel.MediaFetcher{channel.Twilio: tc},
		Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if start {
		if err := pipe.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pipe.Stop(context.Background()) })
	}
	readiness, _ := store.NewReadiness(db)
	app := handlers.NewServer(handlers.Deps{
		Logger: slog.New(slog.DiscardHandler), Readiness: readiness, Registry: reg, Version: "test",
		Webhooks: &handlers.Webhooks{
			Pipeline: pipe, Metrics: metrics, Twilio: twilio.NewVerifier(publicURL, authToken),
			MetaAppSecret: appSecret, MetaVerifyToken: verifyToken, SirenSecret: sirenSecret,
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return &hooks{base: "http://" + ln.Addr().String(), db: db, api: api, pipe: pipe, reg: reg}
}

func (h *hooks) count(t testing.TB, sql string) int {
	t.Helper()
	var n int
	if err := h.db.Pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (h *hooks) post(t *testing.T, path, contentType string, body []byte, headers map[string]string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.base+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func form(params map[string]string) []byte {
	v := url.Values{}
	for k, val := range params {
		v.Set(k, val)
	}
	return []byte(v.Encode())
}

func twilioSMS(sid string) map[string]string {
	return map[string]string{
		"MessageSid": sid, "SmsSid": sid, "AccountSid": accountSID, "From": "+919876543210", "To": "+15005550006",
		"Body": "I need an appointment", "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01",
	}
}

func TestTwilioWebhook(t *testing.T) {
	h := newHooks(t, false)
	whatsapp := twilioSMS("SMwa1")
	whatsapp["From"], whatsapp["To"], whatsapp["ProfileName"], whatsapp["WaId"] = "whatsapp:+919812345678", "whatsapp:+14155238886", "Ravi", "919812345678"
	media := twilioSMS("MMmedia1")
	media["NumMedia"], media["MediaUrl0"], media["MediaContentType0"] = "1", h.api.AddMedia("x.jpg", []byte("jpeg")), "image/jpeg"
	noSid := twilioSMS("")
	delete(noSid, "MessageSid")
	badCount := twilioSMS("SMbad")
	badCount["NumMedia"] = "many"

	tests := []struct {
		label      string
		path       string
		params     map[string]string
		sign       string // "public": over PARLEY_PUBLIC_URL; "host": over the Host header's URL; "": none; "wrong": other token
		host       string
		wantStatus int
		wantBody   string
		wantStored int // messages in the database after the case
	}{
		{"valid SMS", "/webhooks/twilio", twilioSMS("SM1"), "public", "", 200, "<Response/>", 1},
		{"replay of the same delivery", "/webhooks/twilio", twilioSMS("SM1"), "public", "", 200, "<Response/>", 1},
		{"missing signature", "/webhooks/twilio", twilioSMS("SM2"), "", "", 403, "", 1},
		{"signed with another token", "/webhooks/twilio", twilioSMS("SM2"), "wrong", "", 403, "", 1},
		{"signed over the Host header", "/webhooks/twilio", twilioSMS("SM2"), "host", "evil.example", 403, "", 1},
		{"a lying Host header, signed over the public URL", "/webhooks/twilio", twilioSMS("SM3"), "public", "internal-lb:8080", 200, "<Response/>", 2},
		{"query string is signed too", "/webhooks/twilio?tenant=a", twilioSMS("SM4"), "public", "", 200, "<Response/>", 3},
		{"WhatsApp with a profile name", "/webhooks/twilio", whatsapp, "public", "", 200, "<Response/>", 4},
		{"media message", "/webhooks/twilio", media, "public", "", 200, "<Response/>", 5},
		{"signed but no MessageSid", "/webhooks/twilio", noSid, "public", "", 400, "MessageSid", 5},
		{"signed but bad NumMedia", "/webhooks/twilio", badCount, "public", "", 400, "NumMedia", 5},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			headers := map[string]string{}
			switch tt.sign {
			case "public":
				headers["X-Twilio-Signature"] = twiliotest.Sign(authToken, publicURL+tt.path, tt.params)
			case "host":
				headers["X-Twilio-Signature"] = twiliotest.Sign(authToken, "http://"+tt.host+tt.path, tt.params)
			case "wrong":
				headers["X-Twilio-Signature"] = twiliotest.Sign("othertoken", publicURL+tt.path, tt.params)
			}
			if tt.host != "" {
				headers["Host"] = tt.host
			}
			status, body, hdr := h.post(t, tt.path, "application/x-www-form-urlencoded", form(tt.params), headers)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("answer %d %q, want %d containing %q", status, body, tt.wantStatus, tt.wantBody)
			}
			if status == 200 && !strings.HasPrefix(hdr.Get("Content-Type"), "text/xml") {
				t.Errorf("Content-Type %q, want text/xml", hdr.Get("Content-Type"))
			}
			if n := h.count(t, "SELECT count(*) FROM messages"); n != tt.wantStored {
				t.Fatalf("%d messages stored, want %d", n, tt.wantStored)
			}
		})
	}
	if n := h.count(t, "SELECT count(*) FROM messages WHERE channel = 'whatsapp' AND profile_name_enc IS NOT NULL"); n != 1 {
		t.Errorf("WhatsApp messages with the profile name: %d, want 1", n)
	}
	if n := h.count(t, "SELECT count(*) FROM media"); n != 1 {
		t.Errorf("media rows %d, want 1", n)
	}
	if status, _, _ := h.post(t, "/webhooks/twilio", "application/json", []byte(`{"MessageSid":"SM9"}`), nil); status != 400 {
		t.Errorf("JSON body: %d, want 400", status)
	}
	big := twilioSMS("SMbig")
	big["Body"] = strings.Repeat("x", 600<<10)
	if status, _, _ := h.post(t, "/webhooks/twilio", "application/x-www-form-urlencoded", form(big), map[string]string{"X-Twilio-Signature": twiliotest.Sign(authToken, publicURL+"/webhooks/twilio", big)}); status != 400 {
		t.Errorf("oversized body: %d, want 400", status)
	}
	// A percent sign that escapes nothing: lenient parsing kept "%ZZ" as
	// the sender (signed as such), stored an address that is no number and
	// answered it. Platforms never send one.
	escape := twilioSMS("SMescape")
	escape["From"] = "%ZZ"
	raw := bytes.Replace(form(escape), []byte("From=%25ZZ"), []byte("From=%ZZ"), 1)
	if status, body, _ := h.post(t, "/webhooks/twilio", "application/x-www-form-urlencoded", raw, map[string]string{"X-Twilio-Signature": twiliotest.Sign(authToken, publicURL+"/webhooks/twilio", escape)}); status != 400 || !strings.Contains(body, "escape") {
		t.Errorf("a malformed escape: %d %q, want 400 saying so", status, body)
	}
	if n := h.count(t, "SELECT count(*) FROM messages"); n != 5 {
		t.Fatalf("%d messages after bad bodies, want 5", n)
	}
}

func TestTwilioStatusCallback_OutOfOrder(t *testing.T) {
	h := newHooks(t, true)
	params := twilioSMS("SM1")
	if status, _, _ := h.post(t, "/webhooks/twilio", "application/x-www-form-urlencoded", form(params), map[string]string{"X-Twilio-Signature": twiliotest.Sign(authToken, publicURL+"/webhooks/twilio", params)}); status != 200 {
		t.Fatalf("inbound: %d", status)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(h.api.Sent()) == 0 || h.count(t, "SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'sent'") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("reply never sent")
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	sid := h.api.Sent()[0].SID
	callback := func(status, code string) int {
		p := map[string]string{"MessageSid": sid, "MessageStatus": status, "AccountSid": accountSID, "From": "+15005550006", "To": "+919876543210"}
		if code != "" {
			p["ErrorCode"] = code
		}
		st, body, _ := h.post(t, "/webhooks/twilio/status", "application/x-www-form-urlencoded", form(p), map[string]string{"X-Twilio-Signature": twiliotest.Sign(authToken, publicURL+"/webhooks/twilio/status", p)})
		if st == 200 && body != "" {
			t.Errorf("status %s answered with a body, %q; Twilio expects none", status, body)
		}
		return st
	}
	for _, step := range []struct{ status, code, want string }{
		{"delivered", "", "delivered"},
		{"sent", "", "delivered"},
		{"undelivered", "30003", "failed"},
		{"delivered", "", "failed"},
		{"someday-new-status", "", "failed"},
	} {
		if got := callback(step.status, step.code); got != 200 {
			t.Fatalf("callback %s answered %d", step.status, got)
		}
		var status, code string
		if err := h.db.Pool.QueryRow(context.Background(), "SELECT status, error_code FROM messages WHERE direction = 'out'").Scan(&status, &code); err != nil {
			t.Fatal(err)
		}
		if status != step.want {
			t.Fatalf("after %s: status %q, want %q", step.status, status, step.want)
		}
		if status == "failed" && code != "30003" {
			t.Fatalf("failed message lost its error code: %q", code)
		}
	}
	p := map[string]string{"MessageSid": sid, "MessageStatus": "read"}
	if st, _, _ := h.post(t, "/webhooks/twilio/status", "application/x-www-form-urlencoded", form(p), nil); st != 403 {
		t.Fatalf("unsigned callback: %d, want 403", st)
	}
}

func signMeta(body []byte) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

const metaTwoMessages = `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
 "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000000","phone_number_id":"123"},
 "contacts":[{"profile":{"name":"Asha"},"wa_id":"919876543210"}],
 "messages":[
  {"from":"919876543210","id":"wamid.A1","timestamp":"1763780000","type":"text","text":{"body":"hello"}},
  {"from":"919876543210","id":"wamid.A2","timestamp":"1763780001","type":"image","image":{"id":"media-1","mime_type":"image/jpeg","sha256":"x","caption":"my card"}},
  {"from":"919876543210","id":"wamid.A3","timestamp":"1763780002","type":"reaction","reaction":{"message_id":"wamid.X","emoji":"👍"}}
 ],
 "statuses":[{"id":"wamid.OUT1","status":"delivered","timestamp":"1763780003","recipient_id":"919876543210"}]
}}]}]}`

func TestMetaWebhook(t *testing.T) {
	h := newHooks(t, false)
	get := func(q string) (int, string) {
		resp, err := http.Get(h.base + "/webhooks/meta?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get("hub.mode=subscribe&hub.verify_token=" + verifyToken + "&hub.challenge=1158201444"); st != 200 || body != "1158201444" {
		t.Fatalf("handshake: %d %q", st, body)
	}
	if st, _ := get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"); st != 403 {
		t.Fatalf("handshake with a wrong token: %d", st)
	}
	body := []byte(metaTwoMessages)
	tests := []struct {
		label      string
		body       []byte
		sig        string
		wantStatus int
		wantStored int
	}{
		{"two messages, an ignored reaction and a status", body, signMeta(body), 200, 2},
		{"replay", body, signMeta(body), 200, 2},
		{"bad signature", body, signMeta([]byte("other")), 403, 2},
		{"no signature", body, "", 403, 2},
		{"signature over re-encoded JSON", []byte(strings.ReplaceAll(metaTwoMessages, "\n", "")), signMeta(body), 403, 2},
		{"malformed JSON", []byte(`{"object":`), signMeta([]byte(`{"object":`)), 400, 2},
		{"message without id", []byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"from":"91","type":"text","text":{"body":"x"}}]}}]}]}`), "", 400, 2},
		{"another object", []byte(`{"object":"page","entry":[]}`), "", 200, 2},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			sig := tt.sig
			if sig == "" && tt.wantStatus != 403 {
				sig = signMeta(tt.body)
			}
			headers := map[string]string{}
			if sig != "" {
				headers["X-Hub-Signature-256"] = sig
			}
			status, resp, _ := h.post(t, "/webhooks/meta", "application/json", tt.body, headers)
			if status != tt.wantStatus {
				t.Fatalf("answer %d %q, want %d", status, resp, tt.wantStatus)
			}
			if n := h.count(t, "SELECT count(*) FROM messages"); n != tt.wantStored {
				t.Fatalf("%d messages stored, want %d", n, tt.wantStored)
			}
		})
	}
	if n := h.count(t, "SELECT count(*) FROM messages WHERE provider_time IS NOT NULL AND channel = 'whatsapp'"); n != 2 {
		t.Errorf("%d WhatsApp messages with the platform's timestamp, want 2", n)
	}
	if n := h.count(t, "SELECT count(*) FROM media"); n != 1 {
		t.Errorf("%d media rows, want 1", n)
	}
}

func signSiren(body []byte) string {
	m := hmac.New(sha256.New, []byte(sirenSecret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestSirenWebhook(t *testing.T) {
	h := newHooks(t, false)
	msg := func(id string) []byte {
		return []byte(fmt.Sprintf(`{"event":"message.received","timestamp":"2026-11-22T01:00:00Z","channel":"WHATSAPP","message":{"id":%q,"from":"+919876543210","to":"+15550000000","text":"hi","timestamp":"2026-11-22T01:00:00Z"},"metadata":{"provider":"x"}}`, id))
	}
	tests := []struct {
		label      string
		body       []byte
		sig        string
		delivery   string
		wantStatus int
		wantStored int
	}{
		{"valid", msg("s1"), signSiren(msg("s1")), "d1", 200, 1},
		{"redelivery of the same message", msg("s1"), signSiren(msg("s1")), "d2", 200, 1},
		{"bad signature", msg("s2"), signSiren(msg("other")), "d3", 403, 1},
		{"malformed", []byte(`{`), signSiren([]byte(`{`)), "d4", 400, 1},
		{"unknown event", []byte(`{"event":"message.status"}`), signSiren([]byte(`{"event":"message.status"}`)), "d5", 200, 1},
		{"no id: the signed body stands in", msg(""), signSiren(msg("")), "d6", 200, 2},
		// The delivery id is not signed: a captured body replayed under a
		// new one is the same message, acknowledged and not stored again.
		{"no id, replayed with a new delivery id", msg(""), signSiren(msg("")), "d7", 200, 2},
		{"no id, replayed without a delivery id", msg(""), signSiren(msg("")), "", 200, 2},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			status, _, _ := h.post(t, "/webhooks/siren", "application/json", tt.body, map[string]string{
				"X-Siren-Signature": tt.sig, "X-Siren-Delivery": tt.delivery, "X-Siren-Event": "message.received",
			})
			if status != tt.wantStatus {
				t.Fatalf("answer %d, want %d", status, tt.wantStatus)
			}
			if n := h.count(t, "SELECT count(*) FROM messages"); n != tt.wantStored {
				t.Fatalf("%d messages stored, want %d", n, tt.wantStored)
			}
		})
	}
}

func TestTwilioWebhook_DatabaseDownAnswers503(t *testing.T) {
	h := newHooks(t, false)
	h.db.Close()
	params := twilioSMS("SM1")
	status, _, _ := h.post(t, "/webhooks/twilio", "application/x-www-form-urlencoded", form(params), map[string]string{"X-Twilio-Signature": twiliotest.Sign(authToken, publicURL+"/webhooks/twilio", params)})
	if status != 503 {
		t.Fatalf("with the database down: %d, want 503", status)
	}
}

func TestTwilioWebhook_TwoHundredParallelCopiesStoreOneAndReplyOnce(t *testing.T) {
	h := newHooks(t, true)
	params := twilioSMS("SMsame")
	sig := twiliotest.Sign(authToken, publicURL+"/webhooks/twilio", params)
	body := form(params)
	var wg sync.WaitGroup
	statuses := make([]int, 200)
	start := make(chan struct{})
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest(http.MethodPost, h.base+"/webhooks/twilio", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", sig)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("copy %d answered %d", i, s)
		}
	}
	if n := h.count(t, "SELECT count(*) FROM messages WHERE direction = 'in'"); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
	if n := h.count(t, "SELECT count(*) FROM river_job WHERE kind = 'process_contact'"); n != 1 {
		t.Fatalf("%d processing jobs, want 1", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for h.count(t, "SELECT count(*) FROM river_job WHERE state NOT IN ('completed','discarded','cancelled')") > 0 || len(h.api.Sent()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("processing never finished")
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if n := len(h.api.Sent()); n != 1 {
		t.Fatalf("fake Twilio received %d replies, want the 1 that one delivery produces", n)
	}
}
