package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/tracing"
	"github.com/parley-chat/parley/models"
)

// ProcessArgs asks for a contact's unprocessed messages to be processed.
// One job is enqueued per contact in each ingest batch; jobs for one contact serialise on
// the contact's row lock, and a job that finds nothing left does nothing.
type ProcessArgs struct {
	ContactID int64           `json:"contact_id"`
	Held      int64           `json:"held,omitempty"`  // a check when a held message's wait ends (its id)
	Trace     tracing.Carrier `json:"trace,omitempty"` // the trace of the webhook that queued it
}

// Kind implements river.JobArgs.
func (ProcessArgs) Kind() string { return "process_contact" }

type processWorker struct {
	river.WorkerDefaults[ProcessArgs]
	p *Pipeline
}

// NextRetry retries a failed processing soon: nothing was committed.
func (w *processWorker) NextRetry(job *river.Job[ProcessArgs]) time.Time {
	return time.Now().Add(w.p.backoff(job.Attempt))
}

// Work processes the contact's messages in order, in one transaction:
// replies are stored and their sends enqueued with the messages marked
// processed, so a crash anywhere replays from the start, and a replay
// finds the messages already processed. The last try goes message by
// message, setting aside one that still fails so the others go on.
func (w *processWorker) Work(ctx context.Context, job *river.Job[ProcessArgs]) error {
	p := w.p
	start := time.Now()
	ctx, span := tracing.Tracer().Start(tracing.Extract(ctx, job.Args.Trace), "process_contact")
	defer span.End()
	// A job whose messages an earlier one took (one is queued per ingest)
	// ends at a glance, without a transaction or the lock: what a message
	// committed after this look needs is its own job.
	if pending, err := p.messages.HasUnprocessed(ctx, job.Args.ContactID); err == nil && !pending {
		return nil
	}
	defer p.paceProcessing(ctx)()
	var handled, setAside int
	err := p.underContact(ctx, job.Args.ContactID, func(tx *gorm.DB, contact *models.Contact) error {
		var ids []int64
		var err error
		if job.Attempt >= p.cfg.MaxProcessTries {
			ids, setAside, err = p.processEachOrSetAside(ctx, tx, contact, job.Attempt)
		} else {
			ids, err = p.processAll(ctx, tx, contact)
		}
		if err != nil {
			return err
		}
		handled = len(ids)
		return p.messages.MarkProcessed(ctx, tx, ids)
	})
	if err != nil {
		return fmt.Errorf("process contact %d: %w", job.Args.ContactID, err)
	}
	if setAside > 0 {
		p.metrics.setAside.Add(float64(setAside))
	}
	if handled > 0 {
		p.metrics.processed.Add(float64(handled))
		p.metrics.jobLatency.WithLabelValues("process_contact").Observe(time.Since(start).Seconds())
	}
	return nil
}

// processAll processes the contact's messages in order and returns the
// ids of those processed; any failure fails them all. The jobs of all
// their outcomes go in together at the end, the replies to all of them in
// one send job (a job per message would have each wait for the one before).
func (p *Pipeline) processAll(ctx context.Context, tx *gorm.DB, contact *models.Contact) ([]int64, error) {
	pending, err := p.messages.Unprocessed(ctx, tx, contact.ID)
	if err != nil {
		return nil, err
	}
	jobs, err := p.newRun(ctx, tx, []int64{contact.ID})
	if err != nil {
		return nil, err
	}
	ids, err := p.processMessages(ctx, tx, contact, pending, jobs)
	if err != nil {
		return nil, err
	}
	return ids, p.flush(ctx, tx, jobs)
}

// processMessages runs a contact's pending messages through the
// responder in order, gathering their jobs and words in jobs, and returns
// the ids of those processed.
func (p *Pipeline) processMessages(ctx context.Context, tx *gorm.DB, contact *models.Contact, pending []*models.Message, jobs *runJobs) ([]int64, error) {
	jobs.send = 0 // a contact's replies never share another's send job
	ids := make([]int64, 0, len(pending))
	for _, in := range pending {
		deferred, err := p.processOne(ctx, tx, contact, in, jobs)
		if err != nil {
			return nil, err
		}
		if deferred {
			break // the rest wait, in order, for the AI layer's answer
		}
		ids = append(ids, in.ID)
	}
	return ids, nil
}

// ProcessBatchArgs asks for several contacts' messages to be processed in
// one transaction: one job for the contacts of one ingest commit.
type ProcessBatchArgs struct {
	ContactIDs []int64         `json:"contact_ids"`
	Trace      tracing.Carrier `json:"trace,omitempty"` // the trace of a webhook that queued it
}

// Kind implements river.JobArgs.
func (ProcessBatchArgs) Kind() string { return "process_contacts" }

// batchContacts is how many contacts one batch job takes at most: enough
// to share the round trips, few enough for several workers to share a
// wave of them.
const batchContacts = 64

// batchLockWait is how long a batch waits for the lock of a contact whose
// messages another job is processing (the batch of an earlier commit,
// typically, which takes milliseconds). Longer, and each contact goes on
// in a job of its own, without holding up the others.
const batchLockWait = 2 * time.Second

type processBatchWorker struct {
	river.WorkerDefaults[ProcessBatchArgs]
	p *Pipeline
}

// Work processes each contact's messages as processWorker does, all in
// one transaction: one statement locks the contacts (waiting for those
// another job holds at most batchLockWait), one reads their messages, and
// one each writes their words, their jobs (the replies' sends in one
// batch) and the marks that they were processed. When anything fails,
// every contact is handed to a job of its own: one contact's trouble
// (retried, and in the end set aside, by its own job) never holds up the
// others.
func (w *processBatchWorker) Work(ctx context.Context, job *river.Job[ProcessBatchArgs]) error {
	p := w.p
	start := time.Now()
	ctx, span := tracing.Tracer().Start(tracing.Extract(ctx, job.Args.Trace), "process_contacts")
	defer span.End()
	var handled int
	defer p.paceProcessing(ctx)()
	err := p.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		contacts, err := p.contacts.LockContacts(ctx, tx, job.Args.ContactIDs, batchLockWait)
		if err != nil {
			return err
		}
		locked := make([]int64, len(contacts))
		for i, c := range contacts {
			locked[i] = c.ID
		}
		pending, err := p.messages.UnprocessedOf(ctx, tx, locked)
		if err != nil {
			return err
		}
		jobs, err := p.newRun(ctx, tx, locked)
		if err != nil {
			return err
		}
		var done []int64
		for _, c := range contacts {
			ids, err := p.processMessages(ctx, tx, c, pending[c.ID], jobs)
			if err != nil {
				return err
			}
			done = append(done, ids...)
		}
		handled = len(done)
		p.batchSends(jobs)
		if err := p.flush(ctx, tx, jobs); err != nil {
			return err
		}
		return p.messages.MarkProcessed(ctx, tx, done)
	})
	if err != nil {
		if ctx.Err() != nil {
			return err // cancelled: nothing was committed; River tries again
		}
		p.log.Warn("a batch of contacts failed together; each goes on alone",
			slog.Int("contacts", len(job.Args.ContactIDs)), slog.String("error", err.Error()))
		each := make([]river.InsertManyParams, len(job.Args.ContactIDs))
		for i, id := range job.Args.ContactIDs {
			each[i] = alone(id, job.Args.Trace)
		}
		if ierr := p.enqueueMany(ctx, nil, each); ierr != nil {
			return fmt.Errorf("process contacts: %w; handing them on: %w", err, ierr)
		}
		return nil
	}
	if handled > 0 {
		p.metrics.processed.Add(float64(handled))
		p.metrics.jobLatency.WithLabelValues("process_contacts").Observe(time.Since(start).Seconds())
	}
	return nil
}

// alone is the job that processes one contact of a batch by itself.
func alone(contactID int64, trace tracing.Carrier) river.InsertManyParams {
	return river.InsertManyParams{Args: ProcessArgs{ContactID: contactID, Trace: trace}}
}

// NextRetry retries a failed batch soon: nothing was committed.
func (w *processBatchWorker) NextRetry(job *river.Job[ProcessBatchArgs]) time.Time {
	return time.Now().Add(w.p.backoff(job.Attempt))
}

// newRun begins a processing run over the contacts' messages in tx: with
// the responder's batch when it batches.
func (p *Pipeline) newRun(ctx context.Context, tx *gorm.DB, contactIDs []int64) (*runJobs, error) {
	b, ok := p.responder.(Batcher)
	if !ok {
		return &runJobs{}, nil
	}
	batch, err := b.Batch(ctx, tx, contactIDs)
	if err != nil {
		return nil, err
	}
	return &runJobs{batch: batch}, nil
}

// flush writes what a run gathered: what its responder keeps, its
// replies, the words of its messages, its jobs.
func (p *Pipeline) flush(ctx context.Context, tx *gorm.DB, r *runJobs) error {
	if r.batch != nil {
		if err := r.batch.Flush(ctx, tx); err != nil {
			return err
		}
	}
	if err := p.messages.InsertReplies(ctx, tx, r.replies); err != nil {
		return err
	}
	if err := p.messages.IndexWords(ctx, tx, r.words...); err != nil {
		return err
	}
	if err := p.flushPlans(ctx, tx, r); err != nil {
		return err
	}
	if err := p.mergeSends(ctx, tx, r); err != nil {
		return err
	}
	return p.enqueueMany(ctx, tx, r.all)
}

// mergeSends puts the run's sends (a contact's replies, or a batch of
// several contacts') into a send batch through the same provider that
// waits in the queue with room for them and none of their contacts, when
// there is one: while the send workers are busy, the replies of many small
// processing runs (one webhook's contact each) gather into batches whose
// calls all go at once, instead of a job a contact whose calls go one
// after another. The batch's row is locked here (a worker fetching it
// skips it until this commits, and one that took it first leaves it
// running, not available); what finds no batch is queued as it was.
func (p *Pipeline) mergeSends(ctx context.Context, tx *gorm.DB, r *runJobs) error {
	if len(r.replies) == 0 {
		return nil
	}
	byID := make(map[int64]*models.Message, len(r.replies))
	for _, m := range r.replies {
		byID[m.ID] = m
	}
	keep := make([]river.InsertManyParams, 0, len(r.all))
	var busy *bool // whether sends wait in the queue, once asked
	for _, j := range r.all {
		var runs [][]int64
		if j.InsertOpts != nil && !j.InsertOpts.ScheduledAt.IsZero() {
			keep = append(keep, j) // due later: a batch would send it now
			continue
		}
		switch a := j.Args.(type) {
		case SendArgs:
			if !a.OptOutConfirmation && len(a.MessageIDs) > 0 {
				runs = [][]int64{a.MessageIDs}
			}
		case SendBatchArgs:
			runs = a.Runs
		}
		provider, contacts, n := "", make([]int64, 0, len(runs)), 0
		for _, ids := range runs {
			m := byID[ids[0]]
			if m == nil || (provider != "" && m.Provider != provider) {
				runs = nil
				break
			}
			provider, contacts, n = m.Provider, append(contacts, m.ContactID), n+len(ids)
		}
		if len(runs) == 0 {
			keep = append(keep, j)
			continue
		}
		merged, err := p.mergeInto(ctx, tx, provider, runs, contacts, n)
		if err != nil {
			return err
		}
		if merged {
			continue
		}
		switch a := j.Args.(type) {
		case SendBatchArgs:
			a.Contacts = contacts
			j.Args = a
		case SendArgs:
			// While sends wait in the queue, a contact's replies start a
			// batch the next runs' replies can join.
			if busy == nil {
				b, err := p.sendsWaiting(ctx, tx)
				if err != nil {
					return err
				}
				busy = &b
			}
			if *busy {
				j = river.InsertManyParams{Args: SendBatchArgs{Provider: provider, Runs: runs, Contacts: contacts, Trace: a.Trace},
					InsertOpts: &river.InsertOpts{MaxAttempts: p.cfg.MaxSendTries}}
			}
		}
		keep = append(keep, j)
	}
	r.all = keep
	return nil
}

// sendsWaiting reports whether send jobs wait in the queue for a worker.
func (p *Pipeline) sendsWaiting(ctx context.Context, tx *gorm.DB) (bool, error) {
	var waiting bool
	err := tx.WithContext(ctx).Raw(`SELECT EXISTS (SELECT 1 FROM river_job WHERE state = 'available' AND queue = ?)`, queueSend).Scan(&waiting).Error
	return waiting, err
}

// mergeInto appends runs (of contacts, n messages) to a send batch through
// provider waiting in the queue, and reports whether one took them.
func (p *Pipeline) mergeInto(ctx context.Context, tx *gorm.DB, provider string, runs [][]int64, contacts []int64, n int) (bool, error) {
	runsJSON, err := json.Marshal(runs)
	if err != nil {
		return false, err
	}
	contactsJSON, err := json.Marshal(contacts)
	if err != nil {
		return false, err
	}
	var ids []int64
	err = tx.WithContext(ctx).Raw(`UPDATE river_job SET args = jsonb_set(jsonb_set(args, '{runs}', args->'runs' || ?::jsonb), '{contacts}', args->'contacts' || ?::jsonb)
		WHERE id = (SELECT j.id FROM river_job j
			WHERE j.state = 'available' AND j.queue = ? AND j.kind = ? AND j.attempt = 0 AND j.args->>'provider' = ?
				AND jsonb_typeof(j.args->'contacts') = 'array'
				AND (SELECT coalesce(sum(jsonb_array_length(r)), 0) FROM jsonb_array_elements(j.args->'runs') r) + ? <= ?
				AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(j.args->'contacts') c WHERE c::bigint = ANY(?::bigint[]))
			ORDER BY j.id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING id`, string(runsJSON), string(contactsJSON), queueSend, SendBatchArgs{}.Kind(), provider, n, p.cfg.sendBatchMax(provider), pq(contacts)).Scan(&ids).Error
	return len(ids) > 0, err
}

// pq is ids as a Postgres array literal.
func pq(ids []int64) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	b.WriteByte('}')
	return b.String()
}

// runJobs gathers the jobs a processing run queues (and the messages whose
// words it indexes, and the replies it stores), to insert with one
// statement each: consecutive replies share one send job, so they leave in
// the order they were written without waiting on one another's jobs.
type runJobs struct {
	all     []river.InsertManyParams
	send    int               // index in all of the send job being filled, +1 (0: none)
	words   []*models.Message // messages whose words are to be indexed
	replies []*models.Message // replies numbered, to be written
	// batch answers the run's messages when the responder batches (else
	// the responder does, message by message).
	batch BatchResponder
	plans []planOp // changes to scheduled messages, in order
}

// responder is what answers the run's messages.
func (r *runJobs) responder(p *Pipeline) Responder {
	if r.batch != nil {
		return r.batch
	}
	return p.responder
}

// add appends jobs, merging a send job into the one before it when both
// are of the same kind (an opt-out confirmation goes alone).
func (r *runJobs) add(jobs ...river.InsertManyParams) {
	for _, j := range jobs {
		s, ok := j.Args.(SendArgs)
		if !ok {
			r.all = append(r.all, j)
			continue
		}
		if r.send > 0 {
			prev := r.all[r.send-1].Args.(SendArgs)
			if prev.OptOutConfirmation == s.OptOutConfirmation {
				prev.MessageIDs = append(prev.MessageIDs, s.MessageIDs...)
				r.all[r.send-1].Args = prev
				continue
			}
		}
		r.all = append(r.all, j)
		r.send = len(r.all)
	}
}

// batchSends gathers the run's send jobs, one a contact, into batches of
// at most sendBatchMax messages through one provider (SendBatchArgs), so
// that a wave of replies leaves with a few statements for all of them. An
// opt-out confirmation keeps its own job, as does a contact who would be
// alone in a batch.
func (p *Pipeline) batchSends(r *runJobs) {
	provider := make(map[int64]string, len(r.replies))
	for _, m := range r.replies {
		provider[m.ID] = m.Provider
	}
	var keep []river.InsertManyParams
	filling := map[string]int{} // provider → index in batches
	var batches []SendBatchArgs
	var sizes []int
	for _, j := range r.all {
		s, ok := j.Args.(SendArgs)
		if !ok || s.OptOutConfirmation || len(s.MessageIDs) == 0 {
			keep = append(keep, j)
			continue
		}
		pr := provider[s.MessageIDs[0]]
		limit := p.cfg.sendBatchMax(pr)
		if len(s.MessageIDs) > limit {
			keep = append(keep, j)
			continue
		}
		i, ok := filling[pr]
		if !ok || sizes[i]+len(s.MessageIDs) > limit {
			i = len(batches)
			filling[pr] = i
			batches = append(batches, SendBatchArgs{Provider: pr, Trace: s.Trace})
			sizes = append(sizes, 0)
		}
		batches[i].Runs = append(batches[i].Runs, s.MessageIDs)
		sizes[i] += len(s.MessageIDs)
	}
	for _, b := range batches {
		if len(b.Runs) == 1 {
			keep = append(keep, p.sendAlone(b.Runs[0], b.Trace, 0))
			continue
		}
		keep = append(keep, river.InsertManyParams{Args: b, InsertOpts: &river.InsertOpts{MaxAttempts: p.cfg.MaxSendTries}})
	}
	r.all, r.send = keep, 0
}

// processEachOrSetAside processes the contact's messages one by one, each
// inside a savepoint. One that fails, down to not opening at all (a value
// that no longer decrypts, a pinned flow that no longer parses), has its
// work undone and is set aside: marked failed with the reason, and the
// contact's conversation handed to a person. The others go on.
func (p *Pipeline) processEachOrSetAside(ctx context.Context, tx *gorm.DB, contact *models.Contact, tries int) (processed []int64, setAside int, err error) {
	ids, err := p.messages.UnprocessedIDs(ctx, tx, contact.ID)
	if err != nil {
		return nil, 0, err
	}
	const savepoint = "process_message"
	for _, id := range ids {
		if err := tx.SavePoint(savepoint).Error; err != nil {
			return nil, 0, err
		}
		name := contact.Name
		in, err := p.messages.GetIn(ctx, tx, id)
		deferred := false
		if err == nil {
			var jobs runJobs // written inside the savepoint, undone with it
			if deferred, err = p.processOne(ctx, tx, contact, in, &jobs); err == nil {
				err = p.flush(ctx, tx, &jobs)
			}
		}
		if err == nil && deferred {
			break // the rest wait, in order, for the AI layer's answer
		}
		if err == nil {
			processed = append(processed, id)
			continue
		}
		if ctx.Err() != nil {
			return nil, 0, err // cancelled, not failing: try again later
		}
		if rerr := tx.RollbackTo(savepoint).Error; rerr != nil {
			return nil, 0, rerr
		}
		contact.Name = name // as the rollback left it
		reason := fmt.Sprintf("Processing failed %d times: %s A person should read this message and answer it.", tries, models.ErrorMessage(err))
		p.log.Error("inbound message set aside after repeated processing failures",
			slog.Int64("contact_id", contact.ID), slog.Int64("message_id", id), slog.Int("tries", tries), slog.String("error", err.Error()))
		if err := p.messages.SetAside(ctx, tx, id, codeProcessingFailed, reason); err != nil {
			return nil, 0, err
		}
		conv, err := p.convs.HandOffAfterFailure(ctx, tx, contact.ID, reason)
		if err != nil {
			return nil, 0, err
		}
		if conv != 0 {
			if err := p.emit(ctx, tx, p.event(EventHandedOff, contact, nil, map[string]any{"conversation_id": conv, "reason": codeProcessingFailed})); err != nil {
				return nil, 0, err
			}
		}
		setAside++
	}
	return processed, setAside, nil
}

// processOne runs one message through the responder; deferred reports
// that it must wait (unprocessed) for the AI layer. A profile name the
// platform sent with it names a contact who has none yet. Its replies,
// jobs and words go to jobs, for the caller to flush.
func (p *Pipeline) processOne(ctx context.Context, tx *gorm.DB, contact *models.Contact, in *models.Message, jobs *runJobs) (deferred bool, err error) {
	if contact.Name == "" && in.ProfileName != "" {
		if err := p.contacts.SetName(ctx, tx, contact.ID, in.ProfileName); err != nil {
			return false, err
		}
		contact.Name = in.ProfileName
	}
	if held, err := p.heard(ctx, tx, in); err != nil || held {
		return held, err // a voice note still being transcribed: it and those after it wait
	}
	rctx, span := tracing.Tracer().Start(ctx, "respond")
	out, err := jobs.responder(p).Respond(rctx, tx, contact, in)
	span.End()
	if err != nil {
		return false, err
	}
	if out != nil && out.Defer {
		return true, nil
	}
	jobs.words = append(jobs.words, indexed(in))
	jobs.add(p.event(EventMessageReceived, contact, in, nil)...)
	return false, p.applyTo(ctx, tx, contact, in.Provider, out, jobs)
}

// indexed is the message as its words are indexed: with what a voice note
// said, so a search finds spoken words too.
func indexed(in *models.Message) *models.Message {
	if in.Heard == nil || in.Heard.Transcript == "" {
		return in
	}
	m := *in
	m.Body = strings.TrimSpace(m.Body + " " + in.Heard.Transcript)
	return &m
}

// apply carries out a responder's outcome inside tx: opt-outs, replies
// stored and their sends queued, waits scheduled.
func (p *Pipeline) apply(ctx context.Context, tx *gorm.DB, contact *models.Contact, provider string, out *Outcome) error {
	var jobs runJobs
	if err := p.applyTo(ctx, tx, contact, provider, out, &jobs); err != nil {
		return err
	}
	return p.flush(ctx, tx, &jobs)
}

// applyTo is apply with the outcome's jobs added to jobs, for the caller
// to insert.
func (p *Pipeline) applyTo(ctx context.Context, tx *gorm.DB, contact *models.Contact, provider string, out *Outcome, jobs *runJobs) error {
	if out == nil {
		return nil
	}
	if out.OptOut || out.OptIn {
		contact.OptedOut = out.OptOut
		if err := p.contacts.SetOptedOut(ctx, tx, contact.ID, out.OptOut); err != nil {
			return err
		}
	}
	send := SendArgs{OptOutConfirmation: out.OptOut, Trace: tracing.Inject(ctx)}
	var replies []*models.Message
	for i, text := range out.Replies {
		if contact.OptedOut && !out.OptOut {
			break // nothing is sent to a contact who opted out, but the confirmation
		}
		m := &models.Message{
			ContactID: contact.ID, ConversationID: out.ConversationID, Direction: models.Outbound,
			Channel: contact.Channel, Provider: provider, Body: text, Status: models.StatusQueued, SentBy: out.SentBy,
		}
		if i < len(out.ReplyTemplates) {
			m.Template = out.ReplyTemplates[i]
		}
		if len(replies) == 0 && out.Template != nil {
			// a started conversation's opening, outside the window
			m.Template = out.Template
		}
		replies = append(replies, m)
	}
	// Numbered now, written with the run's others when it ends (flush).
	if err := p.messages.NumberReplies(ctx, tx, replies); err != nil {
		return err
	}
	jobs.replies = append(jobs.replies, replies...)
	for _, m := range replies {
		send.MessageIDs = append(send.MessageIDs, m.ID)
	}
	out.Queued = send.MessageIDs
	if len(send.MessageIDs) > 0 {
		// One job for the replies, so they leave in order.
		jobs.add(river.InsertManyParams{Args: send, InsertOpts: &river.InsertOpts{MaxAttempts: p.cfg.MaxSendTries}})
	}
	jobs.plan(contact, provider, out)
	for i, w := range out.Waits {
		w.Provider = provider
		jobs.add(river.InsertManyParams{Args: w, InsertOpts: &river.InsertOpts{ScheduledAt: time.Now().Add(out.WaitAfter[i])}})
	}
	switch {
	case out.Became == models.ConversationHandoff && out.ConversationID != nil:
		jobs.add(p.event(EventHandedOff, contact, nil, map[string]any{"conversation_id": *out.ConversationID})...)
	case out.Became == models.ConversationEnded && out.ConversationID != nil:
		jobs.add(p.event(EventEnded, contact, nil, map[string]any{"conversation_id": *out.ConversationID})...)
	}
	if out.AI != nil {
		a := *out.AI
		a.Provider = provider
		jobs.add(river.InsertManyParams{Args: a, InsertOpts: &river.InsertOpts{Queue: queueAI, MaxAttempts: p.cfg.MaxAITries}})
	}
	return nil
}

// underContact runs fn in a transaction holding the contact's row lock:
// everything that changes a contact's conversation takes turns this way.
func (p *Pipeline) underContact(ctx context.Context, contactID int64, fn func(tx *gorm.DB, contact *models.Contact) error) error {
	return p.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		contact, err := p.contacts.LockContact(ctx, tx, contactID)
		if err != nil {
			return err
		}
		return fn(tx, contact)
	})
}

// backoff is exponential with full jitter, from RetryBase up to RetryMax.
func (p *Pipeline) backoff(attempt int) time.Duration {
	d := p.cfg.RetryBase << min(attempt-1, 20)
	if d <= 0 || d > p.cfg.RetryMax {
		d = p.cfg.RetryMax
	}
	return d/2 + rand.N(d/2+1)
}

// SendArgs asks for stored outbound messages to be sent, in this order.
type SendArgs struct {
	MessageIDs []int64         `json:"message_ids"`
	Trace      tracing.Carrier `json:"trace,omitempty"` // the trace of the processing that wrote the replies
	// OptOutConfirmation lets the reply confirming an opt-out go to the
	// contact who just opted out.
	OptOutConfirmation bool `json:"opt_out_confirmation,omitempty"`
}

// Kind implements river.JobArgs.
func (SendArgs) Kind() string { return "send_message" }

// InsertOpts implements river.JobArgsWithInsertOpts: sends go on their
// own queue.
func (SendArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: queueSend} }

// queueSend holds sends apart: processing jobs waiting for a contact's
// turn (its lock) fill the default queue's workers, never those that send
// the replies already decided.
const queueSend = "send"

type sendWorker struct {
	river.WorkerDefaults[SendArgs]
	p *Pipeline
	// hints holds, by job id, the delay the platform asked for on the
	// attempt that just failed; River asks NextRetry right after Work
	// returns, in this process.
	hints sync.Map
}

// NextRetry backs off exponentially, or as long as the platform asked.
func (w *sendWorker) NextRetry(job *river.Job[SendArgs]) time.Time {
	d := w.p.backoff(job.Attempt)
	if hint, ok := w.hints.LoadAndDelete(job.ID); ok {
		d = max(d, hint.(time.Duration))
	}
	return time.Now().Add(d)
}

// MediaArgs asks for one inbound attachment to be fetched and sealed.
type MediaArgs struct {
	MediaID  int64  `json:"media_id"`
	Provider string `json:"provider"`
}

// Kind implements river.JobArgs.
func (MediaArgs) Kind() string { return "fetch_media" }

type mediaWorker struct {
	river.WorkerDefaults[MediaArgs]
	p *Pipeline
}

// NextRetry backs off exponentially.
// Timeout implements river.Worker: a fetch may take the long limit.
func (w *mediaWorker) Timeout(*river.Job[MediaArgs]) time.Duration { return w.p.cfg.longJob() }

func (w *mediaWorker) NextRetry(job *river.Job[MediaArgs]) time.Time {
	return time.Now().Add(w.p.backoff(job.Attempt))
}

// WaitArgs is a conversation's timeout coming due.
type WaitArgs struct {
	ContactID      int64  `json:"contact_id"`
	ConversationID int64  `json:"conversation_id"`
	Input          string `json:"input"` // remind or expire
	Seq            int64  `json:"seq"`   // the conversation's wait_seq when scheduled
	Provider       string `json:"provider"`
}

// Kind implements river.JobArgs.
func (WaitArgs) Kind() string { return "conversation_wait" }

type waitWorker struct {
	river.WorkerDefaults[WaitArgs]
	p *Pipeline
}

// Work delivers a timeout to the conversation, under the contact's lock
// like any message.
func (w *waitWorker) Work(ctx context.Context, job *river.Job[WaitArgs]) error {
	p := w.p
	waiter, ok := p.responder.(Waiter)
	if !ok {
		return nil
	}
	if stale, err := waiter.Stale(ctx, job.Args); err != nil || stale {
		return err
	}
	err := p.underContact(ctx, job.Args.ContactID, func(tx *gorm.DB, contact *models.Contact) error {
		out, err := waiter.Timeout(ctx, tx, contact, job.Args)
		if err != nil {
			return err
		}
		return p.apply(ctx, tx, contact, job.Args.Provider, out)
	})
	if models.ErrorCode(err) == models.ENOTFOUND {
		return nil // the contact was erased: nothing waits any more
	}
	return err
}
