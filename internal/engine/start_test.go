package engine_test

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/models"
)

// TestBegin: a started conversation runs from the flow's start with the
// variables it was given, which its prompts read, until it waits; a
// variable the flow could not keep is refused.
func TestBegin(t *testing.T) {
	f := loadFlow(t, "clinic.yaml")
	st, actions, err := engine.Begin(f, "", map[string]string{"name": "Asha"}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "ask_name" || st.Status != engine.StatusActive || st.Vars["name"] != "Asha" || st.FlowID != "clinic" || st.FlowVersion != f.Version {
		t.Fatalf("state %+v", st)
	}
	if got := engine.Replies(actions); len(got) != 2 || got[0] != "Hi! I'm the clinic assistant." {
		t.Fatalf("replies %q", got)
	}
	// The answer to its question goes on with the variables it started with.
	next, actions, err := engine.Step(f, st, engine.Input{Text: "Asha Rao"})
	if err != nil || next.Node != "ask_age" || engine.Replies(actions)[0] != "How old are you, Asha Rao?" {
		t.Fatalf("after the answer: %+v %q %v", next, engine.Replies(actions), err)
	}
	for _, vars := range []map[string]string{{"two words": "x"}, {"1st": "x"}} {
		if _, _, err := engine.Begin(f, "", vars, time.Now(), nil); models.ErrorCode(err) != models.EINVALID {
			t.Errorf("Begin with %q: %v, want EINVALID", vars, err)
		}
	}
}
