package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/tracing"
	"github.com/parley-chat/parley/models"
)

// SendBatchArgs asks for the replies to several contacts through one
// provider to be sent: each run (one contact's messages) in order, the
// runs side by side. Processing a wave of contacts queues one.
type SendBatchArgs struct {
	Provider string    `json:"provider"`
	Runs     [][]int64 `json:"runs"`
	// Contacts are the runs' contacts, one a run: a batch waiting in the
	// queue takes in the runs of later processing (mergeSends) only for
	// contacts it does not hold yet, so a contact's runs never go side by
	// side.
	Contacts []int64         `json:"contacts,omitempty"`
	Trace    tracing.Carrier `json:"trace,omitempty"`
}

// Kind implements river.JobArgs.
func (SendBatchArgs) Kind() string { return "send_batch" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (SendBatchArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: queueSend} }

// sendBatchMax is how many messages one batch through provider holds at
// most: what its rate cap lets out in a quarter of a job's time limit, so
// that a batch finishes in time, and no more than 64.
func (c *Config) sendBatchMax(provider string) int {
	return min(64, int(c.rate(provider)*c.JobTimeout.Seconds()/4))
}

type sendBatchWorker struct {
	river.WorkerDefaults[SendBatchArgs]
	p *Pipeline
}

// NextRetry retries soon: a batch that failed committed nothing it would
// do twice.
func (w *sendBatchWorker) NextRetry(job *river.Job[SendBatchArgs]) time.Time {
	return time.Now().Add(w.p.backoff(job.Attempt))
}

// Work sends the batch's messages with a few statements for all of them:
// one transaction locks them, fails those that may not go (with the
// reason) and begins every other attempt; the calls are made, several
// contacts at once and each contact's in order; one transaction records
// what the platform took.
//
// A contact whose messages cannot simply go (an earlier message waiting
// out a retry, an attempt a crash left open, a call to be retried) is
// handed to a send job of its own (SendArgs), which waits, asks the
// platform, retries: one contact's trouble never holds up the others. A
// contact whose earlier message is still on its way (in another job)
// keeps the batch instead, which looks again shortly, for a while here
// and then in a snooze, passing over what it sent; but a pass that hands
// anything on ends the batch, handing on all it leaves, so that no
// message is ever in two jobs.
func (w *sendBatchWorker) Work(ctx context.Context, job *river.Job[SendBatchArgs]) error {
	p := w.p
	start := time.Now()
	ctx, span := tracing.Tracer().Start(tracing.Extract(ctx, job.Args.Trace), "send_batch")
	defer span.End()
	deadline := start.Add(p.cfg.JobTimeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	// Looking again here spares a waiting contact the queue's next fetch;
	// past a quarter of the job's time the batch snoozes instead.
	lookUntil := start.Add(time.Until(deadline) / 4)
	defer func() { p.metrics.jobLatency.WithLabelValues("send_batch").Observe(time.Since(start).Seconds()) }()
	runs := job.Args.Runs
	for {
		waiting, after, err := p.sendPass(ctx, job, runs, time.Until(deadline))
		if err != nil || len(waiting) == 0 {
			return err
		}
		if time.Now().Add(after).After(lookUntil) {
			return river.JobSnooze(after)
		}
		if sleep(ctx, after) != nil {
			return river.JobSnooze(after) // stopping: nothing of this pass is left open
		}
		runs = waiting
	}
}

// sendPass is one pass of a batch over runs, with left of the job's time.
// It returns the runs still waiting for an earlier message of their
// contact on its way, and how soon to look at them again; or an error
// (a snooze among them) that ends the job.
func (p *Pipeline) sendPass(ctx context.Context, job *river.Job[SendBatchArgs], runs [][]int64, left time.Duration) (waiting [][]int64, after time.Duration, err error) {
	within := (left - time.Second) / 2 // the calls need time too
	rate := p.cfg.rate(job.Args.Provider)
	interval := time.Duration(float64(time.Second) / rate)
	var all int
	for _, ids := range runs {
		all += len(ids)
	}
	if time.Duration(all)*interval > within {
		// The rate cap was lowered since the batch was queued (or its
		// time is nearly up): too many for this job.
		return nil, 0, p.enqueueMany(ctx, nil, p.sendsAlone(runs, job.Args.Trace))
	}
	b, err := p.beginBatch(ctx, runs, job.Args.Trace)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, err // cancelled: nothing was committed; River tries again
		}
		// One message that cannot be read (say, a body that no longer
		// opens) must not hold up the rest: each run goes on alone.
		p.log.Warn("a batch of sends failed together; each contact's go on alone",
			slog.Int("contacts", len(runs)), slog.String("error", err.Error()))
		if ierr := p.enqueueMany(ctx, nil, p.sendsAlone(runs, job.Args.Trace)); ierr != nil {
			return nil, 0, fmt.Errorf("send batch: %w; handing it on: %w", err, ierr)
		}
		return nil, 0, nil
	}
	var wait time.Duration
	reserved := false
	if b.begun > 0 {
		if wait, reserved, err = p.slots.Take(ctx, job.Args.Provider, rate, p.cfg.SendBurst, max(within, 0), b.begun); reserved {
			p.sendRuns(ctx, b.runs, &slotClock{next: time.Now().Add(wait), interval: interval})
		}
	}
	// Recorded even when the job's time is up: the platform has those.
	handed, ferr := p.finishBatch(ctx, job.Args.Trace, b, reserved)
	switch {
	case ferr != nil:
		return nil, 0, ferr
	case handed:
		return nil, 0, nil // all it left goes on elsewhere
	case err != nil:
		return nil, 0, err // no slots to be had: nothing begun is left
	case b.begun > 0 && !reserved:
		return nil, 0, river.JobSnooze(max(wait, 10*time.Millisecond))
	}
	return b.waiting, turnWait(time.Since(b.queued), false), nil
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sendsAlone returns a send job of its own for each run.
func (p *Pipeline) sendsAlone(runs [][]int64, trace tracing.Carrier) []river.InsertManyParams {
	out := make([]river.InsertManyParams, 0, len(runs))
	for _, ids := range runs {
		out = append(out, p.sendAlone(ids, trace, 0))
	}
	return out
}

// sendAlone is the send job of one contact's messages, after a delay.
func (p *Pipeline) sendAlone(ids []int64, trace tracing.Carrier, after time.Duration) river.InsertManyParams {
	opts := &river.InsertOpts{MaxAttempts: p.cfg.MaxSendTries}
	if after > 0 {
		opts.ScheduledAt = time.Now().Add(after)
	}
	return river.InsertManyParams{Args: SendArgs{MessageIDs: ids, Trace: trace}, InsertOpts: opts}
}

// batchStart is what one pass of a batch began: the runs to send now and
// how many messages they hold, the runs to hand on (not yet inserted),
// and what is left of the runs waiting for an earlier message, the first
// of which was queued at queued.
type batchStart struct {
	runs    []*batchRun
	begun   int
	handed  []river.InsertManyParams
	waiting [][]int64
	queued  time.Time
}

// batchRun is one contact's messages begun in a pass, as they go.
type batchRun struct {
	ids  []int64            // the run's message ids, from the first begun
	msgs []*store.SendState // those begun, in order
	sent []sentRecord       // those the platform took
	// done counts msgs dealt with: sent, or failed for good (recorded).
	// When some are left, msgs[done] goes on in a job of its own after
	// the delay (after), with the rest of the run; called says the
	// platform was called for it (its attempt is settled, or left open
	// for that job to ask about), and those after it never were.
	done   int
	called bool
	after  time.Duration
}

// beginBatch locks the batch's messages and begins the attempts of those
// that go now, in one transaction. Messages sent or failed already (the
// batch came back) are passed over; one that may not go is failed with
// the reason.
func (p *Pipeline) beginBatch(ctx context.Context, runs [][]int64, trace tracing.Carrier) (*batchStart, error) {
	var b *batchStart
	err := p.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		b = &batchStart{}
		var all []int64
		for _, ids := range runs {
			all = append(all, ids...)
		}
		states, err := p.messages.LockOutbounds(ctx, tx, all, p.cfg.RescueAfter+time.Minute)
		if err != nil {
			return err
		}
		var begin []int64
		for _, ids := range runs {
			r := &batchRun{}
			// What may refuse a run's messages is its contact's: asked once
			// (a WhatsApp window is a statement).
			var refused struct {
				asked        bool
				code, reason string
			}
		run:
			for i, id := range ids {
				st := states[id]
				if st == nil || st.Contact == nil {
					continue // erased
				}
				switch st.Message.Status {
				case models.StatusQueued:
				case models.StatusSending:
					// Open since a crash or a cut-off call: its own job asks the platform.
					b.handed = append(b.handed, p.sendAlone(ids[i:], trace, 0))
					break run
				default:
					continue // sent or failed already
				}
				if len(r.msgs) == 0 && st.Waiting {
					if st.Retrying || time.Since(st.Message.CreatedAt) > 30*time.Second {
						b.handed = append(b.handed, p.sendAlone(ids[i:], trace, 0))
						break run
					}
					if len(b.waiting) == 0 || st.Message.CreatedAt.Before(b.queued) {
						b.queued = st.Message.CreatedAt
					}
					b.waiting = append(b.waiting, ids[i:])
					break run
				}
				if !refused.asked {
					code, reason, err := p.mayNotSend(ctx, tx, st, false)
					if err != nil {
						return err
					}
					refused.asked, refused.code, refused.reason = true, code, reason
				}
				code, reason := refused.code, refused.reason
				if code != "" {
					p.metrics.sends.WithLabelValues(st.Message.Provider, code).Inc()
					if err := p.failSend(ctx, tx, st, code, reason); err != nil {
						return err
					}
					continue
				}
				if r.msgs == nil {
					r.ids = ids[i:]
				}
				r.msgs = append(r.msgs, st)
				begin = append(begin, id)
			}
			if len(r.msgs) > 0 {
				b.runs = append(b.runs, r)
			}
		}
		b.begun = len(begin)
		return p.messages.BeginAttempts(ctx, tx, begin)
	})
	return b, err
}

// slotClock deals out the send slots a batch reserved, one interval apart.
type slotClock struct {
	mu       sync.Mutex
	next     time.Time
	interval time.Duration
}

// wait waits for the next slot, or for ctx to end.
func (c *slotClock) wait(ctx context.Context) error {
	c.mu.Lock()
	at := c.next
	c.next = c.next.Add(c.interval)
	c.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	return sleep(ctx, d)
}

// sendRuns makes the calls of the runs, all the runs at once (each in
// order): how many calls are out at a time is the provider's gate's to
// say (sized by its rate and latency), not the batch's.
func (p *Pipeline) sendRuns(ctx context.Context, runs []*batchRun, slots *slotClock) {
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Go(func() { p.sendRun(ctx, r, slots) })
	}
	wg.Wait()
}

// sendRun calls the platform for a run's messages in order, stopping at
// the first one to be tried again; one failed for good is recorded and
// the next goes on. A call cut off (ctx ended) leaves its attempt open.
func (p *Pipeline) sendRun(ctx context.Context, r *batchRun, slots *slotClock) {
	for _, st := range r.msgs {
		if st.Contact.OptedOut {
			// The platform refused an earlier one as opted out (settleFailure noted it).
			p.metrics.sends.WithLabelValues(st.Message.Provider, codeOptedOut).Inc()
			if err := p.failSend(ctx, nil, st, codeOptedOut, optedOutReason); err != nil {
				return // it goes on in a job of its own, which settles it
			}
			r.done++
			continue
		}
		if slots.wait(ctx) != nil {
			return
		}
		sender := p.senders[st.Message.Provider]
		providerID, sendErr := p.call(ctx, sender, st.Message.Provider, channel.Outbound{To: address(st.Contact), Body: st.Message.Body, Template: st.Message.Template})
		if errors.Is(sendErr, errNotCalled) {
			return // the job's time is up before the gate let it go: not called
		}
		if sendErr == nil {
			p.metrics.sends.WithLabelValues(st.Message.Provider, "sent").Inc()
			r.sent = append(r.sent, sentRecord{st: st, sender: sender, providerID: providerID})
			r.done++
			continue
		}
		r.called = true
		if ctx.Err() != nil {
			return // the platform may have it: its own job asks
		}
		sctx, cancel := settling(ctx)
		err := p.settleFailure(sctx, st, sender, sendErr, false)
		cancel()
		if err == nil {
			r.done, r.called = r.done+1, false // failed for good: the next goes on
			continue
		}
		r.after = p.backoff(1)
		if later := (*retryLater)(nil); errors.As(err, &later) {
			r.after = max(r.after, later.after)
		}
		return
	}
}

// finishBatch records, in one transaction, the messages the platform
// took and takes back the attempts of those never called (all of them
// when no calls were made). What is left of a run stopped on the way goes
// on in a job of its own, with those beginBatch handed on; and when any
// does, so does everything the batch leaves (it then ends). It reports
// whether anything was handed on.
func (p *Pipeline) finishBatch(ctx context.Context, trace tracing.Carrier, b *batchStart, called bool) (handed bool, err error) {
	ctx, cancel := settling(ctx) // on after the job's time is up: the platform has those messages
	defer cancel()
	var ids, undo []int64
	var providerIDs []string
	var jobs, rest []river.InsertManyParams
	for _, r := range b.runs {
		for i := range r.sent {
			s := &r.sent[i]
			ids, providerIDs = append(ids, s.st.Message.ID), append(providerIDs, s.providerID)
			jobs = append(jobs, p.sentJobs(s)...)
		}
		if r.done == len(r.msgs) {
			continue
		}
		first := r.done
		if r.called {
			first++
		}
		for _, st := range r.msgs[first:] {
			undo = append(undo, st.Message.ID)
		}
		from := r.ids[slices.Index(r.ids, r.msgs[r.done].Message.ID):]
		if called {
			b.handed = append(b.handed, p.sendAlone(from, trace, r.after))
		} else {
			rest = append(rest, p.sendAlone(from, trace, 0))
		}
	}
	if handed = len(b.handed) > 0; handed {
		jobs = append(append(jobs, b.handed...), rest...)
		jobs = append(jobs, p.sendsAlone(b.waiting, trace)...)
	}
	if len(ids) == 0 && len(undo) == 0 && len(jobs) == 0 {
		return false, nil
	}
	return handed, p.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		jobs, err := p.forLiving(ctx, tx, jobs)
		if err != nil {
			return err
		}
		if err := p.messages.FinishSent(ctx, tx, ids, providerIDs); err != nil {
			return err
		}
		if err := p.messages.UndoAttempts(ctx, tx, undo); err != nil {
			return err
		}
		return p.enqueueMany(ctx, tx, jobs)
	})
}
