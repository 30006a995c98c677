package engine

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"

	"github.com/parley-chat/parley/models"
)

// Status is where a conversation stands.
type Status string

// Conversation statuses, as the engine sees them.
const (
	StatusActive  Status = "active"  // at a node, usually waiting for an answer
	StatusHandoff Status = "handoff" // the flow handed the contact to a person
	StatusPaused  Status = "paused"  // staff paused the bot; a person answers
	StatusEnded   Status = "ended"
	StatusError   Status = "error" // stopped by the step limit; staff can see why
)

// State is a conversation's state between inputs. The engine never
// changes a State in place: Step returns a new one.
type State struct {
	FlowID      string
	FlowVersion string
	Node        string
	Status      Status
	Retries     int
	Language    string
	Vars        map[string]string
	OptedOut    bool
	Error       string
	// Pending is the request an AI node waits on; the conversation takes
	// no message until its result comes back as an InputAI.
	Pending *AIRequest
	// Entered lists the nodes this step (or override) entered, in order:
	// the caller keeps the path a conversation took (the flow map's
	// funnel). It is not carried into the next step.
	Entered []string
}

func (s State) clone() State {
	s.Entered = nil
	vars := make(map[string]string, len(s.Vars))
	for k, v := range s.Vars {
		vars[k] = v
	}
	s.Vars = vars
	return s
}

// InputKind tells what happened.
type InputKind string

// Inputs.
const (
	InputMessage InputKind = "message" // the contact wrote
	InputRemind  InputKind = "remind"  // an ask's reminder time came
	InputExpire  InputKind = "expire"  // an ask's wait ran out
	InputAI      InputKind = "ai"      // the AI layer answered the pending request
)

// Input is one event for a conversation.
type Input struct {
	Kind  InputKind
	Text  string
	Media bool // the message carried an attachment
	Now   time.Time
	// Region is where phone numbers typed without a country code are
	// read as from (PARLEY_DEFAULT_REGION); "" requires the code.
	Region string
	AI     *AIResult // for InputAI
	// Unheard says the message was a voice note Parley could not turn
	// into words (speech-to-text off, failing or unsure): an ask for
	// words answers it with the flow's unheard_note, an AI node takes its
	// fallback.
	Unheard bool
	// ImageID is the message's first photo, which an ai_extract node
	// asking for it reads (0: none).
	ImageID int64
	// Language is the language a voice note was spoken in (e.g. hi); a
	// conversation without one follows it when the flow speaks it.
	Language string
	// Zone is the deployment's time zone (PARLEY_TIME_ZONE), where a
	// schedule node reads times when its flow names none (nil: UTC).
	Zone *time.Location
}

// ActionKind is what the caller must do.
type ActionKind string

// Actions.
const (
	ActionSend          ActionKind = "send"           // send Text to the contact
	ActionOptOut        ActionKind = "opt_out"        // record the opt-out
	ActionOptIn         ActionKind = "opt_in"         // record the opt-in
	ActionHandoff       ActionKind = "handoff"        // queue the conversation for staff
	ActionScheduleWait  ActionKind = "schedule_wait"  // schedule Remind/Expire inputs after After
	ActionCancelWaits   ActionKind = "cancel_waits"   // drop scheduled waits
	ActionEnd           ActionKind = "end"            // the conversation ended
	ActionStepLimitStop ActionKind = "step_limit_hit" // stopped by the step limit
	ActionAI            ActionKind = "ai"             // ask the AI layer AI, answer with an InputAI
	ActionSchedule      ActionKind = "schedule"       // plan Scheduled for its time
	ActionDropSchedules ActionKind = "drop_schedules" // the conversation restarted: drop what it planned
)

// Action is one thing the caller carries out, in order.
type Action struct {
	Kind ActionKind
	Text string
	// Template, on a send, is the approved WhatsApp template (parameters
	// filled from the variables) to send instead of Text when WhatsApp's
	// 24-hour window is closed; nil when the flow names none.
	Template *models.TemplateRef
	Input    InputKind     // for schedule_wait: which input to deliver
	After    time.Duration // for schedule_wait
	AI       *AIRequest    // for ai
	// Scheduled is the message a schedule node planned (schedule).
	Scheduled *Scheduled
}

// MaxInput caps the characters of an answer the engine reads.
const MaxInput = 4096

// Step runs the flow for one input and returns the new state and the
// actions to carry out. It is pure: same flow, state and input, same result.
func Step(f *Flow, st State, in Input) (State, []Action, error) {
	r := &run{f: f, st: st.clone(), lang: st.Language, now: in.Now, loc: in.Zone}
	if r.lang == "" {
		r.lang = f.lang()
	}
	if r.st.Vars == nil {
		r.st.Vars = map[string]string{}
	}
	in.Text = strings.TrimSpace(in.Text)
	truncated := false
	if utf8.RuneCountInString(in.Text) > MaxInput {
		in.Text, truncated = string([]rune(in.Text)[:MaxInput]), true
	}
	if in.Kind == "" {
		in.Kind = InputMessage
	}
	if st.Pending != nil {
		switch in.Kind {
		case InputAI:
			r.resolveAI(in.AI)
		case InputMessage:
			return st, nil, ErrAwaitingAI
		}
		return r.st, r.actions, nil // a timeout is stale while the AI layer works
	}
	if in.Kind == InputAI {
		return r.st, nil, nil // a result for a request no longer pending
	}
	if in.Language != "" && r.st.Language == "" && slices.Contains(f.Languages, in.Language) {
		r.st.Language, r.lang = in.Language, in.Language
	}
	r.step(in)
	if truncated && slices.ContainsFunc(r.actions, func(a Action) bool { return a.Kind == ActionSend || a.Kind == ActionAI }) {
		// The conversation acts on the message: the contact learns that its
		// end was not read.
		note := Action{Kind: ActionSend, Text: r.f.TruncatedNote.In(r.lang, r.f.lang())}
		r.actions = append([]Action{note}, r.actions...)
	}
	return r.st, r.actions, nil
}

type run struct {
	f       *Flow
	st      State
	lang    string
	actions []Action
	steps   int
	now     time.Time      // the input's time: schedule nodes plan from it
	loc     *time.Location // the deployment's time zone (Input.Zone)
	missing []string       // variables a text named that the conversation lacks
}

func (r *run) emit(a Action) { r.actions = append(r.actions, a) }

func (r *run) say(t Text) { r.sayOr(t, nil) }

// sayOr says t, with tpl as what to send instead when WhatsApp's window
// is closed.
func (r *run) sayOr(t Text, tpl *TemplateUse) {
	if s := r.interpolate(t.In(r.lang, r.f.lang())); s != "" {
		r.emit(Action{Kind: ActionSend, Text: s, Template: r.template(tpl)})
	}
}

// template is tpl with its language and parameters filled in for this
// conversation.
func (r *run) template(tpl *TemplateUse) *models.TemplateRef {
	if tpl == nil {
		return nil
	}
	ref := &models.TemplateRef{Name: tpl.Name, Language: tpl.Language}
	if ref.Language == "" {
		ref.Language = r.lang
	}
	if len(tpl.Params) > 0 {
		ref.Params = make(map[string]string, len(tpl.Params))
		for k, v := range tpl.Params {
			ref.Params[k] = r.interpolate(v)
		}
	}
	return ref
}

func (r *run) step(in Input) {
	if in.Kind == InputMessage {
		if done := r.keyword(in.Text); done {
			return
		}
	}
	if r.st.OptedOut {
		return // nothing is sent to a contact who opted out
	}
	switch {
	case r.st.Status == StatusHandoff || r.st.Status == StatusPaused:
		return // a person answers
	case r.st.Node == "" || r.st.Status == StatusEnded || r.st.Status == StatusError:
		if in.Kind != InputMessage {
			return // a wait that outlived its conversation
		}
		r.restart()
		return
	}
	node := r.f.Nodes[r.st.Node]
	if node != nil && aiPrompt(node) != nil {
		if in.Kind == InputMessage { // the answer to the AI node's question
			switch {
			case in.ImageID != 0 && node.AIExtract != nil:
				r.requestAIImage(node, node.AIExtract, in.Text, in.ImageID) // a photo of what was asked for
			case in.Text == "" && in.Unheard:
				r.goTo(aiFallback(node)) // spoken, but not heard: the flow goes on
			case in.Text == "":
				r.say(aiPrompt(node))
			default:
				r.requestAI(node, in.Text)
			}
		}
		return
	}
	if node == nil || node.Ask == nil {
		r.restart() // pinned to a node that no longer waits: start over
		return
	}
	switch in.Kind {
	case InputRemind:
		if node.Ask.Timeout != nil {
			r.sayOr(node.Ask.Timeout.Remind, node.Ask.Timeout.RemindTemplate)
		}
	case InputExpire:
		r.emit(Action{Kind: ActionCancelWaits})
		if node.Ask.Timeout != nil && node.Ask.Timeout.Then != "" {
			r.goTo(node.Ask.Timeout.Then)
			return
		}
		r.end()
	default:
		r.answer(node, in)
	}
}

// keyword handles the global keywords; it reports whether it did.
func (r *run) keyword(text string) bool {
	k := r.f.Keywords
	switch k.Kind(text) {
	case "stop":
		if !r.st.OptedOut {
			r.say(k.StopReply)
			r.emit(Action{Kind: ActionOptOut})
			r.emit(Action{Kind: ActionCancelWaits})
		}
		r.st.OptedOut = true
		return true
	case "start":
		r.st.OptedOut = false
		r.emit(Action{Kind: ActionOptIn})
		r.say(k.StartReply)
		return true
	case "help":
		if !r.st.OptedOut {
			r.say(k.HelpReply)
			// Then the question it waits on again, so the person knows
			// what to answer; retries are not counted.
			if n := r.f.Nodes[r.st.Node]; r.st.Status == StatusActive && n != nil && n.Ask != nil {
				r.say(n.Ask.Prompt)
			}
		}
		return true
	case "restart":
		if r.st.OptedOut {
			return true
		}
		r.emit(Action{Kind: ActionCancelWaits})
		r.restart()
		return true
	}
	return false
}

func (r *run) restart() {
	// Pending is dropped with the rest.
	r.st = State{FlowID: r.f.ID, FlowVersion: r.f.Version, Language: r.st.Language, Vars: map[string]string{}, OptedOut: r.st.OptedOut, Entered: r.st.Entered}
	r.emit(Action{Kind: ActionDropSchedules})
	r.goTo(r.f.Start)
}

// goTo runs nodes from id until one waits for the contact, or the step
// limit stops the run.
func (r *run) goTo(id string) {
	r.st.Status, r.st.Retries, r.st.Pending, r.st.Error = StatusActive, 0, nil, ""
	for {
		r.steps++
		if r.steps > r.f.MaxSteps {
			r.st.Status, r.st.Error = StatusError, fmt.Sprintf("stopped after %d steps without waiting for the contact", r.f.MaxSteps)
			r.emit(Action{Kind: ActionStepLimitStop, Text: r.st.Error})
			return
		}
		n := r.f.Nodes[id]
		r.st.Node = id
		r.st.Entered = append(r.st.Entered, id)
		switch {
		case n.Send != nil:
			r.sayOr(n.Send, n.Template)
			id = n.Next
		case n.Schedule != nil:
			r.schedule(n.Schedule)
			id = n.Next
		case n.Branch != nil:
			id = r.branch(n)
		case n.Ask != nil:
			r.sayOr(n.Ask.Prompt, n.Ask.Template)
			r.scheduleWaits(n.Ask)
			return
		case n.AIClassify != nil || n.AIExtract != nil:
			r.enterAI(n)
			return
		case n.Handoff != nil:
			r.handoffOr(n.Handoff.Send, n.Handoff.Template)
			return
		default:
			r.sayOr(n.End.Send, n.End.Template)
			r.end()
			return
		}
	}
}

// handoff says t and leaves the conversation to a person.
func (r *run) handoff(t Text) { r.handoffOr(t, nil) }

func (r *run) handoffOr(t Text, tpl *TemplateUse) {
	r.sayOr(t, tpl)
	r.st.Status = StatusHandoff
	r.emit(Action{Kind: ActionHandoff})
}

func (r *run) end() {
	r.st.Status, r.st.Pending = StatusEnded, nil
	r.emit(Action{Kind: ActionEnd})
}

func (r *run) scheduleWaits(a *Ask) {
	if a.Timeout == nil {
		return
	}
	if a.Timeout.RemindAfter > 0 {
		r.emit(Action{Kind: ActionScheduleWait, Input: InputRemind, After: time.Duration(a.Timeout.RemindAfter)})
	}
	if a.Timeout.ExpireAfter > 0 {
		r.emit(Action{Kind: ActionScheduleWait, Input: InputExpire, After: time.Duration(a.Timeout.ExpireAfter)})
	}
}

func (r *run) branch(n *Node) string {
	env := make(map[string]any, len(r.st.Vars))
	for k, v := range r.st.Vars {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			env[k] = f
		} else {
			env[k] = v
		}
	}
	for _, c := range n.Branch {
		if c.Else != "" {
			return c.Else
		}
		out, err := expr.Run(c.program, env)
		if ok, isBool := out.(bool); err == nil && isBool && ok {
			return c.Next
		}
	}
	return "" // unreachable: validation requires an else
}

func (r *run) answer(n *Node, in Input) {
	a := n.Ask
	value, key, ok := parseAnswer(a, in, r.lang, r.f.tz())
	if !ok && in.Unheard && in.Text == "" {
		// A voice note Parley could not hear is not a wrong answer: ask
		// for it in writing, and keep waiting.
		r.say(r.f.UnheardNote)
		return
	}
	if !ok {
		r.st.Retries++
		if r.st.Retries >= a.retryLimit() {
			r.emit(Action{Kind: ActionCancelWaits})
			if a.Retry != nil && a.Retry.Exhausted != "" {
				r.goTo(a.Retry.Exhausted)
			} else {
				r.handoff(r.f.HandoffNote)
			}
			return
		}
		if a.Retry != nil && len(a.Retry.Prompt) > 0 {
			r.say(a.Retry.Prompt)
		} else {
			r.say(a.Prompt)
		}
		return
	}
	r.emit(Action{Kind: ActionCancelWaits})
	if e := a.extract; e != nil { // a photo to read fields off
		if in.ImageID == 0 {
			r.goTo(e.Fallback) // a voice note or a file: nothing to read
			return
		}
		r.requestAIImage(n, e, in.Text, in.ImageID)
		return
	}
	if a.Save != "" {
		r.st.Vars[a.Save] = value
	}
	if target, ok := a.Routes[key]; ok {
		r.goTo(target)
		return
	}
	r.goTo(a.Next)
}

var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

func (r *run) interpolate(s string) string {
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		name := placeholder.FindStringSubmatch(m)[1]
		v, ok := r.st.Vars[name]
		if !ok && !slices.Contains(r.missing, name) {
			r.missing = append(r.missing, name)
		}
		return v
	})
}
