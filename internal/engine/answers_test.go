package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/engine"
)

// answerFlow asks one question of the given type and saves the answer.
func answerFlow(t *testing.T, ask, extra string) *engine.Flow {
	t.Helper()
	src := `id: q
languages: [en]
` + extra + `start: ask
nodes:
  ask:
    ask: {prompt: {en: "Question?"}, ` + ask + `, save: answer, retry: {prompt: {en: "Again?"}, limit: 9, exhausted: bye}}
    next: bye
  bye:
    end: {send: {en: "Bye."}}
`
	f, err := engine.Parse("q.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// answer starts the flow and gives it one answer; it returns what was
// saved ("" when the answer was refused).
func answer(t *testing.T, f *engine.Flow, in engine.Input) string {
	t.Helper()
	st, _, err := engine.Step(f, engine.State{}, engine.Input{Kind: engine.InputMessage, Text: "hi", Now: in.Now})
	if err != nil {
		t.Fatal(err)
	}
	in.Kind = engine.InputMessage
	st, _, err = engine.Step(f, st, in)
	if err != nil {
		t.Fatal(err)
	}
	return st.Vars["answer"]
}

func TestAnswers_NumbersMustBeFinite(t *testing.T) {
	f := answerFlow(t, "type: number, range: [0, 120]", "")
	for _, text := range []string{"NaN", "nan", "Inf", "+Inf", "-Inf", "infinity", "1e400"} {
		if got := answer(t, f, engine.Input{Text: text}); got != "" {
			t.Errorf("%q saved as %q, want it refused", text, got)
		}
	}
	if got := answer(t, f, engine.Input{Text: "34"}); got != "34" {
		t.Errorf("34 saved as %q", got)
	}
}

func TestAnswers_PhonesAreReadInTheConfiguredRegion(t *testing.T) {
	f := answerFlow(t, "type: phone", "")
	tests := []struct{ region, text, want string }{
		{"US", "(415) 555-2671", "+14155552671"},
		{"IN", "098765 43210", "+919876543210"},
		{"GB", "020 7946 0958", "+442079460958"},
		{"US", "020 7946 0958", ""},
		{"", "98765 43210", ""},
		{"", "+44 20 7946 0958", "+442079460958"},
	}
	for _, tt := range tests {
		if got := answer(t, f, engine.Input{Text: tt.text, Region: tt.region}); got != tt.want {
			t.Errorf("region %q, %q: saved %q, want %q", tt.region, tt.text, got, tt.want)
		}
	}
}

func TestAnswers_TodayIsReadInTheFlowsTimeZone(t *testing.T) {
	// 20:00 UTC is already the next day in India.
	now := time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)
	tests := []struct{ extra, text, want string }{
		{"", "today", "2026-12-03"},
		{"timezone: Asia/Kolkata\n", "today", "2026-12-04"},
		{"timezone: Asia/Kolkata\n", "tomorrow", "2026-12-05"},
		{"timezone: America/Los_Angeles\n", "today", "2026-12-03"},
	}
	for _, tt := range tests {
		f := answerFlow(t, "type: date", tt.extra)
		if got := answer(t, f, engine.Input{Text: tt.text, Now: now}); got != tt.want {
			t.Errorf("%q with %q: saved %q, want %q", tt.text, strings.TrimSpace(tt.extra), got, tt.want)
		}
	}
	// A server in another zone reads the same.
	if got := answer(t, answerFlow(t, "type: date", "timezone: Asia/Kolkata\n"), engine.Input{Text: "today", Now: now.In(time.FixedZone("X", -8*3600))}); got != "2026-12-04" {
		t.Errorf("from a server at UTC-8: %q", got)
	}
	if _, err := engine.Parse("q.yaml", []byte("id: q\nlanguages: [en]\ntimezone: Mars/Olympus\nstart: a\nnodes:\n  a:\n    end: {send: {en: x}}\n")); err == nil || !strings.Contains(err.Error(), "Mars/Olympus") {
		t.Errorf("an unknown time zone: err = %v", err)
	}
}
