package pipeline_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
)

const intakeV1 = `id: intake
languages: [en]
start: ask_name
nodes:
  ask_name:
    ask: {prompt: {en: "What is your name?"}, type: text, save: name}
    next: ask_age
  ask_age:
    ask: {prompt: {en: "How old are you, {{name}}?"}, type: number, range: [0, 120], save: age}
    next: done
  done:
    end: {send: {en: "Thank you (v1)."}}
`

// v2 drops the age question: a conversation begun on v1 that went on with
// v2 would skip it (or fail on a node v2 does not have).
const intakeV2 = `id: intake
languages: [en]
start: ask_name
nodes:
  ask_name:
    ask: {prompt: {en: "Your name, please?"}, type: text, save: name}
    next: done
  done:
    end: {send: {en: "Thank you (v2)."}}
`

// A conversation finishes on the flow version it started on, across a
// restart and an edit of the flow's file; new conversations take the new
// version.
func TestFlows_AConversationFinishesOnItsPinnedVersionAfterARestartAndAnEdit(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "intake.yaml")
	load := func(src string) *engine.Library {
		t.Helper()
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		lib, err := engine.LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return lib
	}
	const asha, ravi = "+919876543210", "+919812345678"
	say := func(id, from, text string) {
		t.Helper()
		if _, err := e.pipelineIngest(t, sms(id, from, text)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the message to be answered", func() bool { return e.idle(t) })
	}

	// First life, on v1.
	first := e.pipeline(t, pipeline.NewFlows(load(intakeV1), e.db, e.crypto))
	if err := first.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	say("SM1", asha, "hi")
	if err := first.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	// The file changes; the process restarts with a library that only
	// knows v2.
	e.start(t, pipeline.NewFlows(load(intakeV2), e.db, e.crypto))
	say("SM2", asha, "Asha")
	say("SM3", asha, "34")
	say("SM4", ravi, "hi")
	say("SM5", ravi, "Ravi")

	want := []string{
		"What is your name?", // Asha, v1
		"How old are you, Asha?",
		"Thank you (v1).",
		"Your name, please?", // Ravi, a new conversation: v2
		"Thank you (v2).",
	}
	if got := e.bodies(); !slices.Equal(got, want) {
		t.Fatalf("replies %q\nwant %q", got, want)
	}
}
