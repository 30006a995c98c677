package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// ScheduledArgs fires one scheduled message (scheduled_messages) at its
// time. It names the row only: the text is personal and stays sealed
// there. Unique by its args, so the row has one job whoever inserts it.
type ScheduledArgs struct {
	ID int64 `json:"scheduled_id"`
}

// Kind implements river.JobArgs.
func (ScheduledArgs) Kind() string { return "scheduled_message" }

// Reasons a scheduled message did not go (kept with it; nothing personal).
const (
	scheduledEnded     = "the conversation ended or restarted"
	scheduledOptedOut  = "the contact opted out"
	scheduledReplaced  = "the conversation was replaced by a started one"
	scheduledNoWindow  = "A scheduled message could not go: more than 24 hours since the contact last wrote on WhatsApp, and it names no approved template. A person should write to them."
	scheduledCancelled = "cancelled by staff"
)

// planOp is one change to a run's scheduled messages, applied in order
// when the run is flushed (after its conversations are written, which
// the rows refer to): a message planned, or what a conversation or a
// contact planned cancelled.
type planOp struct {
	insert        *store.ScheduledMessage
	cancelConv    int64
	cancelContact int64
	reason        string
}

// plan gathers an outcome's changes to scheduled messages into the run.
func (r *runJobs) plan(contact *models.Contact, provider string, out *Outcome) {
	if out.OptOut {
		r.plans = append(r.plans, planOp{cancelContact: contact.ID, reason: scheduledOptedOut})
	}
	if out.DropSchedules && out.ConversationID != nil {
		r.plans = append(r.plans, planOp{cancelConv: *out.ConversationID, reason: scheduledEnded})
	}
	for _, s := range out.Schedules {
		r.plans = append(r.plans, planOp{insert: &store.ScheduledMessage{ContactID: contact.ID, ConversationID: out.ConversationID,
			Provider: provider, FireAt: s.At, Body: s.Text, Template: s.Template}})
	}
}

// flushPlans applies the run's changes to scheduled messages in order and
// adds the jobs that fire the new ones at their time.
func (p *Pipeline) flushPlans(ctx context.Context, tx *gorm.DB, r *runJobs) error {
	for _, op := range r.plans {
		var err error
		switch {
		case op.insert != nil:
			if err = p.scheduled.Insert(ctx, tx, []*store.ScheduledMessage{op.insert}); err == nil {
				r.all = append(r.all, scheduledJob(op.insert))
			}
		case op.cancelConv != 0:
			err = p.scheduled.CancelConversation(ctx, tx, op.cancelConv, op.reason)
		case op.cancelContact != 0:
			err = p.scheduled.CancelContact(ctx, tx, op.cancelContact, op.reason)
		}
		if err != nil {
			return err
		}
	}
	r.plans = nil
	return nil
}

// scheduledJob is the job that fires m at its time, once: unique by its
// args (the row's id), so no second job for it is queued.
func scheduledJob(m *store.ScheduledMessage) river.InsertManyParams {
	return river.InsertManyParams{Args: ScheduledArgs{ID: m.ID}, InsertOpts: &river.InsertOpts{ScheduledAt: m.FireAt,
		UniqueOpts: river.UniqueOpts{ByArgs: true}}} // River's default states: all but cancelled and discarded
}

type scheduledWorker struct {
	river.WorkerDefaults[ScheduledArgs]
	p *Pipeline
}

// NextRetry retries a failed firing soon: nothing was committed.
func (w *scheduledWorker) NextRetry(job *river.Job[ScheduledArgs]) time.Time {
	return time.Now().Add(w.p.backoff(job.Attempt))
}

// Work fires the message under the contact's lock, in one transaction:
// the message written and its send queued with the row marked sent, so a
// replay, a rescued job or a second instance finds it done. A message
// whose conversation ended, or whose contact opted out or was erased,
// does not go; on WhatsApp after the window it goes as its template, and
// without one the conversation is handed to a person with the reason.
func (w *scheduledWorker) Work(ctx context.Context, job *river.Job[ScheduledArgs]) error {
	p := w.p
	contactID, err := p.scheduled.ContactOf(ctx, job.Args.ID)
	if err != nil || contactID == 0 {
		return err // 0: gone with its contact (erased)
	}
	err = p.underContact(ctx, contactID, func(tx *gorm.DB, contact *models.Contact) error {
		return p.fire(ctx, tx, contact, job.Args.ID)
	})
	if models.ErrorCode(err) == models.ENOTFOUND {
		return nil // erased meanwhile
	}
	return err
}

func (p *Pipeline) fire(ctx context.Context, tx *gorm.DB, contact *models.Contact, id int64) error {
	m, err := p.scheduled.Lock(ctx, tx, id)
	if err != nil || m.Status != store.ScheduledPending {
		return err // fired or cancelled already
	}
	if m.ConversationID != nil {
		var status string
		if err := tx.WithContext(ctx).Raw(`SELECT status FROM conversations WHERE id = ?`, *m.ConversationID).Scan(&status).Error; err != nil {
			return err
		}
		if status == "" || status == string(models.ConversationEnded) || status == string(models.ConversationError) {
			return p.scheduled.Finish(ctx, tx, id, store.ScheduledCancelled, scheduledEnded, nil)
		}
	}
	code, reason, err := p.refusal(ctx, tx, contact, contact.Channel, false)
	var template *models.TemplateRef
	switch {
	case err != nil:
		return err
	case code == codeOptedOut:
		return p.scheduled.Finish(ctx, tx, id, store.ScheduledCancelled, scheduledOptedOut, nil)
	case code == codeWindow && m.Template == nil:
		return p.handOffScheduled(ctx, tx, contact, id)
	case code == codeWindow:
		template = m.Template
	case code != "":
		return p.scheduled.Finish(ctx, tx, id, store.ScheduledCancelled, reason, nil)
	}
	msg := &models.Message{ContactID: contact.ID, ConversationID: m.ConversationID, Direction: models.Outbound, Channel: contact.Channel,
		Provider: m.Provider, Body: m.Body, Template: template, Status: models.StatusQueued}
	if err := p.messages.InsertReplies(ctx, tx, []*models.Message{msg}); err != nil {
		return err
	}
	if err := p.enqueue(ctx, tx, SendArgs{MessageIDs: []int64{msg.ID}}, &river.InsertOpts{MaxAttempts: p.cfg.MaxSendTries}); err != nil {
		return err
	}
	return p.scheduled.Finish(ctx, tx, id, store.ScheduledSent, "", &msg.ID)
}

// handOffScheduled hands the contact's conversation to a person when a
// scheduled message cannot go for want of a template: never dropped
// without a word.
func (p *Pipeline) handOffScheduled(ctx context.Context, tx *gorm.DB, contact *models.Contact, id int64) error {
	conv, err := p.convs.HandOffAfterFailure(ctx, tx, contact.ID, scheduledNoWindow)
	if err != nil {
		return err
	}
	status := store.ScheduledHandedOff
	if conv == 0 {
		status = store.ScheduledCancelled // no open conversation to hand over: the row says why
	} else if err := p.emit(ctx, tx, p.event(EventHandedOff, contact, nil, map[string]any{"conversation_id": conv, "reason": "scheduled_no_template"})); err != nil {
		return err
	}
	return p.scheduled.Finish(ctx, tx, id, status, scheduledNoWindow, nil)
}

// schedulesOf are the messages the engine's actions planned, in order;
// an end or a restart drops those planned before it (drop).
func schedulesOf(actions []engine.Action) (planned []*engine.Scheduled, drop bool) {
	for _, a := range actions {
		switch a.Kind {
		case engine.ActionSchedule:
			planned = append(planned, a.Scheduled)
		case engine.ActionEnd, engine.ActionDropSchedules:
			planned, drop = nil, true
		}
	}
	return planned, drop
}

// String names a scheduled job in logs without its text.
func (a ScheduledArgs) String() string { return fmt.Sprintf("scheduled message %d", a.ID) }
