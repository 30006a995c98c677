package models

import "time"

// BroadcastStatus is where a broadcast is in its life: planned (draft),
// confirmed for later (scheduled) or now (running), paused, cancelled, or
// done (every included recipient's message written and queued).
type BroadcastStatus string

// Broadcast statuses.
const (
	BroadcastDraft     BroadcastStatus = "draft"
	BroadcastScheduled BroadcastStatus = "scheduled"
	BroadcastRunning   BroadcastStatus = "running"
	BroadcastPaused    BroadcastStatus = "paused"
	BroadcastCancelled BroadcastStatus = "cancelled"
	BroadcastDone      BroadcastStatus = "done"
)

// Why a contact or a CSV line of a broadcast's audience is not messaged.
const (
	ExcludedOptedOut      = "opted_out"       // they sent STOP
	ExcludedInvalidNumber = "invalid_number"  // not a phone number in the deployment's region
	ExcludedNoTemplate    = "no_template"     // no approved template in their language
	ExcludedHandoff       = "handoff"         // a person is handling their conversation
	ExcludedDuplicate     = "duplicate"       // the same number on an earlier CSV line
	ExcludedBadParams     = "bad_params"      // the template cannot be filled with their variables
	ExcludedInFlow        = "in_conversation" // a flow broadcast: they are in a running conversation
	ExcludedRefused       = "refused"         // a flow broadcast: their start was refused otherwise
)

// Audience says who a broadcast reaches: contacts matching a filter, or the
// lines of an uploaded CSV (CSV true; the lines themselves are recipients).
// Every filter field is optional; together they narrow.
type Audience struct {
	CSV bool `json:"csv,omitempty"`
	// FlowID: their latest conversation runs this flow.
	FlowID string `json:"flow,omitempty"`
	// State of their latest conversation: "active", "ended", "handoff",
	// "paused", or a node of FlowID.
	State string `json:"state,omitempty"`
	// Vars: their latest conversation's variables have these values
	// (compared after decryption; exact, case-insensitively).
	Vars map[string]string `json:"vars,omitempty"`
	// LastMessageAfter/Before bound the time of their latest message.
	LastMessageAfter  *time.Time `json:"last_message_after,omitempty"`
	LastMessageBefore *time.Time `json:"last_message_before,omitempty"`
}

// Filtered reports whether a names any filter (CSV aside).
func (a Audience) Filtered() bool {
	return a.FlowID != "" || a.State != "" || len(a.Vars) > 0 || a.LastMessageAfter != nil || a.LastMessageBefore != nil
}

// BroadcastMessage is what a broadcast sends: an approved template (Params'
// values may name a recipient's variable as {{name}}) or the start of a
// flow (FlowID, with the recipient's variables set in it; Template, when
// set, opens it for those outside WhatsApp's 24-hour window).
type BroadcastMessage struct {
	Template *TemplateRef `json:"template,omitempty"`
	FlowID   string       `json:"flow,omitempty"`
}

// Broadcast is one broadcast as staff see it.
type Broadcast struct {
	ID          int64            `json:"id"`
	Name        string           `json:"name"`
	Status      BroadcastStatus  `json:"status"`
	Channel     Channel          `json:"channel"`
	Provider    string           `json:"provider"`
	Message     BroadcastMessage `json:"message"`
	Audience    Audience         `json:"audience"`
	SendAt      *time.Time       `json:"send_at,omitempty"`
	CreatedBy   string           `json:"created_by,omitempty"`
	CreatedAt   time.Time        `json:"created_at"`
	ConfirmedAt *time.Time       `json:"confirmed_at,omitempty"`
	FinishedAt  *time.Time       `json:"finished_at,omitempty"`
}

// BroadcastProgress counts a broadcast's recipients: how many it reaches
// and how many are excluded (by reason), and how their messages are doing.
// A recipient counts in one of Pending, Queued, Sent, Delivered, Read,
// Failed or Cancelled; Replied counts those who wrote after their message.
type BroadcastProgress struct {
	Reached   int            `json:"reached"`
	Excluded  map[string]int `json:"excluded"`
	Pending   int            `json:"pending"`
	Queued    int            `json:"queued"`
	Sent      int            `json:"sent"`
	Delivered int            `json:"delivered"`
	Read      int            `json:"read"`
	Failed    int            `json:"failed"`
	Cancelled int            `json:"cancelled"`
	Replied   int            `json:"replied"`
	// Series is messages the platform took over time, cumulative.
	Series []BroadcastPoint `json:"series,omitempty"`
}

// ExcludedTotal is how many were excluded for any reason.
func (p *BroadcastProgress) ExcludedTotal() int {
	n := 0
	for _, v := range p.Excluded {
		n += v
	}
	return n
}

// BroadcastPoint is one point of a broadcast's progress over time.
type BroadcastPoint struct {
	At   time.Time `json:"at"`
	Sent int       `json:"sent"` // taken by the platform by At, cumulative
}

// BadLine is a CSV line that could not be used, by number (never its
// content: it holds a phone number).
type BadLine struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}
