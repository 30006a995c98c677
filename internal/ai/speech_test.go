package ai_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/internal/ai"
	"github.com/parley-chat/parley/internal/ai/sarvamtest"
)

func newSpeech(t *testing.T, fake *sarvamtest.API, key string) (*ai.Speech, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return ai.NewSpeech(ai.SpeechConfig{BaseURL: fake.URL, APIKey: key, Metrics: ai.NewMetrics(reg), Rest: 100 * time.Millisecond, BreakAfter: 3}), reg
}

func TestSpeech_TranscribesVoiceNotes(t *testing.T) {
	fake := sarvamtest.New(t)
	en, hi := fixture(t, "voice-note-en.ogg"), fixture(t, "voice-note-hi.ogg")
	fake.Says(en, sarvamtest.Said{Text: "My name is Asha and I need an appointment on Monday", Language: "en-IN"})
	fake.Says(hi, sarvamtest.Said{Text: "मेरा नाम आशा है और मुझे सोमवार को डॉक्टर से मिलना है", Language: "hi-IN"})
	s, reg := newSpeech(t, fake, sarvamtest.Key)
	ctx := context.Background()
	got, err := s.Transcribe(ctx, en, "audio/ogg; codecs=opus")
	if err != nil || got.Text != "My name is Asha and I need an appointment on Monday" || got.Language != "en-IN" || got.Audio < 3*time.Second {
		t.Fatalf("English: %+v %v", got, err)
	}
	if got, err = s.Transcribe(ctx, hi, "audio/ogg"); err != nil || !strings.HasPrefix(got.Text, "मेरा नाम आशा") || got.Language != "hi-IN" {
		t.Fatalf("Hindi: %+v %v", got, err)
	}
	c := fake.Calls()[0]
	if c.Model != "saaras:v3" || c.Mode != "transcribe" || c.Language != "unknown" || c.FileType != "audio/ogg" {
		t.Fatalf("the request: %+v", c)
	}
	// The long note goes in parts under the 30 s limit, joined in order.
	got, err = s.Transcribe(ctx, fixture(t, "voice-note-long.ogg"), "audio/ogg")
	calls := fake.Calls()[2:]
	if err != nil || len(calls) != 5 || strings.Count(got.Text, "seconds of speech") != 5 || got.Audio < 100*time.Second {
		t.Fatalf("the long note: %d calls, %+v, %v", len(calls), got, err)
	}
	for _, c := range calls {
		if c.Seconds > 25 || c.Status != 200 {
			t.Fatalf("a part of %.1f s answered %d", c.Seconds, c.Status)
		}
	}
	if n := counter(t, reg, "parley_ai_audio_seconds_total", map[string]string{"provider": "sarvam"}); n < 110 {
		t.Fatalf("%.1f seconds of audio counted", n)
	}
}

// Each class of failure: a bad key and a refused request are final; a
// rate limit (honouring Retry-After), an outage and a malformed answer are
// tried again within the call; a hang ends at the caller's deadline.
// Errors never carry what was said.
func TestSpeech_Failures(t *testing.T) {
	en := fixture(t, "voice-note-en.ogg")
	ctx := context.Background()
	tests := []struct {
		label     string
		key       string
		fail      []sarvamtest.Failure
		ok        bool
		permanent bool
		calls     int
	}{
		{"bad key", "wrong", nil, false, true, 1},
		{"refused", sarvamtest.Key, []sarvamtest.Failure{{Status: 422, Code: "invalid_request_error"}}, false, true, 1},
		{"rate limited, then heard", sarvamtest.Key, []sarvamtest.Failure{{Status: 429, Code: "rate_limit_exceeded_error", RetryAfter: 1}}, true, false, 2},
		{"outage, then heard", sarvamtest.Key, []sarvamtest.Failure{{Status: 500}, {Status: 503}}, true, false, 3},
		{"outage throughout", sarvamtest.Key, []sarvamtest.Failure{{Status: 503}, {Status: 503}, {Status: 503}}, false, false, 3},
		{"malformed, then heard", sarvamtest.Key, []sarvamtest.Failure{{Malformed: true}}, true, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			fake := sarvamtest.New(t)
			fake.Says(en, sarvamtest.Said{Text: "My name is Asha", Language: "en-IN"})
			fake.FailNext(tt.fail...)
			s, _ := newSpeech(t, fake, tt.key)
			start := time.Now()
			got, err := s.Transcribe(ctx, en, "audio/ogg")
			if (err == nil) != tt.ok || ai.Permanent(err) != tt.permanent || len(fake.Calls()) != tt.calls {
				t.Fatalf("%+v, %v (permanent %v), %d calls", got, err, ai.Permanent(err), len(fake.Calls()))
			}
			if err != nil && strings.Contains(err.Error(), "Asha") {
				t.Fatalf("the error quotes the audio: %v", err)
			}
			if tt.label == "rate limited, then heard" && time.Since(start) < time.Second {
				t.Fatal("Retry-After was not honoured")
			}
		})
	}
	t.Run("hang", func(t *testing.T) {
		fake := sarvamtest.New(t)
		fake.FailNext(sarvamtest.Failure{Hang: true})
		s, _ := newSpeech(t, fake, sarvamtest.Key)
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := s.Transcribe(cctx, en, "audio/ogg")
		var ce *ai.CallError
		if !errors.As(err, &ce) || ce.Reason != "timed out" || ai.Permanent(err) {
			t.Fatalf("a hang: %v", err)
		}
	})
}

// After repeated failures the service is left alone: calls fail at once
// without reaching it; after the rest a call goes through again.
func TestSpeech_BreakerOpensAndRecovers(t *testing.T) {
	fake := sarvamtest.New(t)
	en := fixture(t, "voice-note-en.ogg")
	s, reg := newSpeech(t, fake, sarvamtest.Key)
	ctx := context.Background()
	for range 3 {
		fake.FailNext(sarvamtest.Failure{Status: 500}, sarvamtest.Failure{Status: 500}, sarvamtest.Failure{Status: 500})
		if _, err := s.Transcribe(ctx, en, "audio/ogg"); err == nil {
			t.Fatal("an outage answered")
		}
	}
	if s.State() != "open" {
		t.Fatalf("breaker %s after three failed calls", s.State())
	}
	before := len(fake.Calls())
	if _, err := s.Transcribe(ctx, en, "audio/ogg"); err == nil || !strings.Contains(err.Error(), "left alone") || len(fake.Calls()) != before {
		t.Fatalf("an open breaker: %v, %d calls made", err, len(fake.Calls())-before)
	}
	if n := counter(t, reg, "parley_ai_provider_requests_total", map[string]string{"provider": "sarvam", "task": "transcribe", "outcome": "resting"}); n != 1 {
		t.Fatalf("%v resting calls counted", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.State() == "open" {
		if time.Now().After(deadline) {
			t.Fatal("the breaker never rested")
		}
		time.Sleep(10 * time.Millisecond) // the rest is a span of time
	}
	if _, err := s.Transcribe(ctx, en, "audio/ogg"); err != nil || s.State() != "closed" {
		t.Fatalf("after the rest: %v, breaker %s", err, s.State())
	}
}

// A provider's key goes to the provider alone: a redirect elsewhere is not
// followed (Go's client would copy the key's header along), and a huge
// answer is not read whole.
func TestSpeechAndVision_KeysStayAndAnswersAreBounded(t *testing.T) {
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("api-subscription-key") != "" || r.Header.Get("x-goog-api-key") != "" {
			leaked.Add(1)
		}
	}))
	defer elsewhere.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	ctx := context.Background()
	en := fixture(t, "voice-note-en.ogg")
	s := ai.NewSpeech(ai.SpeechConfig{BaseURL: redirect.URL, APIKey: "secret", Retries: -1})
	if _, err := s.Transcribe(ctx, en, "audio/ogg"); err == nil {
		t.Fatal("a redirect answered")
	}
	v, _ := ai.NewVision(ctx, ai.VisionConfig{BaseURL: redirect.URL, APIKey: "secret", Retries: -1})
	if _, _, err := v.Describe(ctx, fixture(t, "appointment-card.jpg"), "image/jpeg"); err == nil {
		t.Fatal("a redirect answered")
	}
	if leaked.Load() != 0 {
		t.Fatal("a key followed a redirect to another host")
	}
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"transcript":"`))
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range 64 { // 4 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer huge.Close()
	s = ai.NewSpeech(ai.SpeechConfig{BaseURL: huge.URL, APIKey: "secret", Retries: -1})
	if _, err := s.Transcribe(ctx, en, "audio/ogg"); err == nil {
		t.Fatal("a 4 MiB answer was read")
	}
}
