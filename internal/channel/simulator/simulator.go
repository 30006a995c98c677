// Package simulator is the console's simulator as a channel: Parley's own
// messages to a test contact, "sent" without leaving the process. Its
// inbound side is the console's chat pane, which ingests through the same
// pipeline as a platform's webhook.
package simulator

import (
	"context"
	"crypto/rand"
	"hash/fnv"
	"strconv"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/models"
)

// Sender delivers to the simulator: the message is stored as sent by the
// pipeline, and reads as delivered when its status is asked.
type Sender struct{}

// Send implements channel.Sender.
func (Sender) Send(context.Context, channel.Outbound) (string, error) {
	return NewID(), nil
}

// CheckStatus implements channel.StatusChecker: a simulated message is
// delivered as soon as it is sent.
func (Sender) CheckStatus(_ context.Context, id string) (channel.Status, bool, error) {
	return channel.Status{Provider: channel.Simulator, ProviderMessageID: id, Status: models.StatusDelivered}, true, nil
}

// NewID returns a fresh message id of the simulator's: "SIM" and 26
// random base-32 letters.
func NewID() string { return "SIM" + rand.Text() }

// NumberFor returns the test contact's number of one staff member: in the
// UK's range kept for drama (+44 7700 900000–900999), so it is a valid
// number that reaches nobody, and the same on every visit.
func NumberFor(staffID string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(staffID))
	n := 900000 + h.Sum32()%1000
	return "+447700" + strconv.FormatUint(uint64(n), 10)
}

// Address is the simulator's channel address of a number.
func Address(number string) string { return channel.Simulator + ":" + number }
