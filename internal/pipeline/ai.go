package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/ai"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/models"
)

// AIArgs asks the AI layer for what a conversation waits on. The request
// itself (it holds the contact's words) stays sealed in the conversation;
// the job carries only ids.
type AIArgs struct {
	ContactID      int64  `json:"contact_id"`
	ConversationID int64  `json:"conversation_id"`
	Seq            int64  `json:"seq"` // the conversation's wait_seq when asked
	Provider       string `json:"provider"`
}

// Kind implements river.JobArgs.
func (AIArgs) Kind() string { return "conversation_ai" }

// queueAI holds AI requests apart: a slow model fills its workers, never
// those that process messages and send replies.
const queueAI = "ai"

type aiWorker struct {
	river.WorkerDefaults[AIArgs]
	p     *Pipeline
	hints retryHints
}

// NextRetry backs off exponentially.
// Timeout implements river.Worker: an AI request may take the long limit.
func (w *aiWorker) Timeout(*river.Job[AIArgs]) time.Duration { return w.p.cfg.longJob() }

func (w *aiWorker) NextRetry(job *river.Job[AIArgs]) time.Time {
	return time.Now().Add(w.hints.after(job.ID, w.p.backoff(job.Attempt)))
}

// Work calls the AI layer outside any transaction (it may take seconds),
// then applies the result under the contact's lock and lets the messages
// that waited meanwhile be processed. A failure is retried; the last
// attempt gives the node its fallback instead, so no conversation is left
// waiting.
func (w *aiWorker) Work(ctx context.Context, job *river.Job[AIArgs]) error {
	p := w.p
	th, ok := p.responder.(Thinker)
	if !ok {
		return nil
	}
	req, err := th.PendingAI(ctx, job.Args)
	if err != nil || req == nil {
		return err
	}
	start := time.Now()
	res, err := p.askAI(ctx, job.Args, *req)
	outcome := "answered"
	switch {
	case err != nil && job.Attempt < job.MaxAttempts && !ai.Permanent(err):
		p.metrics.ai.WithLabelValues(string(req.Task), "retried").Inc()
		w.hints.note(job.ID, err)
		return err
	case err != nil:
		outcome = "failed"
		p.log.Warn("AI request failed for good; the flow takes its fallback",
			slog.Int64("conversation_id", job.Args.ConversationID), slog.String("node", req.Node), slog.String("error", err.Error()))
		res = engine.AIResult{Err: err.Error()}
	case res.Err != "":
		outcome = "off"
	}
	p.metrics.ai.WithLabelValues(string(req.Task), outcome).Inc()
	p.metrics.jobLatency.WithLabelValues("conversation_ai").Observe(time.Since(start).Seconds())
	return p.underContact(ctx, job.Args.ContactID, func(tx *gorm.DB, contact *models.Contact) error {
		out, err := th.AIAnswered(ctx, tx, contact, job.Args, res)
		if err != nil {
			return err
		}
		if err := p.apply(ctx, tx, contact, job.Args.Provider, out); err != nil {
			return err
		}
		// Messages that arrived while the AI layer worked were held back.
		return p.enqueue(ctx, tx, ProcessArgs{ContactID: contact.ID}, nil)
	})
}

// askAI asks the AI layer within the configured time limit: the vision
// service about a photo, the text model about words.
func (p *Pipeline) askAI(ctx context.Context, a AIArgs, req engine.AIRequest) (engine.AIResult, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AITimeout)
	defer cancel()
	if req.MediaID != 0 {
		return p.readPhoto(ctx, a, req)
	}
	if p.ai == nil {
		return engine.AIResult{Err: "the AI layer is off"}, nil
	}
	var res engine.AIResult
	var err error
	if m, ok := p.ai.(MeteredAI); ok {
		var usage ai.Usage
		if res, usage, err = m.AnswerMetered(ctx, req); err == nil {
			p.recordUsage(ctx, a.ContactID, &a.ConversationID, usage)
		}
	} else {
		res, err = p.ai.Answer(ctx, req)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.New("the AI request timed out")
	}
	return res, err
}
