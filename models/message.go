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
	ID                int64         `json:"id"`
	ContactID         int64         `json:"contact_id"`
	ConversationID    *int64        `json:"conversation_id"`
	Direction         Direction     `json:"direction"`
	Channel           Channel       `json:"channel"`
	Provider          string        `json:"provider"` // twilio, meta, siren, simulator
	ProviderMessageID string        `json:"provider_message_id"`
	Body              string        `json:"body"`
	ProfileName       string        `json:"profile_name"` // inbound: the sender's profile name the platform gave, if any
	Status            MessageStatus `json:"status"`
	ErrorCode         string        `json:"error_code"`
	ErrorReason       string        `json:"error_reason"` // why a send failed, in words a person can act on
	ProviderTime      *time.Time    `json:"provider_time"`
	CreatedAt         time.Time     `json:"created_at"`
	// Seq is the message's place in its contact's conversation, taken when
	// it was written: a contact's messages are read in Seq order, never by
	// ID (ids are reserved in blocks and only unique).
	Seq int64 `json:"seq"`
	// Template, on an outbound message, sends it as this approved WhatsApp
	// template (see TemplateRef); Body is then the text as rendered.
	Template *TemplateRef `json:"template,omitempty"`
	// SentBy, on an outbound message, is the staff member who wrote it by
	// hand; "" for the bot's replies and outreach.
	SentBy string `json:"-"`
	// ResendOf, on a message staff sent again, is the failed one it
	// sends again.
	ResendOf *int64 `json:"resend_of,omitempty"`
	// HasMedia says it came with attachments (read for processing).
	HasMedia bool `json:"-"`
	// Heard is what Parley understood of its attachments, set while it is
	// processed; never stored with the message.
	Heard *Heard `json:"-"`
}

// Heard is what Parley understood of a message's attachments, for the
// conversation engine.
type Heard struct {
	Transcript string // what a voice note said ("" when none was heard)
	Language   string // the language it was said in, BCP-47
	Media      bool   // it came with an attachment
	ImageID    int64  // its first photo (0: none)
	// Unheard says a voice note came without words Parley could use: the
	// service is off, failed or heard nothing.
	Unheard bool
}
