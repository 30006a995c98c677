package models

import "time"

// MessageSearch asks for messages by who sent or received them and what
// they say. Every part given must match. Results come newest first.
type MessageSearch struct {
	Phone string // a phone number in any format a person types; "" for any
	// PhoneTail is the last digits of a number (4 to 6), matched by the
	// contact's number ending in them; "" for any.
	PhoneTail string
	ContactID int64  // only this contact's messages; 0 for any
	Name      string // words of the contact's name; all must match
	Text      string // words of the message; all must match

	// State is where the contact's conversation stands (StateActive …);
	// "" for any.
	State string
	Flow  string // only contacts who have had a conversation in this flow; "" for any
	Tag   string // only contacts with a conversation carrying this tag; "" for any

	Channel   Channel       // "" for any
	Status    MessageStatus // "" for any
	Direction Direction     // "" for any
	Since     time.Time     // zero for no lower bound (inclusive)
	Until     time.Time     // zero for no upper bound (exclusive)

	Before int64 // keyset cursor: only messages with a smaller id; 0 for the first page
	Limit  int   // page size; 0 means 50, at most 200
}

// Conversation states the inbox filters by.
const (
	StateActive  = "active"  // a flow is running
	StateWaiting = "waiting" // a flow is running and the last word was Parley's
	StateHandoff = "handoff" // handed off to a person
	StatePaused  = "paused"  // the bot is paused
	StateEnded   = "ended"   // no conversation is open
	StateFailed  = "failed"  // a send failed and was not sent again
)

// MessageHit is one search result: a message and its contact, decrypted.
type MessageHit struct {
	Message *Message
	Contact *Contact
}

// MessagePage is one page of search results.
type MessagePage struct {
	Hits []MessageHit
	// Next is the cursor for the following page (MessageSearch.Before), 0
	// when this page is the last.
	Next int64
}
