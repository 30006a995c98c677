package models

import "time"

// Channel is the messaging channel a contact is reached on.
type Channel string

// Channels Parley speaks.
const (
	ChannelSMS       Channel = "sms"
	ChannelWhatsApp  Channel = "whatsapp"
	ChannelSimulator Channel = "simulator"
)

// Contact is a person Parley talks with. Address and Name are plaintext in
// memory only; the store keeps them encrypted.
type Contact struct {
	ID      int64   `json:"id"`
	Channel Channel `json:"channel"`
	Address string  `json:"address"` // E.164 phone number, or the raw address when it does not parse
	// AddressInvalid flags an address that is not a phone number; it is kept.
	AddressInvalid bool      `json:"address_invalid"`
	Name           string    `json:"name"`
	Language       string    `json:"language"`
	OptedOut       bool      `json:"opted_out"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}
