package engine

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/models"
)

// OverrideKind names a staff command on a conversation.
type OverrideKind string

// Overrides staff can give.
const (
	OverrideEnd       OverrideKind = "end"        // end the conversation
	OverrideMove      OverrideKind = "move"       // go to Node of the pinned flow
	OverrideSetVar    OverrideKind = "set_var"    // set Var to Value
	OverrideClearVar  OverrideKind = "clear_var"  // remove Var
	OverrideStartFlow OverrideKind = "start_flow" // start the given flow afresh
	OverridePause     OverrideKind = "pause"      // the bot stays quiet; a person answers
	OverrideResume    OverrideKind = "resume"     // the bot answers again
)

// Override is one typed staff command.
type Override struct {
	Kind  OverrideKind `json:"kind"`
	Node  string       `json:"node,omitempty"`
	Var   string       `json:"var,omitempty"`
	Value string       `json:"value,omitempty"`
	Flow  string       `json:"flow,omitempty"`
	// Now and Region read a set_var's value as the question saving it
	// reads an answer ("tomorrow", a number without its country code):
	// the caller's clock and PARLEY_DEFAULT_REGION.
	Now    time.Time `json:"-"`
	Region string    `json:"-"`
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ApplyOverride validates o against the conversation's pinned flow f and
// returns the new state and the actions to carry out. For start_flow, f is
// the flow to start. It returns EINVALID for a command that does not fit.
func ApplyOverride(f *Flow, st State, o Override) (State, []Action, error) {
	r := &run{f: f, st: st.clone(), lang: st.Language}
	if r.lang == "" {
		r.lang = f.lang()
	}
	switch o.Kind {
	case OverrideEnd:
		r.emit(Action{Kind: ActionCancelWaits})
		r.end()
	case OverrideMove:
		if _, ok := f.Nodes[o.Node]; !ok {
			return st, nil, models.Errorf(models.EINVALID, "Flow %s has no node %q.", f.ID, o.Node)
		}
		r.emit(Action{Kind: ActionCancelWaits})
		r.goTo(o.Node)
		if len(r.missing) > 0 {
			// Staff chose the place; the flow would have gathered these on
			// its way there. Said blank, "your  request, ?" reaches the person.
			slices.Sort(r.missing)
			them := "it"
			if len(r.missing) > 1 {
				them = "them"
			}
			return st, nil, models.Errorf(models.EINVALID, "Moving to %s would leave {{%s}} blank in what the bot says: this conversation has no %s. Set %s first, or move elsewhere.",
				o.Node, strings.Join(r.missing, "}}, {{"), strings.Join(r.missing, ", "), them)
		}
	case OverrideSetVar:
		if !varName.MatchString(o.Var) {
			return st, nil, models.Errorf(models.EINVALID, "%q is not a variable name.", o.Var)
		}
		v, err := answerFor(f, o)
		if err != nil {
			return st, nil, err
		}
		r.st.Vars[o.Var] = v
	case OverrideClearVar:
		if !varName.MatchString(o.Var) {
			return st, nil, models.Errorf(models.EINVALID, "%q is not a variable name.", o.Var)
		}
		delete(r.st.Vars, o.Var)
	case OverrideStartFlow:
		r.emit(Action{Kind: ActionCancelWaits})
		r.restart()
	case OverridePause:
		if st.Status == StatusEnded || st.Status == StatusError || st.Node == "" {
			return st, nil, models.Errorf(models.ECONFLICT, "The conversation has ended; there is nothing to pause.")
		}
		r.emit(Action{Kind: ActionCancelWaits})
		r.st.Status, r.st.Pending = StatusPaused, nil // a pending AI result is dropped
	case OverrideResume:
		if st.Status != StatusPaused && st.Status != StatusHandoff {
			return st, nil, models.Errorf(models.ECONFLICT, "The bot is not paused.")
		}
		r.st.Error = "" // whatever stopped the bot, a person has seen to it
		n := f.Nodes[st.Node]
		switch {
		case ResumeEnds(f, st.Node):
			r.end() // paused at a hand-off: the next message starts afresh
		case n.Ask != nil || aiPrompt(n) != nil:
			r.st.Status = StatusActive // waits for the answer to the question it asked
		default:
			r.st.Status = StatusActive
			r.enterAI(n) // paused while the AI layer worked: ask it again
		}
	default:
		return st, nil, models.Errorf(models.EINVALID, "Unknown override %q.", o.Kind)
	}
	return r.st, r.actions, nil
}

// ResumeEnds reports whether resuming a conversation paused or handed off
// at node ends it: only a question or an AI step has something to go back
// to; at a hand-off (or any other node) the next message starts afresh.
func ResumeEnds(f *Flow, node string) bool {
	n := f.Nodes[node]
	return n == nil || (n.Ask == nil && n.AIClassify == nil && n.AIExtract == nil)
}

// answerFor is o.Value as the flow keeps o.Var: where a question saves it (a
// number in its range, one of its choices, yes or no, a date, a phone
// number, an email address), it must be an answer that question takes,
// kept as the question keeps it ("Yes" as yes, a choice's label as its
// value), or branches on it go the wrong way. A variable no question saves,
// or one a text or media question saves, takes any value. Dates are read in
// the flow's time zone from o.Now, numbers in o.Region. The refusal names
// the variable and the question, never the value.
func answerFor(f *Flow, o Override) (string, error) {
	var asked []string
	for _, id := range slices.Sorted(maps.Keys(f.Nodes)) {
		a := f.Nodes[id].Ask
		if a == nil || a.Save != o.Var {
			continue
		}
		if a.Type == "" || a.Type == "text" || a.Type == "media" {
			return o.Value, nil // a question that takes words takes these
		}
		if v, _, ok := parseAnswer(a, Input{Text: o.Value, Now: o.Now, Region: o.Region}, f.lang(), f.tz()); ok {
			return v, nil
		}
		asked = append(asked, id+" ("+takes(a)+")")
	}
	if len(asked) == 0 {
		return o.Value, nil
	}
	return "", models.Errorf(models.EINVALID, "%s is the answer to %s, and the value given is not one it takes.", o.Var, strings.Join(asked, ", "))
}

// takes says what a question takes, for a refusal: its type, and a
// number's range.
func takes(a *Ask) string {
	if a.Type == "number" && len(a.Range) == 2 {
		return fmt.Sprintf("a number from %g to %g", a.Range[0], a.Range[1])
	}
	return a.Type
}
