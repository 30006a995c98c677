package engine_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/engine/enginetest"
)

// atPending walks the triage flow to the point where it waits on the AI
// layer to classify text.
func atPending(t *testing.T, text string) (*engine.Flow, engine.State) {
	t.Helper()
	f := loadFlow(t, "triage.yaml")
	st, _, err := engine.Step(f, engine.State{}, engine.Input{Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	st, actions, err := engine.Step(f, st, engine.Input{Text: text})
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending == nil || len(actions) != 1 || actions[0].Kind != engine.ActionAI {
		t.Fatalf("state %+v actions %+v: want one ai action and a pending request", st, actions)
	}
	if got := actions[0].AI; got.Task != engine.AIClassifyTask || got.Text != text || got.Node != "ask_need" || !slices.Equal(got.Intents, []string{"appointment", "emergency", "prescription"}) {
		t.Fatalf("request %+v", got)
	}
	return f, st
}

func TestStep_AMessageWhileTheAIWorksIsHeldBack(t *testing.T) {
	f, st := atPending(t, "I need an appointment")
	next, actions, err := engine.Step(f, st, engine.Input{Text: "STOP"})
	if !errors.Is(err, engine.ErrAwaitingAI) || actions != nil || next.Pending == nil || next.OptedOut {
		t.Fatalf("Step = %+v, %v, %v; want the message refused with ErrAwaitingAI and nothing changed", next, actions, err)
	}
	// A timeout meanwhile is stale and changes nothing.
	next, actions, err = engine.Step(f, st, engine.Input{Kind: engine.InputExpire})
	if err != nil || len(actions) != 0 || next.Pending == nil || next.Status != engine.StatusActive {
		t.Fatalf("expire while pending = %+v, %v, %v", next, actions, err)
	}
}

func TestStep_AIResultRoutesByIntentAndConfidence(t *testing.T) {
	tests := []struct {
		name   string
		result engine.AIResult
		node   string
		need   string
	}{
		{"confident", engine.AIResult{Intent: "emergency", Confidence: 0.95}, "urgent", "emergency"},
		{"at the threshold", engine.AIResult{Intent: "appointment", Confidence: engine.DefaultMinConfidence}, "ask_details", "appointment"},
		{"unsure", engine.AIResult{Intent: "emergency", Confidence: 0.59}, "clarify", ""},
		{"not an intent of the node", engine.AIResult{Intent: "billing", Confidence: 0.99}, "clarify", ""},
		{"provider failed", engine.AIResult{Err: "timeout", Intent: "emergency", Confidence: 1}, "clarify", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, st := atPending(t, "something")
			next, _, err := engine.Step(f, st, engine.Input{Kind: engine.InputAI, AI: &tt.result})
			if err != nil {
				t.Fatal(err)
			}
			if next.Node != tt.node || next.Vars["need"] != tt.need || next.Pending != nil {
				t.Fatalf("after %+v: node %q need %q pending %v; want node %q need %q", tt.result, next.Node, next.Vars["need"], next.Pending, tt.node, tt.need)
			}
		})
	}
}

func TestStep_AIResultWithNothingPendingIsIgnored(t *testing.T) {
	f := loadFlow(t, "triage.yaml")
	st, _, _ := engine.Step(f, engine.State{}, engine.Input{Text: "hi"})
	next, actions, err := engine.Step(f, st, engine.Input{Kind: engine.InputAI, AI: &engine.AIResult{Intent: "emergency", Confidence: 1}})
	if err != nil || len(actions) != 0 || next.Node != st.Node {
		t.Fatalf("stale result = %+v, %v, %v; want nothing to change", next, actions, err)
	}
}

func TestStep_ExtractionHeldAgainstTheSchema(t *testing.T) {
	f := loadFlow(t, "triage.yaml")
	at := engine.State{FlowID: "triage", Node: "ask_details", Status: engine.StatusActive, Vars: map[string]string{}}
	tests := []struct {
		name   string
		fields map[string]any
		node   string
	}{
		{"all fields", map[string]any{"name": "Ravi", "age": 41.0, "day": "monday"}, "booked"},
		{"optional left out", map[string]any{"name": "Ravi", "age": 41.0}, "booked"},
		{"number as text", map[string]any{"name": "Ravi", "age": "41"}, "booked"},
		{"required missing", map[string]any{"name": "Ravi"}, "handoff"},
		{"not an integer", map[string]any{"name": "Ravi", "age": 41.5}, "handoff"},
		{"outside the enum", map[string]any{"name": "Ravi", "age": 41.0, "day": "sunday"}, "handoff"},
		{"wrong type", map[string]any{"name": 7.0, "age": 41.0}, "handoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, actions, err := engine.Step(f, at, engine.Input{Text: "my details"})
			if err != nil || st.Pending == nil || st.Pending.Task != engine.AIExtractTask || actions[0].AI.Schema == nil {
				t.Fatalf("answer to ask_details = %+v, %+v, %v", st, actions, err)
			}
			next, _, err := engine.Step(f, st, engine.Input{Kind: engine.InputAI, AI: &engine.AIResult{Fields: tt.fields, Confidence: 0.9}})
			if err != nil || next.Node != tt.node {
				t.Fatalf("fields %v: node %q, err %v; want %q", tt.fields, next.Node, err, tt.node)
			}
			if tt.node == "booked" && (next.Vars["patient_name"] != "Ravi" || next.Vars["patient_age"] != "41") {
				t.Fatalf("vars %v", next.Vars)
			}
		})
	}
}

func TestStep_ExtractionBelowItsThresholdFallsBack(t *testing.T) {
	f := loadFlow(t, "triage.yaml")
	st := engine.State{FlowID: "triage", Node: "ask_details", Status: engine.StatusActive, Vars: map[string]string{}}
	st, _, _ = engine.Step(f, st, engine.Input{Text: "Ravi 41"})
	next, _, _ := engine.Step(f, st, engine.Input{Kind: engine.InputAI, AI: &engine.AIResult{Fields: map[string]any{"name": "Ravi", "age": 41.0}, Confidence: 0.69}})
	if next.Node != "handoff" || next.Vars["patient_name"] != "" {
		t.Fatalf("node %q vars %v: a result under min_confidence 0.7 must fall back and save nothing", next.Node, next.Vars)
	}
}

func TestOverride_WhileTheAIWorksDropsTheRequest(t *testing.T) {
	f, st := atPending(t, "appointment")
	moved, _, err := engine.ApplyOverride(f, st, engine.Override{Kind: engine.OverrideMove, Node: "clarify"})
	if err != nil || moved.Pending != nil || moved.Node != "clarify" {
		t.Fatalf("move = %+v, %v: the pending request must go", moved, err)
	}
	paused, _, err := engine.ApplyOverride(f, st, engine.Override{Kind: engine.OverridePause})
	if err != nil || paused.Pending != nil || paused.Status != engine.StatusPaused {
		t.Fatalf("pause = %+v, %v", paused, err)
	}
	resumed, _, err := engine.ApplyOverride(f, paused, engine.Override{Kind: engine.OverrideResume})
	if err != nil || resumed.Status != engine.StatusActive || resumed.Node != "ask_need" || resumed.Pending != nil {
		t.Fatalf("resume = %+v, %v; want it waiting for the contact's answer again", resumed, err)
	}
}

func TestSession_AIOffTakesTheFallback(t *testing.T) {
	s := &engine.Session{Flow: loadFlow(t, "triage.yaml")}
	s.Say("hi")
	got := s.Say("I need an appointment")
	if len(got) != 1 || got[0] != "Sorry, I did not follow. 1. Appointment 2. Emergency 3. Something else" {
		t.Fatalf("replies %q: with the AI layer off the fallback must run", got)
	}
	s = &engine.Session{Flow: loadFlow(t, "triage.yaml"), AI: enginetest.AI}
	s.Say("hi")
	if got := s.Say("I need an appointment"); len(got) != 1 || got[0] != "Please send your name, age and the day you prefer." {
		t.Fatalf("replies %q with the AI layer on", got)
	}
}

func TestStep_AVeryLongMessageIsCutWithANote(t *testing.T) {
	f := loadFlow(t, "triage.yaml")
	long := "medicine: " + strings.Repeat("ब", engine.MaxInput+100)
	isNote := func(a engine.Action) bool {
		return a.Kind == engine.ActionSend && strings.Contains(a.Text, "read only its first 4096 characters")
	}
	// An AI node reads the first MaxInput characters; the note goes first.
	next, actions, _ := engine.Step(f, engine.State{FlowID: "triage", Node: "ask_details", Status: engine.StatusActive}, engine.Input{Text: long})
	if next.Pending == nil || utf8.RuneCountInString(next.Pending.Text) != engine.MaxInput {
		t.Fatalf("pending %+v: want the AI layer to read the first %d characters", next.Pending, engine.MaxInput)
	}
	if len(actions) != 2 || !isNote(actions[0]) || actions[1].Kind != engine.ActionAI {
		t.Fatalf("actions %+v: want the note, then the AI request", actions)
	}
	// A question allowing 200 characters refuses it: note, then the prompt.
	_, actions, _ = engine.Step(f, engine.State{FlowID: "triage", Node: "ask_medicine", Status: engine.StatusActive}, engine.Input{Text: long})
	if len(actions) != 2 || !isNote(actions[0]) || actions[1].Text != "Which medicine, and what dose?" {
		t.Fatalf("actions %+v: want the note, then the question again", actions)
	}
	// Nothing at all goes to a contact who opted out.
	_, actions, _ = engine.Step(f, engine.State{FlowID: "triage", Node: "ask_medicine", Status: engine.StatusActive, OptedOut: true}, engine.Input{Text: long})
	if len(actions) != 0 {
		t.Fatalf("actions %+v for an opted-out contact", actions)
	}
}

// Voice notes and photos as the engine gets them: an unheard note at a
// question asks for words and keeps waiting (not a wrong answer); at an AI
// node it takes the fallback; a heard one answers as text, and the
// conversation follows the language spoken when the flow speaks it; a
// photo at an extraction asking for one is read off the photo.
func TestStep_VoiceNotesAndPhotos(t *testing.T) {
	clinic := loadFlow(t, "clinic.yaml")
	st, _, err := engine.Step(clinic, engine.State{}, engine.Input{Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	asked := st.Node
	next, actions, _ := engine.Step(clinic, st, engine.Input{Media: true, Unheard: true})
	if r := engine.Replies(actions); len(r) != 1 || r[0] != "Sorry, I couldn't listen to that. Could you type it?" || next.Node != asked || next.Retries != 0 {
		t.Fatalf("an unheard note at a question: %q, node %s, retries %d", r, next.Node, next.Retries)
	}
	next, actions, _ = engine.Step(clinic, engine.State{Node: asked, Status: engine.StatusActive, Language: "hi", FlowID: st.FlowID, FlowVersion: st.FlowVersion},
		engine.Input{Media: true, Unheard: true})
	if r := engine.Replies(actions); len(r) != 1 || !strings.HasPrefix(r[0], "माफ़ कीजिए") {
		t.Fatalf("in Hindi: %q", r)
	}
	next, _, _ = engine.Step(clinic, st, engine.Input{Text: "Asha", Media: true, Language: "hi"})
	if next.Node == asked || next.Language != "hi" {
		t.Fatalf("a heard note in Hindi: node %s, language %q", next.Node, next.Language)
	}
	if next, _, _ = engine.Step(clinic, st, engine.Input{Text: "Asha", Media: true, Language: "sw"}); next.Language != "" {
		t.Fatalf("followed a language the flow does not speak: %q", next.Language)
	}

	triage := loadFlow(t, "triage.yaml")
	st, _, _ = engine.Step(triage, engine.State{}, engine.Input{Text: "hi"})
	next, actions, _ = engine.Step(triage, st, engine.Input{Media: true, Unheard: true})
	if next.Node != "clarify" || next.Pending != nil {
		t.Fatalf("an unheard note at an AI node: node %s, pending %v, %q", next.Node, next.Pending, engine.Replies(actions))
	}
	// At the extraction asking for details, a photo is read, with its caption.
	atDetails := engine.State{FlowID: st.FlowID, FlowVersion: st.FlowVersion, Node: "ask_details", Status: engine.StatusActive, Vars: map[string]string{}}
	next, actions, _ = engine.Step(triage, atDetails, engine.Input{Text: "my card", Media: true, ImageID: 42})
	if next.Pending == nil || next.Pending.MediaID != 42 || next.Pending.Task != engine.AIExtractTask || next.Pending.Text != "my card" || len(actions) != 1 {
		t.Fatalf("a photo at an extraction: %+v %+v", next.Pending, actions)
	}
	// A photo where a classification asks for words is no photo to read.
	next, _, _ = engine.Step(triage, st, engine.Input{Media: true, ImageID: 42})
	if next.Pending != nil && next.Pending.MediaID != 0 {
		t.Fatalf("a classification was asked to read a photo: %+v", next.Pending)
	}
}

// A media question with a schema reads its fields off the photo sent:
// saved (prefixed) and on to next when they fit; to the fallback when
// they do not, or when no photo came.
func TestStep_AMediaQuestionReadsItsPhoto(t *testing.T) {
	const flow = `
id: card
languages: [en]
start: ask_card
nodes:
  ask_card:
    ask:
      prompt: {en: "Send a photo of your appointment card."}
      type: media
      schema: {type: object, properties: {date: {type: string}, doctor: {type: string}}, required: [date]}
      save: appt
      next: booked
      fallback: by_hand
  booked:
    end: {send: {en: "Booked on {{appt_date}} with {{appt_doctor}}."}}
  by_hand:
    handoff: {send: {en: "A person will read your card."}}
`
	f, err := engine.Parse("card.yaml", []byte(flow))
	if err != nil {
		t.Fatal(err)
	}
	st, _, _ := engine.Step(f, engine.State{}, engine.Input{Text: "hi"})
	asked, _, _ := engine.Step(f, st, engine.Input{Text: "my card", Media: true, ImageID: 7})
	if asked.Pending == nil || asked.Pending.MediaID != 7 || asked.Pending.Node != "ask_card" {
		t.Fatalf("a photo: %+v", asked.Pending)
	}
	done, actions, _ := engine.Step(f, asked, engine.Input{Kind: engine.InputAI, AI: &engine.AIResult{Fields: map[string]any{"date": "2026-12-14", "doctor": "Dr. R. Iyer"}, Confidence: 0.9}})
	if r := engine.Replies(actions); len(r) != 1 || r[0] != "Booked on 2026-12-14 with Dr. R. Iyer." || done.Status != engine.StatusEnded {
		t.Fatalf("read: %q %+v", r, done)
	}
	for label, res := range map[string]engine.AIResult{"unsure": {Fields: map[string]any{"date": "x"}, Confidence: 0.2},
		"the date missing": {Fields: map[string]any{"doctor": "x"}, Confidence: 0.9}, "off": {Err: "off"}} {
		next, _, _ := engine.Step(f, asked, engine.Input{Kind: engine.InputAI, AI: &res})
		if next.Node != "by_hand" {
			t.Errorf("%s: at %s, want the fallback", label, next.Node)
		}
	}
	if next, _, _ := engine.Step(f, st, engine.Input{Media: true, Unheard: true}); next.Node != "by_hand" || next.Pending != nil {
		t.Errorf("a voice note at a photo question: at %s", next.Node)
	}
	for _, bad := range []string{
		strings.Replace(flow, "type: media", "type: text", 1),
		strings.Replace(flow, "required: [date]", "required: [time]", 1),
		strings.Replace(flow, "fallback: by_hand", "fallback: nowhere", 1),
	} {
		if _, err := engine.Parse("card.yaml", []byte(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}
