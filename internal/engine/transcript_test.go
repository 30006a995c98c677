package engine_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/engine"
)

func loadFlow(t *testing.T, name string) *engine.Flow {
	t.Helper()
	path := filepath.Join("testdata", "flows", name)
	if _, err := os.Stat(path); err != nil {
		path = filepath.Join("flows", name) // a built-in flow
	}
	data, err := os.ReadFile(path)
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
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var (
		flow    *engine.Flow
		st      engine.State
		pending []string // replies not yet matched
		now     = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	)
	flush := func(line int) {
		if len(pending) > 0 {
			t.Fatalf("line %d: unexpected replies %q", line, pending)
		}
	}
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "flow: "):
			flow = loadFlow(t, strings.TrimPrefix(line, "flow: "))
		case strings.HasPrefix(line, "lang: "):
			st.Language = strings.TrimPrefix(line, "lang: ")
		case strings.HasPrefix(line, ">"), strings.HasPrefix(line, "!"):
			flush(n)
			in := engine.Input{Kind: engine.InputMessage, Text: strings.TrimPrefix(strings.TrimPrefix(line, ">"), " "), Now: now}
			if strings.HasPrefix(line, "!") {
				in = engine.Input{Kind: engine.InputKind(strings.TrimSpace(strings.TrimPrefix(line, "!"))), Now: now}
			}
			var actions []engine.Action
			st, actions, err = engine.Step(flow, st, in)
			if err != nil {
				t.Fatalf("line %d: %v", n, err)
			}
			for _, a := range actions {
				if a.Kind == engine.ActionSend {
					pending = append(pending, a.Text)
				}
			}
		case strings.HasPrefix(line, "< "):
			want := strings.TrimPrefix(line, "< ")
			if len(pending) == 0 || pending[0] != want {
				t.Fatalf("line %d: reply %q, want %q", n, first(pending), want)
			}
			pending = pending[1:]
		case strings.HasPrefix(line, "= "):
			flush(n)
			key, want, _ := strings.Cut(strings.TrimPrefix(line, "= "), ": ")
			if got := stateValue(st, key); got != want {
				t.Fatalf("line %d: %s = %q, want %q", n, key, got, want)
			}
		default:
			t.Fatalf("line %d: cannot read %q", n, line)
		}
	}
	flush(-1)
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
