package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/models"
)

func TestStatuses_AreTheConversationStatusesOfModels(t *testing.T) {
	for st, m := range map[engine.Status]models.ConversationStatus{
		engine.StatusActive: models.ConversationActive, engine.StatusHandoff: models.ConversationHandoff,
		engine.StatusPaused: models.ConversationPaused, engine.StatusEnded: models.ConversationEnded, engine.StatusError: models.ConversationError,
	} {
		if string(st) != string(m) {
			t.Errorf("engine %q != models %q", st, m)
		}
	}
}

func TestApplyOverride(t *testing.T) {
	f := loadFlow(t, "clinic.yaml")
	atAge := engine.State{FlowID: "clinic", FlowVersion: f.Version, Node: "ask_age", Status: engine.StatusActive, Vars: map[string]string{"name": "Asha"}}
	withNeed := atAge
	withNeed.Vars = map[string]string{"name": "Asha", "need": "appointment"}
	tests := []struct {
		name      string
		st        engine.State
		o         engine.Override
		wantNode  string
		wantState engine.Status
		wantSend  string
		wantCode  string
	}{
		{"end", atAge, engine.Override{Kind: engine.OverrideEnd}, "ask_age", engine.StatusEnded, "", ""},
		{"move to a question asks it", atAge, engine.Override{Kind: engine.OverrideMove, Node: "ask_need"}, "ask_need", engine.StatusActive, "What do you need? 1. Appointment 2. Prescription 3. Something else", ""},
		{"move to a node that is not there", atAge, engine.Override{Kind: engine.OverrideMove, Node: "nowhere"}, "", "", "", models.EINVALID},
		{"move to a question naming a variable the conversation lacks", atAge, engine.Override{Kind: engine.OverrideMove, Node: "ask_confirm"}, "", "", "", models.EINVALID},
		{"move to a question whose variables are there", withNeed, engine.Override{Kind: engine.OverrideMove, Node: "ask_confirm"}, "ask_confirm", engine.StatusActive, "Shall I go ahead with your appointment request, Asha? (yes/no)", ""},
		{"set a variable", atAge, engine.Override{Kind: engine.OverrideSetVar, Var: "age", Value: "40"}, "ask_age", engine.StatusActive, "", ""},
		{"bad variable name", atAge, engine.Override{Kind: engine.OverrideSetVar, Var: "two words"}, "", "", "", models.EINVALID},
		{"pause", atAge, engine.Override{Kind: engine.OverridePause}, "ask_age", engine.StatusPaused, "", ""},
		{"resume when not paused", atAge, engine.Override{Kind: engine.OverrideResume}, "", "", "", models.ECONFLICT},
		{"start the flow afresh", atAge, engine.Override{Kind: engine.OverrideStartFlow, Flow: "clinic"}, "ask_name", engine.StatusActive, "Hi! I'm the clinic assistant.", ""},
		{"unknown", atAge, engine.Override{Kind: "explode"}, "", "", "", models.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, actions, err := engine.ApplyOverride(f, tt.st, tt.o)
			if tt.wantCode != "" {
				if models.ErrorCode(err) != tt.wantCode {
					t.Fatalf("error %v, want code %s", err, tt.wantCode)
				}
				return
			}
			if err != nil || next.Node != tt.wantNode || next.Status != tt.wantState {
				t.Fatalf("state %s/%s err %v, want %s/%s", next.Node, next.Status, err, tt.wantNode, tt.wantState)
			}
			sent := ""
			for _, a := range actions {
				if a.Kind == engine.ActionSend && sent == "" {
					sent = a.Text
				}
			}
			if sent != tt.wantSend {
				t.Fatalf("first message %q, want %q", sent, tt.wantSend)
			}
		})
	}
	paused, _, _ := engine.ApplyOverride(f, atAge, engine.Override{Kind: engine.OverridePause})
	if _, actions, _ := engine.Step(f, paused, engine.Input{Text: "34"}); len(actions) != 0 {
		t.Fatalf("a paused bot answered: %+v", actions)
	}
	resumed, _, err := engine.ApplyOverride(f, paused, engine.Override{Kind: engine.OverrideResume})
	if err != nil || resumed.Status != engine.StatusActive {
		t.Fatalf("resume: %v %v", resumed.Status, err)
	}
	if after, _, _ := engine.Step(f, resumed, engine.Input{Text: "34"}); after.Vars["age"] != "34" {
		t.Fatal("the resumed bot did not take the answer")
	}
}

// A move refused for a variable it lacks names the variable, and not its
// value or anything of the person's.
func TestApplyOverride_MoveNamesTheMissingVariables(t *testing.T) {
	f := loadFlow(t, "clinic.yaml")
	st := engine.State{FlowID: "clinic", FlowVersion: f.Version, Node: "ask_age", Status: engine.StatusActive, Vars: map[string]string{}}
	_, _, err := engine.ApplyOverride(f, st, engine.Override{Kind: engine.OverrideMove, Node: "ask_confirm"})
	if msg := models.ErrorMessage(err); models.ErrorCode(err) != models.EINVALID || !strings.Contains(msg, "{{name}}, {{need}}") || !strings.Contains(msg, "no name, need") || !strings.Contains(msg, "Set them first") {
		t.Fatalf("refused with %v", err)
	}
}

// A variable a question saves takes only an answer that question takes, kept
// as the question keeps it; others take anything. Branches read what is set.
func TestApplyOverride_SetVarTakesWhatItsQuestionTakes(t *testing.T) {
	f := loadFlow(t, "clinic.yaml")
	st := engine.State{FlowID: "clinic", FlowVersion: f.Version, Node: "ask_age", Status: engine.StatusActive, Vars: map[string]string{}}
	for _, tt := range []struct{ name, value, want, code string }{
		{"age", "abc", "", models.EINVALID},
		{"age", "200", "", models.EINVALID}, // out of the question's range
		{"age", "40", "40", ""},
		{"confirmed", "Yes", "yes", ""},
		{"confirmed", "perhaps", "", models.EINVALID},
		{"need", "Prescription", "prescription", ""}, // a choice's label: its value
		{"need", "a haircut", "", models.EINVALID},
		{"name", "anything at all", "anything at all", ""}, // a text question's
		{"doctor", "Dr Rao", "Dr Rao", ""},                 // no question's
	} {
		next, _, err := engine.ApplyOverride(f, st, engine.Override{Kind: engine.OverrideSetVar, Var: tt.name, Value: tt.value})
		if models.ErrorCode(err) != tt.code || (tt.code == "" && next.Vars[tt.name] != tt.want) {
			t.Errorf("set %s to %q: %q, %v; want %q %s", tt.name, tt.value, next.Vars[tt.name], err, tt.want, tt.code)
		}
		if err != nil && strings.Contains(models.ErrorMessage(err), tt.value) {
			t.Errorf("the refusal repeats the value: %v", err)
		}
		if tt.name == "age" && err != nil && !strings.Contains(models.ErrorMessage(err), "a number from 0 to 120") {
			t.Errorf("the refusal does not say what the question takes: %v", err)
		}
	}
}

// A date or a phone number set by override is read as its question reads
// an answer: "tomorrow" in the flow's time zone from the caller's clock, a
// number without its country code in the deployment's region.
func TestApplyOverride_SetVarReadsDatesAndNumbersAsTheQuestion(t *testing.T) {
	f, err := engine.Parse("visit.yaml", []byte(`id: visit
languages: [en]
timezone: Asia/Kolkata
start: when
nodes:
  when:
    ask: {prompt: {en: "Which day?"}, type: date, save: day}
    next: number
  number:
    ask: {prompt: {en: "Your number?"}, type: phone, save: phone}
    next: bye
  bye:
    end: {send: {en: "Thanks."}}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := engine.State{FlowID: "visit", FlowVersion: f.Version, Node: "when", Status: engine.StatusActive, Vars: map[string]string{}}
	// 20:00 UTC on 7 December is 01:30 on the 8th in Kolkata.
	now := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	for _, tt := range []struct{ name, value, want string }{
		{"day", "tomorrow", "2026-12-09"},
		{"phone", "098765 43210", "+919876543210"},
	} {
		next, _, err := engine.ApplyOverride(f, st, engine.Override{Kind: engine.OverrideSetVar, Var: tt.name, Value: tt.value, Now: now, Region: "IN"})
		if err != nil || next.Vars[tt.name] != tt.want {
			t.Errorf("set %s to %q: %q, %v; want %q", tt.name, tt.value, next.Vars[tt.name], err, tt.want)
		}
	}
}
