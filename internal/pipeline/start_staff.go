package pipeline

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// StartByPhone is a conversation staff or the API start for a phone
// number, which need not have written yet.
type StartByPhone struct {
	// Phone is the number in any usual format; without a country code it
	// is read in the deployment's region (PARLEY_DEFAULT_REGION).
	Phone string `json:"phone"`
	// Channel is whatsapp (the default) or sms.
	Channel models.Channel `json:"channel,omitempty"`
	StartRequest
}

// FieldError is a refusal about one field of a request, so a form can
// show it beside that field; it unwraps to the *models.Error.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }

// Unwrap returns the *models.Error.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, err error) error {
	if err == nil || models.ErrorCode(err) != models.EINVALID {
		return err
	}
	return &FieldError{Field: field, Err: err}
}

// StartConversation starts a flow for the contact at req.Phone (created
// if new, on req.Channel) as actor: StartIn under the contact's lock, with
// its refusals. With a key (the API's Idempotency-Key), a request retried
// within a day (store.StartKeyTTL) starts nothing more and answers the
// first result, replayed true; the key is actor's own (another member's
// same key is another request), and the same key with another request is
// ECONFLICT. A refused start keeps no key: its retry is decided afresh.
// Supervisors and admins may start conversations (mayStart).
func (p *Pipeline) StartConversation(ctx context.Context, actor models.Actor, req StartByPhone, key string) (res *StartResult, replayed bool, err error) {
	if err := mayStart(actor); err != nil {
		return nil, false, err
	}
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	number, err := p.phones.Normalize(req.Phone)
	if err != nil {
		return nil, false, fieldErr("phone", models.Errorf(models.EINVALID, "That is not a phone number; write it with its country code (+91…) or as dialled here."))
	}
	raw := number
	switch req.Channel {
	case "", models.ChannelWhatsApp:
		req.Channel, raw = models.ChannelWhatsApp, "whatsapp:"+number
	case models.ChannelSMS:
	default:
		return nil, false, fieldErr("channel", models.Errorf(models.EINVALID, "The channel is whatsapp or sms."))
	}
	flows, ok := p.responder.(*Flows)
	switch {
	case !ok:
		return nil, false, models.Errorf(models.ENOTIMPLEMENTED, "Conversations are not run by flows on this instance.")
	case flows.lib.Current(req.Flow) == nil:
		return nil, false, fieldErr("flow", models.Errorf(models.EINVALID, "There is no flow %q.", req.Flow))
	}
	req.Phone = number // the fingerprint reads the number, however it was written
	var fingerprint []byte
	if key != "" {
		if fingerprint, err = p.startKeys.Fingerprint(req); err != nil {
			return nil, false, err
		}
	}
	contact, created, err := p.contacts.FindOrCreate(ctx, raw)
	if err != nil {
		return nil, false, err
	}
	err = p.underContact(ctx, contact.ID, func(tx *gorm.DB, contact *models.Contact) error {
		if key != "" {
			kept, found, err := p.startKeys.Claim(ctx, tx, actor.ID, key, fingerprint)
			if err != nil {
				return err
			}
			if found {
				replayed = true
				res = &StartResult{}
				if err := json.Unmarshal(kept, res); err != nil {
					return models.Wrap(err, models.EINTERNAL, "A kept start result is unreadable.")
				}
				return nil
			}
		}
		if res, err = p.StartIn(ctx, tx, actor, contact, req.StartRequest); err != nil {
			return startFieldErr(err)
		}
		res.NewContact = created
		if key == "" {
			return nil
		}
		kept, err := json.Marshal(res)
		if err != nil {
			return models.Wrap(err, models.EINTERNAL, "The start result cannot be kept.")
		}
		return p.startKeys.Complete(ctx, tx, actor.ID, key, kept)
	})
	if err != nil {
		return nil, false, err
	}
	return res, replayed, nil
}

// startFieldErr places StartIn's invalid-input refusals on their fields.
func startFieldErr(err error) error {
	msg := models.ErrorMessage(err)
	switch {
	case strings.Contains(msg, "variable"), strings.Contains(msg, "Variable"):
		return fieldErr("variables", err)
	case strings.Contains(msg, "template"):
		return fieldErr("template", err)
	case strings.Contains(msg, "Provider"):
		return fieldErr("provider", err)
	}
	return err
}

// checkKey refuses an idempotency key too long or with other than
// printable ASCII.
func checkKey(key string) error {
	if len(key) > store.MaxStartKey {
		return models.Errorf(models.EINVALID, "The Idempotency-Key may have at most %d characters.", store.MaxStartKey)
	}
	for _, r := range key {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return models.Errorf(models.EINVALID, "The Idempotency-Key is printable ASCII only.")
		}
	}
	return nil
}

// SweepStartKeysArgs removes idempotency keys past their day, hourly.
type SweepStartKeysArgs struct{}

// Kind implements river.JobArgs.
func (SweepStartKeysArgs) Kind() string { return "start_keys_sweep" }

type sweepStartKeysWorker struct {
	river.WorkerDefaults[SweepStartKeysArgs]
	p *Pipeline
}

// Work removes the expired keys (a claim takes an expired key afresh
// anyway: this only keeps the table small).
func (w *sweepStartKeysWorker) Work(ctx context.Context, _ *river.Job[SweepStartKeysArgs]) error {
	_, err := w.p.startKeys.Sweep(ctx)
	return err
}

// startKeyJobs is the hourly sweep of expired idempotency keys.
func startKeyJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return SweepStartKeysArgs{}, nil },
		&river.PeriodicJobOpts{ID: "start_keys_sweep"})}
}
