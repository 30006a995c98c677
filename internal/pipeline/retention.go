package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// RetentionArgs is the daily clearing of personal data older than Days
// days.
type RetentionArgs struct {
	Days int `json:"days"`
}

// Kind implements river.JobArgs.
func (RetentionArgs) Kind() string { return "retention" }

type retentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	p *Pipeline
}

// retentionBatch is how many rows of a kind one statement clears: each
// is short, so none outlasts the job's time however large the backlog.
const retentionBatch = 1000

// Work clears what store.RetentionStore clears, and audits how many of
// each (no more). Work past the job's time limit goes on in a snooze, from
// where it stopped.
func (w *retentionWorker) Work(ctx context.Context, job *river.Job[RetentionArgs]) error {
	p := w.p
	cut := store.Cut{Before: time.Now().UTC().AddDate(0, 0, -job.Args.Days), SessionMaxAge: p.cfg.SessionMaxAge}
	work, cancel := context.WithTimeout(ctx, max(p.cfg.JobTimeout-time.Second, time.Second))
	defer cancel()
	n, err := store.NewRetentionStore(p.db).Purge(work, cut, retentionBatch)
	more := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
	if err != nil && !more {
		return err
	}
	if n != (store.Cleared{}) || !more {
		if err := p.audit.Record(ctx, &models.AuditEvent{Action: "retention.purge", SubjectType: "messages",
			Details: map[string]any{"before": cut.Before.Format(time.RFC3339), "days": job.Args.Days, "messages": n.Messages,
				"attachments": n.Attachments, "conversations": n.Conversations, "names": n.Names, "sessions": n.Sessions, "events": n.Events}}); err != nil {
			return err
		}
	}
	if more {
		return river.JobSnooze(time.Second)
	}
	return nil
}

// retentionJobs is the daily retention job, when a retention is set.
func retentionJobs(days int) []*river.PeriodicJob {
	if days <= 0 {
		return nil
	}
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(24*time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return RetentionArgs{Days: days}, nil },
		&river.PeriodicJobOpts{ID: "retention", RunOnStart: true})}
}
