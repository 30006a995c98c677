package engine

import (
	"strings"
	"time"
)

// Session is a conversation held in memory: the terminal simulator and the
// console's simulator talk to the real engine through it.
type Session struct {
	Flow  *Flow
	State State
	Now   func() time.Time
	// Region is where phone answers typed without a country code are from.
	Region string
	// AI answers AI nodes; nil means the AI layer is off, so they fall back.
	AI func(AIRequest) AIResult
}

// Say feeds one line to the conversation and returns the replies. A line
// "!remind" or "!expire" fires that timeout instead.
func (s *Session) Say(line string) []string {
	in := Input{Kind: InputMessage, Text: line}
	switch strings.TrimSpace(line) {
	case "!remind":
		in = Input{Kind: InputRemind}
	case "!expire":
		in = Input{Kind: InputExpire}
	}
	return s.Send(in)
}

// Send feeds one input (a message with what was heard or seen of its
// attachments, or a timeout) to the conversation and returns the replies.
func (s *Session) Send(in Input) []string {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	in.Now, in.Region = now(), s.Region
	var out []string
	for {
		next, actions, err := Step(s.Flow, s.State, in)
		if err != nil {
			return append(out, "(error: "+err.Error()+")")
		}
		s.State = next
		out = append(out, Replies(actions)...)
		if next.Pending == nil {
			return out
		}
		in = Input{Kind: InputAI, AI: s.answer(*next.Pending), Now: now()}
	}
}

func (s *Session) answer(req AIRequest) *AIResult {
	if s.AI == nil {
		return &AIResult{Err: "the AI layer is off"}
	}
	res := s.AI(req)
	return &res
}

// Replies is what a person following the conversation sees of actions:
// the messages sent, and notes for hand-offs, stops and messages planned
// for later.
func Replies(actions []Action) []string {
	var out []string
	for _, a := range actions {
		switch a.Kind {
		case ActionSend:
			out = append(out, a.Text)
		case ActionHandoff:
			out = append(out, "(handed to a person)")
		case ActionStepLimitStop:
			out = append(out, "(stopped: "+a.Text+")")
		case ActionSchedule:
			out = append(out, "(planned for "+a.Scheduled.At.Format("2006-01-02 15:04 MST")+": "+a.Scheduled.Text+")")
		}
	}
	return out
}
