package pipeline

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// ScheduleRequest is a message staff or the API plan for a contact.
type ScheduleRequest struct {
	// At is when it goes: RFC 3339, or "2006-01-02 15:04" read in the
	// clinic's time zone (PARLEY_TIME_ZONE).
	At   string `json:"at"`
	Text string `json:"text"`
	// Template is what it goes as on WhatsApp when the window has closed
	// by then; without one the message is not sent then, and says why.
	Template *models.TemplateRef `json:"template,omitempty"`
}

// ScheduledResult is a message planned: its id (to cancel it) and when
// it goes.
type ScheduledResult struct {
	ID     int64     `json:"scheduled_id"`
	FireAt time.Time `json:"at"`
}

// maxAhead is how far ahead a message may be planned.
const maxAhead = 366 * 24 * time.Hour

// ScheduleMessage plans a message to a contact for a later time, fired
// once by the queue like a flow's (it belongs to no conversation: an
// opt-out or erasure cancels it, or CancelScheduled). Supervisors and
// admins, audited ("message.schedule": ids, the time, the length).
func (p *Pipeline) ScheduleMessage(ctx context.Context, actor models.Actor, contactID int64, req ScheduleRequest) (*ScheduledResult, error) {
	if err := mayStart(actor); err != nil {
		return nil, err
	}
	req.Text = strings.TrimSpace(req.Text)
	switch n := utf8.RuneCountInString(req.Text); {
	case n == 0:
		return nil, fieldErr("text", models.Errorf(models.EINVALID, "Write something to send."))
	case n > engine.MaxInput:
		return nil, fieldErr("text", models.Errorf(models.EINVALID, "A message may have at most %d characters.", engine.MaxInput))
	}
	at, ok := engine.ParseTime(req.At, p.zone())
	now := time.Now()
	switch {
	case !ok:
		return nil, fieldErr("at", models.Errorf(models.EINVALID, "Give the time like 2026-12-08 09:30 (in %s) or 2026-12-08T09:30:00+05:30.", p.zone()))
	case !at.After(now):
		return nil, fieldErr("at", models.Errorf(models.EINVALID, "That time has passed."))
	case at.Sub(now) > maxAhead:
		return nil, fieldErr("at", models.Errorf(models.EINVALID, "A message may be planned at most a year ahead."))
	}
	if req.Template != nil {
		if err := checkTemplate(req.Template); err != nil {
			return nil, fieldErr("template", err)
		}
	}
	var res *ScheduledResult
	err := p.underContact(ctx, contactID, func(tx *gorm.DB, contact *models.Contact) error {
		if contact.OptedOut {
			return models.Errorf(models.ECONFLICT, startOptedOut)
		}
		provider, err := p.startProvider(ctx, tx, contact, "")
		if err != nil {
			return err
		}
		m := &store.ScheduledMessage{ContactID: contact.ID, Provider: provider, FireAt: at, Body: req.Text, Template: req.Template}
		if err := p.scheduled.Insert(ctx, tx, []*store.ScheduledMessage{m}); err != nil {
			return err
		}
		if err := p.enqueueMany(ctx, tx, []river.InsertManyParams{scheduledJob(m)}); err != nil {
			return err
		}
		res = &ScheduledResult{ID: m.ID, FireAt: at}
		details := map[string]any{"scheduled": m.ID, "at": at.UTC().Format(time.RFC3339), "characters": utf8.RuneCountInString(req.Text)}
		if req.Template != nil {
			details["template"] = req.Template.Name
		}
		return p.audit.Append(ctx, tx, &models.AuditEvent{ActorID: actor.ID, ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP,
			Action: "message.schedule", SubjectType: "contact", SubjectID: strconv.FormatInt(contact.ID, 10), Details: details})
	})
	return res, err
}

// CancelScheduled cancels a planned message that has not gone
// (ECONFLICT when it has, or was cancelled), audited.
func (p *Pipeline) CancelScheduled(ctx context.Context, actor models.Actor, id int64) error {
	if err := mayStart(actor); err != nil {
		return err
	}
	contactID, err := p.scheduled.ContactOf(ctx, id)
	if err != nil {
		return err
	}
	if contactID == 0 {
		return models.Errorf(models.ENOTFOUND, "Scheduled message not found.")
	}
	return p.underContact(ctx, contactID, func(tx *gorm.DB, contact *models.Contact) error {
		m, err := p.scheduled.Lock(ctx, tx, id)
		if err != nil {
			return err
		}
		if m.Status != store.ScheduledPending {
			return models.Errorf(models.ECONFLICT, "This message is %s already.", strings.ReplaceAll(m.Status, "_", " "))
		}
		if err := p.scheduled.Finish(ctx, tx, id, store.ScheduledCancelled, scheduledCancelled, nil); err != nil {
			return err
		}
		return p.audit.Append(ctx, tx, &models.AuditEvent{ActorID: actor.ID, ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP,
			Action: "message.schedule_cancel", SubjectType: "contact", SubjectID: strconv.FormatInt(contact.ID, 10), Details: map[string]any{"scheduled": id}})
	})
}

// zone is the clinic's time zone: the flows'.
func (p *Pipeline) zone() *time.Location {
	if f, ok := p.responder.(*Flows); ok && f.Zone != nil {
		return f.Zone
	}
	return time.UTC
}
