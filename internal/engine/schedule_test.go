package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/engine"
)

const scheduleFlow = `id: visit
languages: [en]
start: remind
nodes:
  remind:
    schedule:
      at: "{{appointment_at}} - 24h"
      send: {en: "Reminder: {{doctor}} sees you tomorrow at {{appointment_at}}."}
      template: {name: appointment_reminder, language: en, params: ["{{doctor}}", "{{appointment_at}}"]}
    next: hello
  hello:
    ask: {prompt: {en: "Will you come?"}, type: yes_no, save: coming}
    next: bye
  bye:
    end: {send: {en: "Thank you!"}}
`

// TestSchedule: a schedule node plans its message relative to a variable,
// read in the deployment's zone unless the flow names its own, and goes
// straight on; a time past or a variable holding no time plans nothing.
func TestSchedule(t *testing.T) {
	f, err := engine.Parse("visit.yaml", []byte(scheduleFlow))
	if err != nil {
		t.Fatal(err)
	}
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	vars := map[string]string{"appointment_at": "2026-12-09 10:00", "doctor": "Dr Rao"}
	st, actions, err := engine.Begin(f, "", vars, now, kolkata)
	if err != nil {
		t.Fatal(err)
	}
	var planned []*engine.Scheduled
	for _, a := range actions {
		if a.Kind == engine.ActionSchedule {
			planned = append(planned, a.Scheduled)
		}
	}
	want := time.Date(2026, 12, 8, 10, 0, 0, 0, kolkata)
	if len(planned) != 1 || !planned[0].At.Equal(want) || planned[0].Text != "Reminder: Dr Rao sees you tomorrow at 2026-12-09 10:00." {
		t.Fatalf("planned %+v, want one at %s", planned, want)
	}
	if p := planned[0].Template; p == nil || p.Name != "appointment_reminder" || p.Params["1"] != "Dr Rao" || p.Params["2"] != "2026-12-09 10:00" {
		t.Fatalf("template %+v", planned[0].Template)
	}
	if got := engine.Replies(actions); st.Node != "hello" || len(got) != 2 || got[1] != "Will you come?" ||
		got[0] != "(planned for 2026-12-08 10:00 IST: Reminder: Dr Rao sees you tomorrow at 2026-12-09 10:00.)" {
		t.Fatalf("went on to %q saying %q", st.Node, engine.Replies(actions))
	}
	// In UTC the same words name a time 5h30 later.
	_, actions, _ = engine.Begin(f, "", vars, now, nil)
	for _, a := range actions {
		if a.Kind == engine.ActionSchedule && !a.Scheduled.At.Equal(time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)) {
			t.Fatalf("in UTC: %s", a.Scheduled.At)
		}
	}
	for _, v := range []string{"2026-12-07 10:00", "next tuesday"} { // within the day: already past; not a time
		_, actions, _ := engine.Begin(f, "", map[string]string{"appointment_at": v}, now, kolkata)
		for _, a := range actions {
			if a.Kind == engine.ActionSchedule {
				t.Errorf("appointment_at %q planned %s", v, a.Scheduled.At)
			}
		}
	}
	// A flow's own timezone wins over the deployment's.
	g, err := engine.Parse("visit.yaml", []byte("timezone: America/New_York\n"+scheduleFlow))
	if err != nil {
		t.Fatal(err)
	}
	_, actions, _ = engine.Begin(g, "", vars, now, kolkata)
	ny, _ := time.LoadLocation("America/New_York")
	if actions[0].Kind != engine.ActionSchedule || !actions[0].Scheduled.At.Equal(time.Date(2026, 12, 8, 10, 0, 0, 0, ny)) {
		t.Fatalf("with the flow's zone: %+v", actions[0])
	}
	// A restart drops what the conversation planned.
	_, actions, _ = engine.Step(f, st, engine.Input{Text: "restart", Now: now})
	if len(actions) == 0 || actions[1].Kind != engine.ActionDropSchedules {
		t.Fatalf("restart: %+v", actions)
	}
	_, err = engine.Parse("bad.yaml", []byte(strings.Replace(scheduleFlow, `"{{appointment_at}} - 24h"`, `"tomorrow"`, 1)))
	if err == nil || !strings.Contains(err.Error(), "schedule at") {
		t.Fatalf("a bad at: %v", err)
	}
}

// TestSchedule_Outline: the flow's outline shows a schedule node, when
// and what, and leads on to its next.
func TestSchedule_Outline(t *testing.T) {
	f, err := engine.Parse("visit.yaml", []byte(scheduleFlow))
	if err != nil {
		t.Fatal(err)
	}
	o := f.Outline()
	if o[0].Kind != "schedule" || !strings.Contains(o[0].Text, "{{appointment_at}} - 24h") || len(o[0].Edges) != 1 || o[0].Edges[0].To != "hello" || len(o) != 3 {
		t.Fatalf("outline %+v", o)
	}
}
