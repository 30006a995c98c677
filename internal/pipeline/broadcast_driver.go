package pipeline

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// BroadcastArgs drives a broadcast: a small job that writes its
// recipients' messages and their sends a few hundred at a time, as fast as
// the provider's cap takes them, rather than a job a recipient up front.
type BroadcastArgs struct {
	BroadcastID int64 `json:"broadcast_id"`
}

// Kind implements river.JobArgs.
func (BroadcastArgs) Kind() string { return "broadcast_drive" }

// broadcastPriority is the River priority of a broadcast's sends: below
// replies (priority 1), so that of the sends waiting for a worker a reply
// to somebody who wrote is always fetched first.
const broadcastPriority = 4

// broadcastLead is how much of the provider's rate a broadcast keeps
// queued ahead of its sends: enough that the workers never wait on the
// driver, little enough that a reply queued behind it waits at most this.
const broadcastLead = time.Second

// broadcastClaimMax bounds the recipients one transaction of the driver
// takes, so each is short.
const broadcastClaimMax = 1000

type broadcastWorker struct {
	river.WorkerDefaults[BroadcastArgs]
	p *Pipeline
}

// Work queues the broadcast's messages round after round for most of the
// job's time, then comes back (a snooze) to go on, until none is left, or
// the broadcast is paused or cancelled. Each round writes its recipients'
// messages, marks them queued and queues their sends in one transaction,
// so a crash anywhere leaves every recipient either pending (taken up
// again) or queued with its message and send (sent once, by the send
// path, which reconciles an attempt whose outcome was lost).
func (w *broadcastWorker) Work(ctx context.Context, job *river.Job[BroadcastArgs]) error {
	until := time.Now().Add(w.p.cfg.JobTimeout * 3 / 4)
	for time.Now().Before(until) {
		more, wait, err := w.p.driveRound(ctx, job.Args.BroadcastID)
		if err != nil || !more {
			return err
		}
		if wait > 0 && sleep(ctx, wait) != nil {
			return ctx.Err()
		}
	}
	return river.JobSnooze(time.Millisecond)
}

// driveRound tops up the broadcast's sends waiting in the queue to its
// lead (one batch only while replies wait for a worker, so they go ahead)
// and reports whether there is more to do, after wait.
func (p *Pipeline) driveRound(ctx context.Context, id int64) (more bool, wait time.Duration, err error) {
	b, err := p.bcast.store.Get(ctx, nil, id, "")
	if err != nil || b.Status != models.BroadcastRunning {
		if b != nil && b.Status == models.BroadcastScheduled {
			// Confirmed for later: its time came (or a resume did).
			err = p.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				return p.bcast.store.SetStatus(ctx, tx, id, models.BroadcastRunning)
			})
			return err == nil, 0, err
		}
		return false, 0, err
	}
	rate := p.cfg.rate(b.Provider)
	batch := max(1, p.cfg.sendBatchMax(b.Provider))
	pace := min(max(time.Duration(float64(batch)/rate*float64(time.Second))/2, 10*time.Millisecond), time.Second)
	backlog, replies, err := p.broadcastBacklog(ctx, b.Provider)
	if err != nil {
		return false, 0, err
	}
	target := max(batch, int(rate*broadcastLead.Seconds()))
	if replies {
		target = batch
	}
	room := target - backlog
	if room < (batch+1)/2 {
		return true, pace, nil
	}
	err = p.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		more, err = p.queueRound(ctx, tx, id, min(room, broadcastClaimMax))
		return err
	})
	if err != nil {
		return false, 0, err
	}
	return more, 0, nil
}

// broadcastBacklog counts the broadcasts' messages through provider whose
// sends are in the queue, not finished, and says whether replies wait for
// a send worker.
func (p *Pipeline) broadcastBacklog(ctx context.Context, provider string) (backlog int, replies bool, err error) {
	var r struct {
		Backlog int
		Replies bool
	}
	err = p.db.Gorm.WithContext(ctx).Raw(`SELECT
			coalesce(sum(jsonb_array_length(args->'runs')) FILTER (WHERE priority = ? AND args->>'provider' = ?), 0) AS backlog,
			coalesce(bool_or(priority < ? AND state = 'available'), false) AS replies
		FROM river_job WHERE queue = ? AND state IN ('available', 'running', 'retryable', 'scheduled')`,
		broadcastPriority, provider, broadcastPriority, queueSend).Scan(&r).Error
	return r.Backlog, r.Replies, err
}

// queueRound writes, inside tx, the messages of up to n pending
// recipients and queues their sends, with the broadcast held (a pause or
// cancel waits for the round, and the round sees one that came first). It
// reports whether more is to come; the broadcast is done when nobody is
// left pending.
func (p *Pipeline) queueRound(ctx context.Context, tx *gorm.DB, id int64, n int) (bool, error) {
	b, err := p.bcast.store.Get(ctx, tx, id, "share")
	if err != nil || b.Status != models.BroadcastRunning {
		return false, err
	}
	if b.Message.FlowID != "" {
		n = min(n, flowRoundMax)
	}
	claimed, err := p.bcast.store.Claim(ctx, tx, id, n)
	if err != nil {
		return false, err
	}
	if len(claimed) == 0 {
		pending, err := p.bcast.store.HasPending(ctx, tx, id)
		if err != nil || pending {
			return pending, err // those pending are another driver's round
		}
		if err := p.bcast.store.Finish(ctx, tx, id); err != nil {
			return false, err
		}
		if err := p.bcast.store.SetStatus(ctx, tx, id, models.BroadcastDone); err != nil {
			return false, err
		}
		return false, p.audit.Append(ctx, tx, broadcastEvent(models.Actor{}, "broadcast.done", id, nil))
	}
	if b.Message.FlowID != "" {
		return true, p.startRound(ctx, tx, b, claimed)
	}
	reg := p.registry(b.Provider)
	var msgs []*models.Message
	var queued, excluded []int64
	var reasons []string
	for _, c := range claimed {
		switch {
		case c.OptedOut:
			excluded, reasons = append(excluded, c.ID), append(reasons, models.ExcludedOptedOut)
			continue
		case c.ConvStatus == string(models.ConversationHandoff) || c.ConvStatus == string(models.ConversationPaused):
			excluded, reasons = append(excluded, c.ID), append(reasons, models.ExcludedHandoff)
			continue
		}
		m, err := p.broadcastMessage(ctx, reg, b, c)
		if models.ErrorCode(err) == models.EINVALID {
			// The registry cannot render it for this person (a parameter
			// it needs is missing, say): they are left out with the
			// reason, and the others go on.
			excluded, reasons = append(excluded, c.ID), append(reasons, models.ExcludedBadParams)
			continue
		}
		if err != nil {
			return false, err
		}
		msgs, queued = append(msgs, m), append(queued, c.ID)
	}
	if err := p.messages.InsertReplies(ctx, tx, msgs); err != nil {
		return false, err
	}
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	if err := p.bcast.store.MarkQueued(ctx, tx, queued, ids); err != nil {
		return false, err
	}
	if err := p.bcast.store.Exclude(ctx, tx, excluded, reasons); err != nil {
		return false, err
	}
	return true, p.enqueueMany(ctx, tx, p.broadcastSends(b.Provider, ids))
}

// broadcastSends are the send jobs of a broadcast's messages: batches of
// one message a contact, at the broadcast's priority, with no contacts
// listed so that replies never join them (mergeSends) and wait behind.
func (p *Pipeline) broadcastSends(provider string, ids []int64) []river.InsertManyParams {
	runs := make([][]int64, len(ids))
	for i, id := range ids {
		runs[i] = []int64{id}
	}
	return p.broadcastRuns(provider, runs)
}

// broadcastRuns are broadcastSends of runs: each a contact's messages, in
// the order they leave, batched up to the provider's batch size in
// messages (a run is never split).
func (p *Pipeline) broadcastRuns(provider string, runs [][]int64) []river.InsertManyParams {
	size := max(1, p.cfg.sendBatchMax(provider))
	var jobs []river.InsertManyParams
	for len(runs) > 0 {
		k, n := 1, len(runs[0])
		for k < len(runs) && n+len(runs[k]) <= size {
			n += len(runs[k])
			k++
		}
		chunk := runs[:k]
		runs = runs[k:]
		jobs = append(jobs, river.InsertManyParams{Args: SendBatchArgs{Provider: provider, Runs: chunk},
			InsertOpts: &river.InsertOpts{Priority: broadcastPriority, MaxAttempts: p.cfg.MaxSendTries}})
	}
	return jobs
}

// broadcastMessage is the message a broadcast sends a recipient: its
// template, in their language, with parameters naming a variable ({{name}})
// filled from theirs.
func (p *Pipeline) broadcastMessage(ctx context.Context, reg *registryCache, b *models.Broadcast, c store.Claimed) (*models.Message, error) {
	ref := recipientTemplate(b.Message.Template, c)
	for k, v := range ref.Params {
		if strings.TrimSpace(v) == "" { // a variable they lack: never sent blank
			return nil, models.Errorf(models.EINVALID, "Parameter %s of template %q is empty for this recipient.", k, ref.Name)
		}
	}
	body, err := renderTemplate(ctx, reg, ref)
	if err != nil {
		return nil, err
	}
	return &models.Message{ContactID: c.ContactID, Direction: models.Outbound, Channel: c.Channel, Provider: b.Provider,
		Body: body, Status: models.StatusQueued, Template: ref}, nil
}

// fillVars replaces each {{name}} in s with the variable's value ("" when
// the recipient has none).
func fillVars(s string, vars map[string]string) string {
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			return s
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return s
		}
		name := strings.ToLower(strings.TrimSpace(s[i+2 : i+j]))
		s = s[:i] + vars[name] + s[i+j+2:]
	}
}

// renderTemplate is the text of a template message as the person reads it:
// the registry's body filled in (EINVALID when a parameter it takes is not
// filled); without a registry entry, the template's name and its
// parameters' values in order, so the console and search show what was
// sent (the sender refuses a template the registry lacks).
func renderTemplate(ctx context.Context, reg *registryCache, t *models.TemplateRef) (string, error) {
	if reg.reg != nil {
		found, err := reg.find(ctx, t.Name, t.Language)
		if err != nil {
			return "", err
		}
		if found != nil {
			return found.Render(t.Params)
		}
	}
	keys := make([]string, 0, len(t.Params))
	for k := range t.Params {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) {
			return len(keys[i]) < len(keys[j]) // "2" before "10"
		}
		return keys[i] < keys[j]
	})
	values := make([]string, len(keys))
	for i, k := range keys {
		values[i] = t.Params[k]
	}
	if len(values) == 0 {
		return "[" + t.Name + "]", nil
	}
	return "[" + t.Name + "] " + strings.Join(values, " · "), nil
}
