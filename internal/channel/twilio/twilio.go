// Package twilio is Parley's adapter for Twilio Programmable Messaging (SMS
// and WhatsApp): it checks webhook signatures against the configured public
// URL, parses inbound messages and status callbacks, and sends through
// twilio-go.
package twilio

import (
	"strconv"
	"strings"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/models"
)

// MaxMedia is the most attachments Twilio sends with one message.
const MaxMedia = 10

// ParseMessage reads an inbound message webhook. It returns EINVALID when a
// required field is missing.
func ParseMessage(form map[string]string) (channel.Inbound, error) {
	in := channel.Inbound{
		Provider:          channel.Twilio,
		ProviderMessageID: form["MessageSid"],
		From:              form["From"],
		To:                form["To"],
		Body:              form["Body"],
		ProfileName:       form["ProfileName"],
	}
	if in.ProviderMessageID == "" || in.From == "" {
		return in, models.Errorf(models.EINVALID, "MessageSid and From are required.")
	}
	if n := form["NumMedia"]; n != "" {
		count, err := strconv.Atoi(n)
		if err != nil || count < 0 || count > MaxMedia {
			return in, models.Errorf(models.EINVALID, "NumMedia is not a number from 0 to %d.", MaxMedia)
		}
		for i := range count {
			url := form["MediaUrl"+strconv.Itoa(i)]
			if url == "" {
				return in, models.Errorf(models.EINVALID, "MediaUrl%d is missing.", i)
			}
			in.Media = append(in.Media, channel.Media{Ref: url, ContentType: form["MediaContentType"+strconv.Itoa(i)]})
		}
	}
	if in.Body == "" && len(in.Media) == 0 && form["ButtonText"] != "" {
		in.Body = form["ButtonText"]
	}
	return in, channel.Sanitize(&in)
}

// statuses maps Twilio's message statuses to Parley's.
var statuses = map[string]models.MessageStatus{
	"accepted":            models.StatusQueued,
	"scheduled":           models.StatusQueued,
	"queued":              models.StatusQueued,
	"sending":             models.StatusSending,
	"sent":                models.StatusSent,
	"delivered":           models.StatusDelivered,
	"partially_delivered": models.StatusDelivered,
	"read":                models.StatusRead,
	"undelivered":         models.StatusFailed,
	"failed":              models.StatusFailed,
	"canceled":            models.StatusFailed,
}

// ParseStatus reads a status callback. Unknown statuses return ok=false
// and are ignored by the caller.
func ParseStatus(form map[string]string) (st channel.Status, ok bool, err error) {
	sid, raw := form["MessageSid"], form["MessageStatus"]
	if sid == "" || raw == "" {
		return st, false, models.Errorf(models.EINVALID, "MessageSid and MessageStatus are required.")
	}
	s, known := statuses[strings.ToLower(raw)]
	if !known {
		return st, false, nil
	}
	st = channel.Status{Provider: channel.Twilio, ProviderMessageID: sid, Status: s, ErrorCode: form["ErrorCode"]}
	if code, err := strconv.Atoi(st.ErrorCode); err == nil && s == models.StatusFailed {
		st.Reason = reasons[code] // template and window refusals often come this way, after a 201
	}
	return st, true, nil
}

// TwiML is the empty answer to a message webhook: replies go out later
// through the API. An empty body makes Twilio log error 11200.
const TwiML = `<?xml version="1.0" encoding="UTF-8"?><Response/>`
