package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/engine/enginetest"
)

func loadFlow(t *testing.T, name string) *engine.Flow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("flows", name)) // a built-in flow
	if err != nil {
		t.Fatal(err)
	}
	f, err := engine.Parse(name, data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestTranscripts replays each conversation in testdata/transcripts
// against the pure engine: "> text" is what the contact writes, "! remind"
// and "! expire" are timeouts firing, "< text" each reply expected in order,
// and "= key: value" the state expected at that point.
func TestTranscripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/transcripts/*.txt")
	if len(files) < 12 {
		t.Fatalf("found %d transcripts, want a dozen", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { replay(t, file) })
	}
}

func replay(t *testing.T, file string) {
	tr, err := enginetest.Read(file)
	if err != nil {
		t.Fatal(err)
	}
	flow := loadFlow(t, tr.Flow)
	st := engine.State{Language: tr.Lang}
	var pending []string // replies not yet matched
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	for _, l := range tr.Lines {
		if l.Kind != enginetest.Reply && len(pending) > 0 {
			t.Fatalf("line %d: unexpected replies %q", l.N, pending)
		}
		switch l.Kind {
		case enginetest.Say, enginetest.Timeout:
			in := engine.Input{Kind: engine.InputMessage, Text: l.Text, Now: now}
			if l.Kind == enginetest.Timeout {
				in = engine.Input{Kind: engine.InputKind(l.Text), Now: now}
			}
			for {
				var actions []engine.Action
				st, actions, err = engine.Step(flow, st, in)
				if err != nil {
					t.Fatalf("line %d: %v", l.N, err)
				}
				for _, a := range actions {
					if a.Kind == engine.ActionSend {
						pending = append(pending, a.Text)
					}
				}
				if st.Pending == nil {
					break
				}
				res := enginetest.AI(*st.Pending) // the AI layer answers
				in = engine.Input{Kind: engine.InputAI, AI: &res, Now: now}
			}
		case enginetest.Reply:
			if len(pending) == 0 || pending[0] != l.Text {
				t.Fatalf("line %d: reply %q, want %q", l.N, first(pending), l.Text)
			}
			pending = pending[1:]
		case enginetest.Assert:
			if got := stateValue(st, l.Key); got != l.Value {
				t.Fatalf("line %d: %s = %q, want %q", l.N, l.Key, got, l.Value)
			}
		}
	}
	if len(pending) > 0 {
		t.Fatalf("unexpected replies at the end: %q", pending)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return "(nothing)"
	}
	return s[0]
}

func stateValue(st engine.State, key string) string {
	switch {
	case key == "node":
		return st.Node
	case key == "status":
		return string(st.Status)
	case key == "opted_out":
		return fmt.Sprint(st.OptedOut)
	case strings.HasPrefix(key, "var "):
		return st.Vars[strings.TrimPrefix(key, "var ")]
	}
	return "unknown key " + key
}
