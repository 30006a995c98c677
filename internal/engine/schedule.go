package engine

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/models"
)

// Schedule is a node that plans a message for later and goes straight
// on: "remind the day before the appointment".
//
//	remind:
//	  schedule:
//	    at: "{{appointment_at}} - 24h"   # a variable holding a time, or "now", ± a duration (h, m, s, d)
//	    send: {en: "See you tomorrow at {{appointment_at}}."}
//	    template: {name: appointment_reminder, language: en, params: ["{{appointment_at}}"]}
//	  next: confirm
//
// The message goes when its time comes, once, if the conversation has
// not ended or restarted and the contact has not opted out by then. On
// WhatsApp after the 24-hour window it goes as the template; without one
// the conversation is handed to a person with the reason. A time already
// past, or a variable that holds no time, plans nothing (a reminder late
// would say the wrong thing): the flow goes on.
type Schedule struct {
	At       string            `yaml:"at"`
	Send     Text              `yaml:"send"`
	Template *ScheduleTemplate `yaml:"template"`
}

// ScheduleTemplate is the approved WhatsApp template a scheduled message
// goes as outside the window; its parameters read the conversation's
// variables ({{1}}, {{2}}, … in order).
type ScheduleTemplate struct {
	Name     string   `yaml:"name"`
	Language string   `yaml:"language"`
	Params   []string `yaml:"params"`
}

// Scheduled is a message a schedule node planned (ActionSchedule).
type Scheduled struct {
	At       time.Time
	Text     string
	Template *models.TemplateRef // nil: none named
}

// atExpr is a schedule's time: a variable or now, then an optional offset.
var atExpr = regexp.MustCompile(`^\s*(?:\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}|(now))\s*(?:([+-])\s*(\d+)\s*([dhms]))?\s*$`)

// timeLayouts are how a variable may write a time: RFC 3339 carries its
// own offset; the others are read in the conversation's time zone.
var timeLayouts = []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02"}

// ParseTime reads a time as a variable (appointment_at) holds it, in loc
// unless it names its own offset.
func ParseTime(s string, loc *time.Location) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// when is the time a schedule's at names for the conversation now, and
// whether it names one.
func (r *run) when(at string) (time.Time, bool) {
	m := atExpr.FindStringSubmatch(at)
	if m == nil {
		return time.Time{}, false
	}
	base := r.now
	if m[1] != "" {
		t, ok := ParseTime(r.st.Vars[m[1]], r.zone())
		if !ok {
			return time.Time{}, false
		}
		base = t
	}
	if m[3] != "" {
		n, _ := strconv.Atoi(m[4])
		unit := map[string]time.Duration{"d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second}[m[5]]
		d := time.Duration(n) * unit
		if m[3] == "-" {
			d = -d
		}
		base = base.Add(d)
	}
	return base, true
}

// zone is where the conversation's times are read: the flow's timezone
// when it names one, else the deployment's (PARLEY_TIME_ZONE), else UTC.
func (r *run) zone() *time.Location {
	switch {
	case r.f.Timezone != "":
		return r.f.tz()
	case r.loc != nil:
		return r.loc
	}
	return time.UTC
}

// schedule plans n's message when its time is still ahead.
func (r *run) schedule(s *Schedule) {
	if r.now.IsZero() {
		return // a staff command (no input, no time): nothing is planned
	}
	at, ok := r.when(s.At)
	if !ok || !at.After(r.now) {
		return
	}
	planned := &Scheduled{At: at, Text: r.interpolate(s.Send.In(r.lang, r.f.lang()))}
	if t := s.Template; t != nil {
		ref := &models.TemplateRef{Name: t.Name, Language: t.Language, Params: map[string]string{}}
		for i, p := range t.Params {
			ref.Params[strconv.Itoa(i+1)] = r.interpolate(p)
		}
		planned.Template = ref
	}
	r.emit(Action{Kind: ActionSchedule, Scheduled: planned})
}

// validateSchedule checks a schedule node's time, text and template.
func validateSchedule(n *Node, fail func(string, string, ...any) error) error {
	s := n.Schedule
	if atExpr.FindStringSubmatch(s.At) == nil {
		return fail(n.ID, "schedule at %q is not {{variable}} or now, with an optional ± offset like - 24h or + 2d", s.At)
	}
	if len(s.Send) == 0 {
		return fail(n.ID, "schedule has no send text")
	}
	if t := s.Template; t != nil && (t.Name == "" || t.Language == "") {
		return fail(n.ID, "schedule template needs a name and a language")
	}
	return nil
}

// String shows a planned message without its text (which is personal).
func (s *Scheduled) String() string {
	return fmt.Sprintf("scheduled at %s", s.At.UTC().Format(time.RFC3339))
}
