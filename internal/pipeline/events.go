package pipeline

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/models"
)

// Event types Parley sends to the configured receiver.
const (
	EventMessageReceived = "message.received"
	EventMessageSent     = "message.sent"
	EventMessageFailed   = "message.failed"
	EventHandedOff       = "conversation.handed_off"
	EventEnded           = "conversation.ended"
)

// Events configures the signed outgoing events: where they go, the secret
// that signs them, and whether they carry personal data (the contact's
// number and the message's words). Off when nil.
type Events struct {
	URL      string
	Secret   []byte
	Personal bool
	Client   *http.Client // nil: one with a 10 s limit and no redirects
}

// EventArgs is one event, queued in the transaction of what it reports and
// delivered at least once; receivers drop repeats by its id.
type EventArgs struct {
	ID   string         `json:"id"`
	Type string         `json:"type"`
	At   time.Time      `json:"at"`
	Data map[string]any `json:"data"`
	// Erased is set by a contact's erasure on an event being delivered
	// at that moment (its data stripped): a retry delivers nothing.
	Erased bool `json:"erased,omitempty"`
}

// Kind implements river.JobArgs.
func (EventArgs) Kind() string { return "event" }

// event returns the job of an event about message m of contact c, or
// nothing when events are off. What is personal goes only to a receiver
// configured for it.
func (p *Pipeline) event(typ string, c *models.Contact, m *models.Message, extra map[string]any) []river.InsertManyParams {
	if p.events == nil {
		return nil
	}
	data := map[string]any{"contact_id": c.ID, "channel": string(c.Channel)}
	if m != nil {
		data["message_id"], data["provider"], data["status"] = m.ID, m.Provider, string(m.Status)
		if m.ConversationID != nil {
			data["conversation_id"] = *m.ConversationID
		}
		if p.events.Personal {
			data["body"] = m.Body
		}
	}
	if p.events.Personal {
		data["phone"] = c.Address
	}
	for k, v := range extra {
		data[k] = v
	}
	args := EventArgs{ID: "evt_" + rand.Text(), Type: typ, At: time.Now().UTC(), Data: data}
	return []river.InsertManyParams{{Args: args, InsertOpts: &river.InsertOpts{MaxAttempts: 20}}}
}

// emit queues events inside tx (nil: a transaction of its own).
func (p *Pipeline) emit(ctx context.Context, tx *gorm.DB, jobs []river.InsertManyParams) error {
	return p.enqueueMany(ctx, tx, jobs)
}

type eventWorker struct {
	river.WorkerDefaults[EventArgs]
	p *Pipeline
}

// NextRetry backs off as sends do.
func (w *eventWorker) NextRetry(job *river.Job[EventArgs]) time.Time {
	return time.Now().Add(w.p.backoff(job.Attempt))
}

// Work delivers one event: a POST of its JSON, signed (Sign), that any 2xx
// acknowledges; anything else is retried.
func (w *eventWorker) Work(ctx context.Context, job *river.Job[EventArgs]) error {
	ev := w.p.events
	if ev == nil || job.Args.Erased {
		return nil // turned off since it was queued, or its contact erased
	}
	body, err := json.Marshal(job.Args)
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ev.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Parley-Event-Id", job.Args.ID)
	req.Header.Set("Parley-Timestamp", ts)
	req.Header.Set("Parley-Signature", "v1="+Sign(ev.Secret, ts, body))
	resp, err := ev.Client.Do(req)
	if err != nil {
		return fmt.Errorf("event %s: the receiver could not be reached", job.Args.Type)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("event %s: the receiver answered %d", job.Args.Type, resp.StatusCode)
	}
	return nil
}

// Sign is an event's signature: hex HMAC-SHA256 under the secret of the
// timestamp, a dot and the body. A receiver computes the same, compares in
// constant time, and refuses a timestamp far from its own clock (replays).
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func (ev *Events) defaults() {
	if ev.Client == nil {
		ev.Client = &http.Client{Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
}

// forLiving drops from jobs the events of contacts erased meanwhile. A
// send's outcome is recorded after the platform call, outside any lock an
// erasure waits for, and its event would carry the number and words of a
// person already erased. Asked inside tx before it locks any message, the
// answer holds until tx commits (store.ContactStore.Living).
func (p *Pipeline) forLiving(ctx context.Context, tx *gorm.DB, jobs []river.InsertManyParams) ([]river.InsertManyParams, error) {
	var ids []int64
	for _, j := range jobs {
		if ev, ok := j.Args.(EventArgs); ok {
			if id, ok := ev.Data["contact_id"].(int64); ok {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return jobs, nil
	}
	living, err := p.contacts.Living(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(jobs, func(j river.InsertManyParams) bool {
		ev, ok := j.Args.(EventArgs)
		id, _ := ev.Data["contact_id"].(int64)
		return ok && !living[id]
	}), nil
}
