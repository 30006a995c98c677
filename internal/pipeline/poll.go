package pipeline

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/models"
)

// StatusPollArgs asks a platform that does not push delivery statuses
// (Siren) how one sent message fared. The job asks again, ever less often,
// until the status is final or a day has passed.
type StatusPollArgs struct {
	MessageID int64     `json:"message_id"`
	Provider  string    `json:"provider"`
	SentAt    time.Time `json:"sent_at"`
}

// Kind implements river.JobArgs.
func (StatusPollArgs) Kind() string { return "poll_status" }

// Polling cadence: first a minute after the send, then each time after as
// long again as has passed (2, 4, 8 … minutes), at most six hours apart,
// for a day.
const (
	firstPoll   = time.Minute
	longestPoll = 6 * time.Hour
	pollFor     = 24 * time.Hour
)

// nextPoll is how long to wait before asking again, elapsed after the send.
func nextPoll(elapsed time.Duration) time.Duration {
	return min(max(elapsed, firstPoll), longestPoll)
}

type pollWorker struct {
	river.WorkerDefaults[StatusPollArgs]
	p *Pipeline
}

// NextRetry backs off exponentially after a failed request.
func (w *pollWorker) NextRetry(job *river.Job[StatusPollArgs]) time.Time {
	return time.Now().Add(w.p.backoff(job.Attempt))
}

// Work asks for the status once and applies it (statuses only move
// forward), then snoozes until the next time to ask.
func (w *pollWorker) Work(ctx context.Context, job *river.Job[StatusPollArgs]) error {
	p := w.p
	checker, ok := p.senders[job.Args.Provider].(channel.StatusChecker)
	if !ok {
		return nil
	}
	m, err := p.messages.Get(ctx, job.Args.MessageID)
	if err != nil {
		if models.ErrorCode(err) == models.ENOTFOUND {
			return nil
		}
		return err
	}
	if m.ProviderMessageID == "" || m.Status == models.StatusRead || m.Status == models.StatusFailed {
		return nil // nothing to ask about, or nothing more to learn
	}
	st, final, err := checker.CheckStatus(ctx, m.ProviderMessageID)
	if err != nil {
		return err
	}
	if st.Status != "" {
		if err := p.ApplyStatuses(ctx, []channel.Status{st}); err != nil {
			return err
		}
	}
	elapsed := time.Since(job.Args.SentAt)
	if final || elapsed >= pollFor {
		return nil
	}
	return river.JobSnooze(nextPoll(elapsed))
}
