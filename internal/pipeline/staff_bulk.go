package pipeline

import (
	"context"
	"time"

	"github.com/parley-chat/parley/models"
)

// BulkResendCap is how many messages one bulk resend sends at most; a
// range with more is sent in several goes.
const BulkResendCap = 500

// BulkResendResult is what a bulk resend found and did.
type BulkResendResult struct {
	// Found is how many failed messages the range holds, at most
	// BulkResendCap; Capped says it holds more.
	Found  int
	Capped bool
	// Resent are the new messages' ids (empty for a dry run), Refused how
	// many could not go now (opted out, window closed) and stay failed.
	Resent  []int64
	Refused int
	// Left is how many failed messages the range still holds after this go
	// (the refused ones among them), at most BulkResendCap+Refused.
	Left int
	// More says a further go would find messages this one did not reach
	// (a capped range); the refused ones do not count, as they would be
	// refused again.
	More bool
}

// BulkResend sends again, each as Resend does (once, however often it is
// asked), the failed messages written from since until before until
// (whole days: the caller passes the start of the day after the last);
// with dryRun it only counts them. A go is audited once, before anything
// is sent, with the range and how many it found; each resend is audited
// by Resend.
func (p *Pipeline) BulkResend(ctx context.Context, actor models.Actor, since, until time.Time, dryRun bool) (BulkResendResult, error) {
	var r BulkResendResult
	if since.IsZero() || until.IsZero() || !until.After(since) {
		return r, models.Errorf(models.EINVALID, "Give a range of days like 2026-12-01 to 2026-12-03 (the last included).")
	}
	ids, err := p.messages.FailedBetween(ctx, since, until, BulkResendCap+1)
	if err != nil {
		return r, err
	}
	if len(ids) > BulkResendCap {
		ids, r.Capped = ids[:BulkResendCap], true
	}
	r.Found, r.Resent, r.Left, r.More = len(ids), []int64{}, len(ids), r.Capped
	if dryRun {
		return r, nil
	}
	err = p.audit.Record(ctx, &models.AuditEvent{ActorID: actor.ID, ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP,
		Action: "messages.bulk_resend", SubjectType: "messages",
		Details: map[string]any{"since": since.Format(time.DateOnly), "until": until.AddDate(0, 0, -1).Format(time.DateOnly), "count": len(ids)}})
	if err != nil {
		return r, err
	}
	for _, id := range ids {
		again, err := p.Resend(ctx, actor, id)
		switch {
		case models.ErrorCode(err) == models.ECONFLICT:
			r.Refused++
		case err != nil:
			return r, err
		default:
			r.Resent = append(r.Resent, again)
		}
	}
	// The same range as the go itself: what is left is what a next go finds.
	left, err := p.messages.FailedBetween(ctx, since, until, BulkResendCap+r.Refused+1)
	if err != nil {
		return r, err
	}
	r.Left, r.More = len(left), len(left) > r.Refused
	return r, nil
}
