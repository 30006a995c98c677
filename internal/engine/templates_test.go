package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/models"
)

const reminderFlow = `
id: reminders
languages: [en, hi]
start: ask_time
nodes:
  ask_time:
    ask:
      prompt: {en: "When suits you, {{name}}?"}
      template: {name: ask_time, params: {"1": "{{name}}"}}
      timeout:
        remind_after: 30h
        remind: {en: "Still there, {{name}}?"}
        remind_template: {name: appointment_reminder, language: en_US, params: {"1": "{{name}}", "2": "{{appointment_at}}"}}
        expire_after: 48h
        then: goodbye
    next: goodbye
  goodbye:
    end:
      send: {en: "Goodbye, {{name}}."}
      template: {name: conversation_closed, params: {"1": "{{name}}"}}
`

// Each send carries the template to use if the window is closed, its
// parameters filled from the variables and its language the
// conversation's unless it names one.
func TestStep_SendsCarryTheirTemplate(t *testing.T) {
	f, err := engine.Parse("reminders.yaml", []byte(reminderFlow))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	st := engine.State{FlowID: "reminders", FlowVersion: f.Version, Language: "hi", Vars: map[string]string{"name": "Asha", "appointment_at": "10:00"}}
	st, acts, err := engine.Step(f, st, engine.Input{Kind: engine.InputMessage, Text: "hi", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	st.Vars = map[string]string{"name": "Asha", "appointment_at": "10:00"} // a restart clears them; as a started conversation sets them
	if a := firstSend(acts); a == nil || a.Template == nil || a.Template.Name != "ask_time" || a.Template.Language != "hi" {
		t.Fatalf("prompt = %+v", a)
	}
	_, acts, _ = engine.Step(f, st, engine.Input{Kind: engine.InputRemind, Now: now})
	if a := firstSend(acts); a == nil || a.Text != "Still there, Asha?" || a.Template == nil || a.Template.Name != "appointment_reminder" ||
		a.Template.Language != "en_US" || a.Template.Params["1"] != "Asha" || a.Template.Params["2"] != "10:00" {
		t.Fatalf("reminder = %+v (%+v)", a, a.Template)
	}
	_, acts, _ = engine.Step(f, st, engine.Input{Kind: engine.InputExpire, Now: now})
	if a := firstSend(acts); a == nil || a.Template == nil || a.Template.Name != "conversation_closed" || a.Template.Params["1"] != "Asha" {
		t.Fatalf("expiry goodbye = %+v", a)
	}
	if got := len(f.Templates()); got != 3 {
		t.Fatalf("Templates() lists %d, want 3", got)
	}
}

func firstSend(acts []engine.Action) *engine.Action {
	for i := range acts {
		if acts[i].Kind == engine.ActionSend {
			return &acts[i]
		}
	}
	return nil
}

func TestParse_RefusesBadTemplates(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"no name", "id: x\nlanguages: [en]\nstart: a\nnodes:\n  a: {send: hi, template: {params: {'1': x}}, next: b}\n  b: {end: {}}", `node "a": template needs a name`},
		{"empty parameter", "id: x\nlanguages: [en]\nstart: a\nnodes:\n  a: {end: {send: bye, template: {name: t, params: {'1': ''}}}}", `end template parameter "1" has no value`},
		{"no language", "id: x\nstart: a\nnodes:\n  a: {end: {send: bye, template: {name: t}}}", "needs a language"},
		{"template on a branch", "id: x\nlanguages: [en]\nstart: a\nnodes:\n  a: {branch: [{else: b}], template: {name: t}}\n  b: {end: {}}", "template goes on a send node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := engine.Parse("bad.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want %q", err, tc.want)
			}
		})
	}
}

// A schedule node's template is checked against the registry as the
// others are: missing, or given parameters other than the template's.
func TestCheckTemplates_ScheduleTemplate(t *testing.T) {
	const flow = `id: visit
languages: [en]
start: remind
nodes:
  remind:
    schedule:
      at: "{{appointment_at}} - 24h"
      send: {en: "Reminder: {{doctor}} at {{appointment_at}}."}
      template: {name: appointment_reminder, language: en, params: ["{{doctor}}"]}
    next: bye
  bye:
    end: {send: {en: "Bye."}}
`
	f, err := engine.Parse("visit.yaml", []byte(flow))
	if err != nil {
		t.Fatal(err)
	}
	reminder := &models.Template{Name: "appointment_reminder", Language: "en", Status: models.TemplateApproved, Body: "Reminder: {{1}} at {{2}}."}
	registry := map[string][]*models.Template{}
	lookup := func(name, lang string) []*models.Template { return registry[name+"/"+lang] }
	problems, _ := engine.CheckTemplates(f, true, lookup)
	if len(problems) != 1 || problems[0].Node != "remind" || !strings.Contains(problems[0].Problem, "schedule template") || !strings.Contains(problems[0].Problem, "not in the template registry") {
		t.Fatalf("missing: %v", problems)
	}
	registry["appointment_reminder/en"] = []*models.Template{reminder}
	problems, _ = engine.CheckTemplates(f, true, lookup)
	if len(problems) != 1 || !strings.Contains(problems[0].Problem, "{{2}}") {
		t.Fatalf("a parameter short: %v", problems)
	}
	f.Nodes["remind"].Schedule.Template.Params = []string{"{{doctor}}", "{{appointment_at}}"}
	if problems, _ = engine.CheckTemplates(f, true, lookup); len(problems) != 0 {
		t.Fatalf("filled: %v", problems)
	}
}
