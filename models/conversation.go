package models

import "time"

// ConversationStatus is where a conversation stands.
type ConversationStatus string

// Conversation statuses.
const (
	ConversationActive  ConversationStatus = "active"  // the bot is walking the flow
	ConversationPaused  ConversationStatus = "paused"  // staff paused the bot
	ConversationHandoff ConversationStatus = "handoff" // waiting for a person
	ConversationEnded   ConversationStatus = "ended"
	ConversationError   ConversationStatus = "error" // stopped by a safety limit; visible to staff
)

// Conversation is one contact's walk through one pinned version of a flow.
type Conversation struct {
	ID          int64              `json:"id"`
	ContactID   int64              `json:"contact_id"`
	FlowID      string             `json:"flow"`
	FlowVersion string             `json:"flow_version"` // content hash of the flow definition it started on
	Node        string             `json:"node"`
	Status      ConversationStatus `json:"status"`
	Variables   map[string]string  `json:"variables"`
	Retries     int                `json:"retries"`  // answers that did not fit the current question
	Language    string             `json:"language"` // the contact's language for this conversation
	Error       string             `json:"error"`    // why a safety limit stopped it
	WaitSeq     int64              `json:"-"`        // bumped on every move; a timeout for an older wait is stale
	RemindedSeq int64              `json:"-"`        // 1 + the wait whose reminder fired last (0: none): a reminder fires once
	Pending     []byte             `json:"-"`        // JSON of the AI request it waits on; nil when none
	StartedAt   time.Time          `json:"started_at"`
	UpdatedAt   time.Time          `json:"updated_at"`
	ExpiresAt   *time.Time         `json:"expires_at"`
	EndedAt     *time.Time         `json:"ended_at"`
	// NodesVisited are the nodes it entered, each once, in the order first
	// entered: the path the flow map's funnel counts.
	NodesVisited []string `json:"nodes_visited"`
	// HandoffAt is when the flow last handed it to a person (nil: never).
	HandoffAt *time.Time `json:"handoff_at"`
}

// Visit adds the nodes entered to those visited, each once.
func (c *Conversation) Visit(entered []string) {
	for _, n := range entered {
		seen := false
		for _, v := range c.NodesVisited {
			if v == n {
				seen = true
				break
			}
		}
		if !seen {
			c.NodesVisited = append(c.NodesVisited, n)
		}
	}
}
