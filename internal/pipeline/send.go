package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/tracing"
	"github.com/parley-chat/parley/models"
)

// Reasons a send fails before the platform is called.
const (
	codeOptedOut  = "parley:opted_out"
	codeWindow    = "parley:window_closed"
	codeNoSender  = "parley:no_sender"
	codeUncertain = "parley:uncertain"
	codeGaveUp    = "parley:gave_up"
	// An inbound message that failed processing on every try.
	codeProcessingFailed = "parley:processing_failed"
)

// Work sends the job's messages one after another, in the order they were
// written; a message that must be retried holds back the ones after it,
// and on the retry those already sent are skipped. A message the platform
// took is recorded sent in the transaction that begins the next one's
// attempt (one commit a message), and the last at the end.
func (w *sendWorker) Work(ctx context.Context, job *river.Job[SendArgs]) error {
	ctx, span := tracing.Tracer().Start(tracing.Extract(ctx, job.Args.Trace), "send_message")
	defer span.End()
	run := &sendRun{job: job}
	err := w.sendAll(ctx, run)
	if run.done != nil {
		// Whatever happened after it, the platform took this one.
		rctx, cancel := settling(ctx)
		defer cancel()
		if rerr := w.p.recordSent(rctx, run.done, nil); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func (w *sendWorker) sendAll(ctx context.Context, run *sendRun) error {
	ids := run.job.Args.MessageIDs
	for i, id := range ids {
		err := w.p.sendOne(ctx, run, id, len(ids)-i)
		var wait *waitTurn
		if errors.As(err, &wait) {
			// An earlier reply to the contact is still on its way: come
			// back (a snooze is not an attempt), soon at first and then
			// less often; one waiting out a retry delay takes longer.
			return river.JobSnooze(turnWait(time.Since(wait.queued), wait.retrying))
		}
		var slot *slotLater
		if errors.As(err, &slot) {
			return river.JobSnooze(max(slot.after, 10*time.Millisecond))
		}
		var later *retryLater
		if errors.As(err, &later) {
			if later.throttled {
				// The platform's rate limit: wait it out without using up
				// an attempt, so a 429 never fails a message.
				return river.JobSnooze(max(later.after, 10*time.Millisecond))
			}
			w.hints.Store(run.job.ID, later.after)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sendRun is one run of a send job: the message the platform last took,
// not yet recorded, and the send slots reserved ahead.
type sendRun struct {
	job  *river.Job[SendArgs]
	done *sentRecord
	// contact is the one the job's messages go to, read once a run (a
	// refusal by the platform as opted out is noted on it).
	contact *models.Contact
	// slots left reserved under the rate cap for provider, the next at
	// slotAt and the others each interval later.
	slots    int
	provider string
	slotAt   time.Time
}

// sentRecord is a message the platform took, with the id it gave.
type sentRecord struct {
	st         *store.SendState
	sender     channel.Sender
	providerID string
}

// turnWait is how long a send waits before looking again for an earlier
// one to the same contact, when its message was queued waited ago: 20 ms
// for the first half minute (a chain of replies moves on at once), then a
// tenth of the wait so far, at most 5 s (something is slow or stuck, and
// looking often only loads the database); 5 s when the earlier one waits
// out a retry delay.
func turnWait(waited time.Duration, retrying bool) time.Duration {
	switch {
	case retrying:
		return 5 * time.Second
	case waited < 30*time.Second:
		return 20 * time.Millisecond
	}
	return min(waited/10, 5*time.Second)
}

// retryLater is a failed send the platform asked to be retried no sooner
// than after.
type retryLater struct {
	after     time.Duration
	err       error
	throttled bool // refused for the platform's rate limit
}

func (e *retryLater) Error() string { return e.err.Error() }
func (e *retryLater) Unwrap() error { return e.err }

// waitTurn says an earlier message to the same contact must leave first;
// retrying, that it waits for a retry after a failed attempt; queued is
// when the waiting message was queued.
type waitTurn struct {
	retrying bool
	queued   time.Time
}

func (w *waitTurn) Error() string { return "an earlier message to the contact is not sent yet" }

// sendOne sends one message, left being how many of the job's are left
// with it. The attempt is committed before the platform is called. A retry
// that finds an attempt whose outcome was never recorded (the call was
// cut off, or the process died between the call and the update) asks the
// platform when it can (a Reconciler): found, the message is sent; not
// there, it is sent now. Where the platform cannot be asked the message
// fails as uncertain, for a person to check and resend: it is never sent
// twice on a guess. A message sent is left in run.done for the next
// transaction to record.
func (p *Pipeline) sendOne(ctx context.Context, run *sendRun, messageID int64, left int) error {
	start := time.Now()
	job := run.job
	var st *store.SendState
	var sender channel.Sender
	proceed, reconcile := false, false
	done := run.done
	run.done = nil
	err := p.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if done != nil {
			if err := p.recordSent(ctx, done, tx); err != nil {
				return err
			}
		}
		var err error
		if st, err = p.messages.LockOutbound(ctx, tx, messageID, p.cfg.RescueAfter+time.Minute, run.contact); err != nil {
			if models.ErrorCode(err) == models.ENOTFOUND {
				return nil // erased with its contact: nothing to send
			}
			return err
		}
		run.contact = st.Contact
		fail := func(code, reason string) error {
			p.metrics.sends.WithLabelValues(st.Message.Provider, code).Inc()
			return p.failSend(ctx, tx, st, code, reason)
		}
		switch st.Message.Status {
		case models.StatusQueued:
		case models.StatusSending:
			if _, ok := p.senders[st.Message.Provider].(channel.Reconciler); !ok {
				return fail(codeUncertain, uncertainReason)
			}
			sender, proceed, reconcile = p.senders[st.Message.Provider], true, true
			return nil
		default:
			return nil // sent, delivered or failed already: a duplicate job
		}
		if st.Waiting {
			return nil
		}
		if code, reason, err := p.mayNotSend(ctx, tx, st, job.Args.OptOutConfirmation); err != nil || code != "" {
			if err != nil {
				return err
			}
			return fail(code, reason)
		}
		sender, proceed = p.senders[st.Message.Provider], true
		return p.messages.BeginAttempt(ctx, tx, st.Message.ID)
	})
	if err != nil && done != nil {
		// The transaction that was to record it did not commit.
		rctx, cancel := settling(ctx)
		defer cancel()
		if rerr := p.recordSent(rctx, done, nil); rerr != nil {
			return rerr
		}
	}
	if err == nil && st != nil && st.Waiting && st.Message.Status == models.StatusQueued {
		return &waitTurn{retrying: st.Retrying, queued: st.Message.CreatedAt}
	}
	if err != nil || !proceed {
		return err
	}
	out := channel.Outbound{To: address(st.Contact), Body: st.Message.Body, Template: st.Message.Template}
	if reconcile {
		found, err := p.reconcile(ctx, job, st, sender, out)
		if err != nil || found {
			return err
		}
		// The platform does not have it: this attempt sends it.
		if err := p.messages.BeginAttempt(ctx, nil, st.Message.ID); err != nil {
			return err
		}
	}

	if err := p.waitForSlot(ctx, run, st.Message.Provider, left); err != nil {
		// Not called: the attempt did not happen.
		rctx, cancel := settling(ctx)
		defer cancel()
		_ = p.messages.FinishAttempt(rctx, nil, st.Message.ID, models.StatusQueued, "", "", "")
		return err
	}
	providerID, sendErr := p.call(ctx, sender, st.Message.Provider, out)
	if errors.Is(sendErr, errNotCalled) {
		rctx, cancel := settling(ctx)
		defer cancel()
		_ = p.messages.FinishAttempt(rctx, nil, st.Message.ID, models.StatusQueued, "", "", "")
		return ctx.Err()
	}
	if sendErr != nil && ctx.Err() != nil {
		// Killed mid-call (shutdown past its grace, or a lost lease): the
		// platform may have the message. Leave the attempt open; the retry
		// asks the platform, or reports it as uncertain, instead of
		// sending twice.
		return ctx.Err()
	}
	// Record the outcome even if ctx ends now.
	ctx, cancel := settling(ctx)
	defer cancel()
	p.metrics.jobLatency.WithLabelValues("send_message").Observe(time.Since(start).Seconds())
	if sendErr == nil {
		p.metrics.sends.WithLabelValues(st.Message.Provider, "sent").Inc()
		run.done = &sentRecord{st: st, sender: sender, providerID: providerID}
		return nil
	}
	return p.settleFailure(ctx, st, sender, sendErr, job.Attempt >= job.MaxAttempts)
}

// settleFailure records a call to the platform that failed with sendErr,
// as the send job and the batch both do. Nil: the message failed for good
// (recorded, with the reason), and the next one may go. Else it is to be
// tried again: queued, or, when the platform may have it and can be asked,
// left "sending" for the retry to ask (retryLater says when the platform
// wants it). On the last try (lastTry) nothing is left to a retry.
func (p *Pipeline) settleFailure(ctx context.Context, st *store.SendState, sender channel.Sender, sendErr error, lastTry bool) error {
	se := channel.AsSendError(sendErr)
	if se == nil {
		se = &channel.SendError{Provider: st.Message.Provider, Reason: "The send failed.", Retryable: true}
	}
	if se.Uncertain {
		// The platform may have it: sending again could deliver it twice.
		if _, ok := sender.(channel.Reconciler); ok && !lastTry {
			// Leave the attempt open: the retry asks the platform.
			p.metrics.sends.WithLabelValues(st.Message.Provider, "reconcile").Inc()
			return &retryLater{after: reconcileAfter, err: sendErr}
		}
		p.metrics.sends.WithLabelValues(st.Message.Provider, "uncertain").Inc()
		return p.failSend(ctx, nil, st, codeUncertain, se.Reason)
	}
	if se.Throttled {
		// Refused for the platform's rate: not taken, so sent again later
		// (the gate slowed down), however many attempts were used.
		p.metrics.sends.WithLabelValues(st.Message.Provider, "throttled").Inc()
		if err := p.messages.FinishAttempt(ctx, nil, st.Message.ID, models.StatusQueued, "", se.Code, se.Reason); err != nil {
			return err
		}
		return &retryLater{after: max(se.RetryAfter, throttlePause), err: sendErr, throttled: true}
	}
	if !se.Retryable {
		p.metrics.sends.WithLabelValues(st.Message.Provider, "failed").Inc()
		if se.OptedOut {
			if err := p.contacts.SetOptedOut(ctx, nil, st.Contact.ID, true); err != nil {
				return err
			}
			st.Contact.OptedOut = true // the job's later messages are refused
		}
		return p.failSend(ctx, nil, st, se.Code, se.Reason)
	}
	if lastTry {
		p.metrics.sends.WithLabelValues(st.Message.Provider, "gave_up").Inc()
		return p.failSend(ctx, nil, st, codeGaveUp,
			fmt.Sprintf("Gave up after %d attempts: %s", st.Attempts+1, se.Reason))
	}
	p.metrics.sends.WithLabelValues(st.Message.Provider, "retry").Inc()
	if err := p.messages.FinishAttempt(ctx, nil, st.Message.ID, models.StatusQueued, "", se.Code, se.Reason); err != nil {
		return err
	}
	return &retryLater{after: se.RetryAfter, err: sendErr}
}

// slotLater says the send rate cap has no slot for this send within the
// job's time limit: the job comes back when one may be free (a snooze, not
// an attempt).
type slotLater struct{ after time.Duration }

func (e *slotLater) Error() string { return "no send slot within the job's time limit" }

// slotsAhead is how many send slots a job reserves at once at most: one
// reservation for a job's replies instead of one a message.
const slotsAhead = 16

// waitForSlot waits for the provider's next send slot under the rate cap
// every instance shares, within the job's time limit (less a second to
// make the call); a slot further off is not taken (slotLater). Slots are
// reserved for up to left of the job's messages at once; those a job does
// not use only go unused.
func (p *Pipeline) waitForSlot(ctx context.Context, run *sendRun, provider string, left int) error {
	rate := p.cfg.rate(provider)
	interval := time.Duration(float64(time.Second) / rate)
	if run.slots == 0 || run.provider != provider {
		within := p.cfg.JobTimeout
		if deadline, ok := ctx.Deadline(); ok {
			within = time.Until(deadline)
		}
		within -= time.Second
		// As many as come within half the time left, so the job has time to use them.
		n := max(1, min(left, slotsAhead, int(rate*within.Seconds()/2)))
		wait, reserved, err := p.slots.Take(ctx, provider, rate, p.cfg.SendBurst, max(within, 0), n)
		switch {
		case err != nil:
			return err
		case !reserved:
			return &slotLater{after: wait}
		}
		run.slots, run.provider, run.slotAt = n, provider, time.Now().Add(wait)
	}
	wait := time.Until(run.slotAt)
	run.slots--
	run.slotAt = run.slotAt.Add(interval)
	if wait <= 0 {
		return nil
	}
	return sleep(ctx, wait)
}

// settleGrace bounds what is recorded after a job's own time is up (what
// the platform took or refused): long enough for a healthy database,
// short of waiting on a hung one for ever.
const settleGrace = 10 * time.Second

// settling returns the context in which the outcome of a call to the
// platform is recorded: it outlives ctx's end, by at most settleGrace.
func settling(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), settleGrace)
}

// optedOutReason tells staff why nothing is sent to a contact.
const optedOutReason = "The contact opted out (STOP); nothing more is sent until they send START."

// uncertainReason tells staff what an unknown outcome means.
const uncertainReason = "A send was interrupted after it started; it may or may not have arrived. Check with the contact before resending."

// reconcileAfter is how soon a send whose answer was lost asks the
// platform whether it has the message: long enough for the platform to
// list what it took.
const reconcileAfter = 2 * time.Second

// reconcile asks the platform whether an attempt whose outcome was never
// recorded reached it. A message it holds that Parley has not recorded is
// this one: recorded sent, found. Nothing: not found, to be sent. When the
// platform cannot be asked, the job retries; on its last attempt the
// message fails as uncertain rather than staying "sending" for ever.
func (p *Pipeline) reconcile(ctx context.Context, job *river.Job[SendArgs], st *store.SendState, sender channel.Sender, out channel.Outbound) (bool, error) {
	provider := st.Message.Provider
	attempted, err := p.messages.AttemptedAt(ctx, st.Message.ID)
	if err != nil {
		return false, err
	}
	// A minute's slack for the clocks of Parley and the platform.
	ids, err := sender.(channel.Reconciler).Lookup(ctx, out, attempted.Add(-time.Minute))
	if err != nil {
		if job.Attempt < job.MaxAttempts {
			return false, err
		}
		p.metrics.sends.WithLabelValues(provider, "uncertain").Inc()
		rctx, cancel := settling(ctx)
		defer cancel()
		return true, p.failSend(rctx, nil, st, codeUncertain, uncertainReason)
	}
	for _, id := range ids {
		known, err := p.messages.ProviderIDKnown(ctx, provider, id)
		if err != nil {
			return false, err
		}
		if !known {
			p.metrics.sends.WithLabelValues(provider, "reconciled_sent").Inc()
			rctx, cancel := settling(ctx)
			defer cancel()
			return true, p.recordSent(rctx, &sentRecord{st: st, sender: sender, providerID: id}, nil)
		}
	}
	p.metrics.sends.WithLabelValues(provider, "reconciled_absent").Inc()
	return false, nil
}

// failSend records a send as failed, with a code and a reason a person can
// act on, and reports it; inside tx, or a transaction of its own (nil).
func (p *Pipeline) failSend(ctx context.Context, tx *gorm.DB, st *store.SendState, code, reason string) error {
	// Given a transaction, the message is locked in it already: an erasure
	// waits for it and then sees the event. Else the outcome comes after
	// the call, and the contact may be gone.
	after := tx == nil
	record := func(tx *gorm.DB) error {
		m := *st.Message
		m.Status = models.StatusFailed
		jobs := p.event(EventMessageFailed, st.Contact, &m, map[string]any{"error_code": code})
		if after {
			var err error
			if jobs, err = p.forLiving(ctx, tx, jobs); err != nil {
				return err
			}
		}
		if err := p.messages.FinishAttempt(ctx, tx, st.Message.ID, models.StatusFailed, "", code, reason); err != nil {
			return err
		}
		return p.emit(ctx, tx, jobs)
	}
	return p.inTx(ctx, tx, p.events == nil, record)
}

// inTx runs fn inside tx, or with none in a transaction of its own, unless
// fn writes a single statement (single), which then needs none.
func (p *Pipeline) inTx(ctx context.Context, tx *gorm.DB, single bool, fn func(tx *gorm.DB) error) error {
	switch {
	case tx != nil:
		return fn(tx)
	case single:
		return fn(nil)
	}
	return p.db.Gorm.WithContext(ctx).Transaction(fn)
}

// recordSent records a message the platform took, and when the platform
// is asked for statuses rather than pushing them, schedules the first ask;
// inside tx, or a transaction of its own (nil).
func (p *Pipeline) recordSent(ctx context.Context, r *sentRecord, tx *gorm.DB) error {
	_, polled := r.sender.(channel.StatusChecker)
	record := func(tx *gorm.DB) error {
		jobs, err := p.forLiving(ctx, tx, p.sentJobs(r))
		if err != nil {
			return err
		}
		if err := p.messages.FinishAttempt(ctx, tx, r.st.Message.ID, models.StatusSent, r.providerID, "", ""); err != nil {
			return err
		}
		return p.enqueueMany(ctx, tx, jobs)
	}
	return p.inTx(ctx, tx, !polled && p.events == nil, record)
}

// sentJobs are the jobs a message the platform took queues: its event,
// and the first ask for its status when the platform is asked rather than
// pushing statuses to its webhook.
func (p *Pipeline) sentJobs(r *sentRecord) []river.InsertManyParams {
	m := *r.st.Message
	m.Status = models.StatusSent
	jobs := p.event(EventMessageSent, r.st.Contact, &m, map[string]any{"provider_message_id": r.providerID})
	if _, polled := r.sender.(channel.StatusChecker); polled {
		poll := StatusPollArgs{MessageID: m.ID, Provider: m.Provider, SentAt: time.Now()}
		jobs = append(jobs, river.InsertManyParams{Args: poll, InsertOpts: &river.InsertOpts{ScheduledAt: time.Now().Add(firstPoll), MaxAttempts: 10}})
	}
	return jobs
}

// mayNotSend is refusal for the message of st, and says so too when no
// sender is configured for its provider.
func (p *Pipeline) mayNotSend(ctx context.Context, tx *gorm.DB, st *store.SendState, optOutConfirmation bool) (code, reason string, err error) {
	ch := st.Message.Channel
	if st.Message.Template != nil && ch == models.ChannelWhatsApp {
		// An approved template is what WhatsApp takes outside the window:
		// only the opt-out is asked about (ch "" skips the window).
		ch = ""
	}
	if code, reason, err = p.refusal(ctx, tx, st.Contact, ch, optOutConfirmation); err != nil || code != "" {
		return code, reason, err
	}
	if p.senders[st.Message.Provider] == nil {
		return codeNoSender, "No sender is configured for " + st.Message.Provider + ".", nil
	}
	return "", "", nil
}

// refusal says why nothing may be sent to contact on ch now (the code and
// a reason a person can act on), or "" when it may: the contact opted out
// (unless this confirms the opt-out), or WhatsApp's 24-hour window has
// closed. The send job and staff replies ask the same question.
func (p *Pipeline) refusal(ctx context.Context, tx *gorm.DB, contact *models.Contact, ch models.Channel, optOutConfirmation bool) (code, reason string, err error) {
	if contact.OptedOut && !optOutConfirmation {
		return codeOptedOut, optedOutReason, nil
	}
	if ch == models.ChannelWhatsApp {
		last, err := p.messages.LastInbound(ctx, tx, contact.ID, models.ChannelWhatsApp)
		if err != nil {
			return "", "", err
		}
		if time.Since(last) > p.cfg.WhatsAppWindow {
			return codeWindow, "More than 24 hours since the contact last wrote on WhatsApp: only an approved template message can be sent now.", nil
		}
	}
	return "", "", nil
}

// address is the contact's address as platforms take it.
func address(c *models.Contact) string {
	switch c.Channel {
	case models.ChannelWhatsApp, models.ChannelSimulator:
		return string(c.Channel) + ":" + c.Address
	}
	return c.Address
}
