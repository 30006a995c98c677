package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/parley-chat/parley/models"
)

// RetentionArgs is the daily clearing of what people said in messages
// older than Days days.
type RetentionArgs struct {
	Days int `json:"days"`
}

// Kind implements river.JobArgs.
func (RetentionArgs) Kind() string { return "retention" }

type retentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	p *Pipeline
}

// retentionBatch is how many messages one transaction clears.
const retentionBatch = 1000

// Work clears message bodies, profile names, their word index and
// attachments older than the retention, and audits how many (no more).
// Work past the job's time limit goes on in a snooze.
func (w *retentionWorker) Work(ctx context.Context, job *river.Job[RetentionArgs]) error {
	p := w.p
	before := time.Now().UTC().AddDate(0, 0, -job.Args.Days)
	work, cancel := context.WithTimeout(ctx, max(p.cfg.JobTimeout-time.Second, time.Second))
	defer cancel()
	messages, media, err := p.messages.PurgeBefore(work, before, retentionBatch)
	more := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
	if err != nil && !more {
		return err
	}
	if messages > 0 || media > 0 || !more {
		if err := p.audit.Record(ctx, &models.AuditEvent{Action: "retention.purge", SubjectType: "messages",
			Details: map[string]any{"before": before.Format(time.RFC3339), "days": job.Args.Days, "messages": messages, "attachments": media}}); err != nil {
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
