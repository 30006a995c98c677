package models

import "time"

// Direction tells whether a message came in from a contact or went out.
type Direction string

// Message directions.
const (
	Inbound  Direction = "in"
	Outbound Direction = "out"
)

// MessageStatus is the delivery state of a message. Outbound statuses only
// move forward (see MessageStatus.Rank).
type MessageStatus string

// Message statuses.
const (
	StatusReceived  MessageStatus = "received"
	StatusProcessed MessageStatus = "processed"
	StatusQueued    MessageStatus = "queued"
	StatusSending   MessageStatus = "sending"
	StatusSent      MessageStatus = "sent"
	StatusDelivered MessageStatus = "delivered"
	StatusRead      MessageStatus = "read"
	StatusFailed    MessageStatus = "failed"
)

// Rank orders outbound statuses so that a late callback never moves a
// message backwards. Failed is final and ranks highest.
func (s MessageStatus) Rank() int {
	switch s {
	case StatusQueued:
		return 1
	case StatusSending:
		return 2
	case StatusSent:
		return 3
	case StatusDelivered:
		return 4
	case StatusRead:
		return 5
	case StatusFailed:
		return 6
	}
	return 0
}

// Message is one inbound or outbound message. Body is plaintext in memory
// only; the store keeps it encrypted.
type Message struct {
	ID                int64
	ContactID         int64
	ConversationID    *int64
	Direction         Direction
	Channel           Channel
	Provider          string // twilio, meta, siren, simulator
	ProviderMessageID string
	Body              string
	ProfileName       string // inbound: the sender's profile name the platform gave, if any
	Status            MessageStatus
	ErrorCode         string
	ErrorReason       string // why a send failed, in words a person can act on
	ProviderTime      *time.Time
	CreatedAt         time.Time
}
