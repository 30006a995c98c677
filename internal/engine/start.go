package engine

import (
	"maps"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/models"
)

// MaxStartVars caps the variables a conversation may be started with.
const MaxStartVars = 32

// Begin starts flow f for a contact who did not write first (staff, the
// API or a broadcast start it), with the variables given
// (appointment_at, doctor, …), which its prompts and conditions read as
// they read answers. It runs from the flow's start until a node waits for
// the contact, as a conversation the contact began would, and returns the
// new state and the actions to carry out. Pure, like Step. EINVALID for a
// variable name or value the flow could not keep. now and zone are the
// input's time and the deployment's time zone (schedule nodes plan from
// them).
func Begin(f *Flow, language string, vars map[string]string, now time.Time, zone *time.Location) (State, []Action, error) {
	if len(vars) > MaxStartVars {
		return State{}, nil, models.Errorf(models.EINVALID, "A conversation may start with at most %d variables.", MaxStartVars)
	}
	for k, v := range vars {
		if !varName.MatchString(k) {
			return State{}, nil, models.Errorf(models.EINVALID, "%q is not a variable name (letters, digits and _).", k)
		}
		if utf8.RuneCountInString(v) > MaxInput {
			return State{}, nil, models.Errorf(models.EINVALID, "Variable %s is longer than %d characters.", k, MaxInput)
		}
	}
	r := &run{f: f, lang: language, now: now, loc: zone}
	if r.lang == "" {
		r.lang = f.lang()
	}
	r.st = State{FlowID: f.ID, FlowVersion: f.Version, Language: language, Vars: maps.Clone(vars)}
	if r.st.Vars == nil {
		r.st.Vars = map[string]string{}
	}
	r.goTo(f.Start)
	return r.st, r.actions, nil
}
