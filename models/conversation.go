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
	ID          int64
	ContactID   int64
	FlowID      string
	FlowVersion string // content hash of the flow definition it started on
	Node        string
	Status      ConversationStatus
	Variables   map[string]string
	Retries     int    // answers that did not fit the current question
	Language    string // the contact's language for this conversation
	Error       string // why a safety limit stopped it
	WaitSeq     int64  // bumped on every move; a timeout for an older wait is stale
	RemindedSeq int64  // 1 + the wait whose reminder fired last (0: none): a reminder fires once
	Pending     []byte // JSON of the AI request it waits on; nil when none
	StartedAt   time.Time
	UpdatedAt   time.Time
	ExpiresAt   *time.Time
	EndedAt     *time.Time
}
