package ai_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/internal/ai"
	"github.com/parley-chat/parley/internal/ai/geminitest"
)

var cardSchema = map[string]any{"type": "object", "properties": map[string]any{
	"date":   map[string]any{"type": "string"},
	"doctor": map[string]any{"type": "string"},
}, "required": []any{"date"}}

// theCard is what the fake reads off the appointment card.
var theCard = geminitest.Seen{Description: "An appointment card for Asha Verma with Dr. R. Iyer on Monday 14 December at 10:30.",
	Fields: map[string]any{"date": "2026-12-14", "doctor": "Dr. R. Iyer", "time": "10:30"}, Confidence: 0.92}

func newVision(t *testing.T, fake *geminitest.API, key string) (*ai.Vision, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	v, err := ai.NewVision(context.Background(), ai.VisionConfig{BaseURL: fake.URL, APIKey: key, Metrics: ai.NewMetrics(reg), Rest: 100 * time.Millisecond, BreakAfter: 3})
	if err != nil {
		t.Fatal(err)
	}
	return v, reg
}

func TestVision_DescribesAndExtracts(t *testing.T) {
	fake := geminitest.New(t)
	card := fixture(t, "appointment-card.jpg")
	fake.Sees(card, theCard)
	v, reg := newVision(t, fake, geminitest.Key)
	ctx := context.Background()
	d, u, err := v.Describe(ctx, card, "image/jpeg")
	if err != nil || d != theCard.Description || u.PromptTokens != 270 || u.Provider != "gemini" {
		t.Fatalf("description %q, %v", d, err)
	}
	res, _, err := v.Extract(ctx, card, "image/jpeg", cardSchema, "my card")
	if err != nil || res.Fields["date"] != "2026-12-14" || res.Fields["doctor"] != "Dr. R. Iyer" || res.Fields["time"] != nil || res.Confidence != 0.92 {
		t.Fatalf("fields %+v, %v", res, err)
	}
	calls := fake.Calls()
	if calls[0].JSON || !calls[1].JSON || calls[1].MimeType != "image/jpeg" || calls[1].Model != "gemini-2.5-flash" {
		t.Fatalf("requests: %+v", calls)
	}
	if n := counter(t, reg, "parley_ai_tokens_total", map[string]string{"provider": "gemini", "kind": "prompt"}); n != 540 {
		t.Fatalf("%v prompt tokens counted", n)
	}
}

func TestVision_Failures(t *testing.T) {
	card := fixture(t, "appointment-card.jpg")
	ctx := context.Background()
	tests := []struct {
		label     string
		key       string
		fail      []geminitest.Failure
		ok        bool
		permanent bool
		calls     int
	}{
		{"bad key", "wrong", nil, false, true, 1},
		{"blocked", geminitest.Key, []geminitest.Failure{{Blocked: true}}, false, true, 1},
		{"rate limited with RetryInfo, then read", geminitest.Key, []geminitest.Failure{{Status: 429, RetryDelay: "1s"}}, true, false, 2},
		{"outage, then read", geminitest.Key, []geminitest.Failure{{Status: 500}, {Status: 503}}, true, false, 3},
		{"outage throughout", geminitest.Key, []geminitest.Failure{{Status: 503}, {Status: 503}, {Status: 503}}, false, false, 3},
		{"a malformed answer: the queue tries again", geminitest.Key, []geminitest.Failure{{Malformed: true}}, false, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			fake := geminitest.New(t)
			fake.Sees(card, theCard)
			fake.FailNext(tt.fail...)
			v, _ := newVision(t, fake, tt.key)
			start := time.Now()
			res, _, err := v.Extract(ctx, card, "image/jpeg", cardSchema, "")
			if (err == nil) != tt.ok || ai.Permanent(err) != tt.permanent || len(fake.Calls()) != tt.calls {
				t.Fatalf("%+v, %v (permanent %v), %d calls", res, err, ai.Permanent(err), len(fake.Calls()))
			}
			if err != nil && (strings.Contains(err.Error(), "Monday") || strings.Contains(err.Error(), "injected")) {
				t.Fatalf("the error repeats the provider's words: %v", err)
			}
			if tt.label == "rate limited with RetryInfo, then read" && time.Since(start) < time.Second {
				t.Fatal("RetryInfo was not honoured")
			}
		})
	}
	t.Run("a long RetryInfo is left to the queue", func(t *testing.T) {
		fake := geminitest.New(t)
		fake.FailNext(geminitest.Failure{Status: 429, RetryDelay: "46s"})
		v, _ := newVision(t, fake, geminitest.Key)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, _, err := v.Describe(cctx, card, "image/jpeg")
		if d, ok := ai.RetryAfterIn(err.Error()); !ok || d != 46*time.Second || len(fake.Calls()) != 1 {
			t.Fatalf("%v: retry after %v, %d calls", err, d, len(fake.Calls()))
		}
	})
	t.Run("hang", func(t *testing.T) {
		fake := geminitest.New(t)
		fake.FailNext(geminitest.Failure{Hang: true})
		v, _ := newVision(t, fake, geminitest.Key)
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, _, err := v.Describe(cctx, card, "image/jpeg")
		var ce *ai.CallError
		if !errors.As(err, &ce) || ce.Reason != "timed out" {
			t.Fatalf("a hang: %v", err)
		}
	})
	t.Run("breaker", func(t *testing.T) {
		fake := geminitest.New(t)
		fake.Sees(card, theCard)
		v, _ := newVision(t, fake, geminitest.Key)
		for range 3 {
			fake.FailNext(geminitest.Failure{Status: 500}, geminitest.Failure{Status: 500}, geminitest.Failure{Status: 500})
			_, _, _ = v.Describe(ctx, card, "image/jpeg")
		}
		before := len(fake.Calls())
		if _, _, err := v.Describe(ctx, card, "image/jpeg"); err == nil || len(fake.Calls()) != before || v.State() != "open" {
			t.Fatalf("an open breaker let a call through: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for v.State() == "open" {
			if time.Now().After(deadline) {
				t.Fatal("the breaker never rested")
			}
			time.Sleep(10 * time.Millisecond) // the rest is a span of time
		}
		if d, _, err := v.Describe(ctx, card, "image/jpeg"); err != nil || d == "" {
			t.Fatalf("after the rest: %q %v", d, err)
		}
	})
}
