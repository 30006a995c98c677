package pipeline

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// flowRoundMax is how many recipients a flow broadcast's round starts: each
// is a savepoint holding its contact's lock until the round commits, and
// PostgreSQL keeps 64 subtransactions of a backend in shared memory
// before every snapshot in the database slows.
const flowRoundMax = 50

// startRound starts a flow broadcast's flow, inside tx, for each claimed
// recipient, as staff start one (StartIn: the contact locked, the opening
// template outside WhatsApp's window, opt-outs and hand-offs respected),
// each in a savepoint of its own: one refused is left out with the reason
// and the others go on. Contacts are locked in id order, as processing
// locks them, so a round and a processing run never wait on each other in
// a cycle. Their openings go through the send queue at the broadcast's
// priority, each contact's messages in order.
func (p *Pipeline) startRound(ctx context.Context, tx *gorm.DB, b *models.Broadcast, claimed []store.Claimed) error {
	claimed = slices.Clone(claimed)
	slices.SortFunc(claimed, func(x, y store.Claimed) int { return cmp.Compare(x.ContactID, y.ContactID) })
	actor := models.Actor{ID: b.CreatedBy, Role: models.RoleSupervisor, RequestID: "broadcast-" + strconv.FormatInt(b.ID, 10)}
	reg := p.registry(b.Provider) // one read of the opening template a round
	var queued, openings, excluded []int64
	var reasons []string
	var runs [][]int64
	for _, c := range claimed {
		var sends []int64
		start := func() error {
			return tx.Transaction(func(tx *gorm.DB) error {
				contact, err := p.contacts.LockContact(ctx, tx, c.ContactID)
				if err != nil {
					return err
				}
				var jobs runJobs
				req := StartRequest{Flow: b.Message.FlowID, Variables: c.Vars, Template: recipientTemplate(b.Message.Template, c), Provider: b.Provider}
				if _, err := p.startIn(ctx, tx, actor, contact, req, reg, &jobs); err != nil {
					return err
				}
				sends = takeSends(&jobs)
				return p.flush(ctx, tx, &jobs)
			})
		}
		err := start()
		if unexpectedConflict(err) {
			// A row some other writer took at the same moment: once it has
			// committed the start may pass, so it is tried once more
			// before the recipient is left out for good.
			err = start()
		}
		if reason := startExclusion(err); reason != "" {
			if reason == models.ExcludedRefused {
				p.log.Warn("broadcast: a start refused", slog.Int64("broadcast", b.ID), slog.Int64("contact", c.ContactID), slog.String("code", models.ErrorCode(err)))
			}
			excluded, reasons = append(excluded, c.ID), append(reasons, reason)
			continue
		}
		if err != nil {
			return err
		}
		opening := int64(0) // a flow that waits before it says anything
		if len(sends) > 0 {
			opening, runs = sends[0], append(runs, sends)
		}
		queued, openings = append(queued, c.ID), append(openings, opening)
	}
	if err := p.bcast.store.MarkQueued(ctx, tx, queued, openings); err != nil {
		return err
	}
	if err := p.bcast.store.Exclude(ctx, tx, excluded, reasons); err != nil {
		return err
	}
	return p.enqueueMany(ctx, tx, p.broadcastRuns(b.Provider, runs))
}

// recipientTemplate is a flow broadcast's opening template for c: in their
// language, its parameters' {{variables}} filled from theirs; nil when the
// broadcast names none.
func recipientTemplate(t *models.TemplateRef, c store.Claimed) *models.TemplateRef {
	if t == nil {
		return nil
	}
	ref := &models.TemplateRef{Name: t.Name, Language: t.Language, Params: make(map[string]string, len(t.Params))}
	if c.Language != "" {
		ref.Language = c.Language
	}
	for k, v := range t.Params {
		ref.Params[k] = fillVars(v, c.Vars)
	}
	return ref
}

// takeSends removes the send jobs from jobs and returns their messages,
// in order: a broadcast queues them in batches of its own.
func takeSends(jobs *runJobs) []int64 {
	var ids []int64
	keep := jobs.all[:0]
	for _, j := range jobs.all {
		if a, ok := j.Args.(SendArgs); ok && !a.OptOutConfirmation {
			ids = append(ids, a.MessageIDs...)
			continue
		}
		keep = append(keep, j)
	}
	jobs.all, jobs.send = keep, 0
	return ids
}

// unexpectedConflict is a start refused by a conflict none of the start's
// own checks names: a unique key taken by another writer, transient or not.
func unexpectedConflict(err error) bool {
	return models.ErrorCode(err) == models.ECONFLICT && startExclusion(err) == models.ExcludedRefused
}

// startExclusion is why a refused start leaves a recipient out, or "" when
// err is no refusal (nil, or a failure the round retries). A refusal of
// another kind (ExcludedRefused) leaves them out too, so that one person
// cannot hold up the broadcast, and is logged (its code, no text).
func startExclusion(err error) string {
	msg := models.ErrorMessage(err)
	switch models.ErrorCode(err) {
	case models.ECONFLICT:
		switch {
		case msg == startOptedOut:
			return models.ExcludedOptedOut
		case msg == startHandoff:
			return models.ExcludedHandoff
		case msg == startWindow:
			return models.ExcludedNoTemplate
		case strings.HasPrefix(msg, startRunning[:strings.Index(startRunning, "%")]):
			return models.ExcludedInFlow
		}
		return models.ExcludedRefused
	case models.EINVALID:
		return models.ExcludedBadParams
	case models.ENOTFOUND, models.EFORBIDDEN:
		return models.ExcludedRefused
	}
	return ""
}
