package pipeline_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
)

// receiver is an events endpoint as a customer would write it: it checks
// the signature on its own (HMAC-SHA256 of timestamp "." body, hex, after
// "v1="), refuses stale timestamps, and fails its first calls.
type receiver struct {
	secret   []byte
	failures int // answers 500 to this many deliveries first

	mu       sync.Mutex
	calls    int
	accepted map[string]map[string]any // by event id: the event
	types    []string
	forged   int
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted)
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	ts, sig := req.Header.Get("Parley-Timestamp"), req.Header.Get("Parley-Signature")
	mac := hmac.New(sha256.New, r.secret)
	fmt.Fprintf(mac, "%s.%s", ts, body)
	want := fmt.Sprintf("v1=%x", mac.Sum(nil))
	sent, err := strconv.ParseInt(ts, 10, 64)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if !hmac.Equal([]byte(sig), []byte(want)) || err != nil || time.Since(time.Unix(sent, 0)).Abs() > 5*time.Minute {
		r.forged++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.calls <= r.failures {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var ev struct {
		ID   string         `json:"id"`
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if json.Unmarshal(body, &ev) != nil || ev.ID != req.Header.Get("Parley-Event-Id") {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if _, seen := r.accepted[ev.ID]; !seen { // a repeat is acknowledged, not counted
		r.accepted[ev.ID] = ev.Data
		r.types = append(r.types, ev.Type)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Signed events go out from the queue at least once, retried past a
// receiver's failures, verifiable by the receiver alone, and without
// personal data unless it asked for it.
func TestEvents_SignedDeliveredAtLeastOnceWithoutPersonalData(t *testing.T) {
	e := newEnv(t)
	rcv := &receiver{secret: []byte(strings.Repeat("s", 32)), failures: 2, accepted: map[string]map[string]any{}}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	e.startWith(t, pipeline.Deps{Responder: pipeline.NewFlows(engine.Builtin(), e.db, e.crypto),
		Senders: map[string]channel.Sender{channel.Twilio: e.twilio},
		Events:  &pipeline.Events{URL: srv.URL, Secret: rcv.secret},
		Config:  pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond}})
	if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "hello there")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first events", func() bool { return rcv.count() == 3 })
	// A name, then an age under 18: the flow says a guardian must book,
	// and ends the conversation.
	if _, err := e.pipelineIngest(t, sms("SM2", "+919876543210", "Asha"), sms("SM3", "+919876543210", "12")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the conversation's end", func() bool { return e.idle(t) && rcv.count() >= 9 })
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	got := strings.Join(rcv.types, ",")
	if strings.Count(got, "message.received") != 3 || strings.Count(got, "message.sent") != 5 || strings.Count(got, "conversation.ended") != 1 {
		t.Errorf("events %s, want three message.received, five message.sent and one conversation.ended", got)
	}
	if rcv.forged != 0 || rcv.calls < 5 {
		t.Errorf("%d calls (%d refused as forged): want the two failures retried", rcv.calls, rcv.forged)
	}
	for id, data := range rcv.accepted {
		raw, _ := json.Marshal(data)
		if strings.Contains(string(raw), "9876543210") || strings.Contains(string(raw), "hello") || strings.Contains(string(raw), "clinic assistant") {
			t.Errorf("event %s carries personal data: %s", id, raw)
		}
		if data["contact_id"] == nil || (data["message_id"] == nil && data["conversation_id"] == nil) {
			t.Errorf("event %s names no contact or message: %s", id, raw)
		}
	}
}

// A conversation handed to a person because a message could not be
// processed is reported like any hand-off, with the reason.
func TestEvents_AHandOffAfterAProcessingFailureIsReported(t *testing.T) {
	e := newEnv(t)
	rcv := &receiver{secret: []byte(strings.Repeat("s", 32)), accepted: map[string]map[string]any{}}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	e.startWith(t, pipeline.Deps{Responder: poisoned{pipeline.NewFlows(engine.Builtin(), e.db, e.crypto)},
		Senders: map[string]channel.Sender{channel.Twilio: e.twilio}, Events: &pipeline.Events{URL: srv.URL, Secret: rcv.secret},
		Config: pipeline.Config{MaxProcessTries: 2, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond, SendRate: 1000, SendBurst: 100}})
	if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first answer", func() bool { return len(e.api.Sent()) == 2 && e.idle(t) })
	if _, err := e.pipelineIngest(t, sms("SM2", "+919876543210", "poison")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hand-off event", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for _, data := range rcv.accepted {
			if data["reason"] == "parley:processing_failed" && data["conversation_id"] != nil {
				return true
			}
		}
		return false
	})
}
