package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/ai"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Speech turns voice notes into text (ai.Speech).
type Speech interface {
	Transcribe(ctx context.Context, audio []byte, contentType string) (ai.Transcript, error)
}

// Vision reads photos (ai.Vision).
type Vision interface {
	Describe(ctx context.Context, image []byte, contentType string) (string, ai.Usage, error)
	Extract(ctx context.Context, image []byte, contentType string, schema map[string]any, hint string) (engine.AIResult, ai.Usage, error)
}

// isAudio and isImage tell attachments apart by type; Siren names the
// kind alone ("audio"), the others a MIME type.
func isAudio(contentType string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "audio")
}

func isImage(contentType string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "image")
}

// waitsFor says whether a message's later ones wait for this attachment
// to be understood: a voice note, while speech-to-text is on.
func (p *Pipeline) waitsFor(contentType string) bool { return p.speech != nil && isAudio(contentType) }

// notHeardWhy says, for staff, why a voice note will not be transcribed
// ("" when it will be, or is no voice note).
func (p *Pipeline) notHeardWhy(contentType string) string {
	if p.speech == nil && isAudio(contentType) {
		return "Not transcribed: speech-to-text is off here (PARLEY_SARVAM_API_KEY is unset)."
	}
	return ""
}

// understands says whether an attachment is sent to a service once
// fetched: voice notes to speech-to-text, photos to vision.
func (p *Pipeline) understands(contentType string) bool {
	return (p.speech != nil && isAudio(contentType)) || (p.vision != nil && isImage(contentType))
}

// UnderstandArgs asks for a fetched attachment to be understood: a voice
// note transcribed, a photo described. Ids only: what it says is sealed
// in the attachment's row.
type UnderstandArgs struct {
	MediaID int64 `json:"media_id"`
}

// Kind implements river.JobArgs.
func (UnderstandArgs) Kind() string { return "understand_media" }

type understandWorker struct {
	river.WorkerDefaults[UnderstandArgs]
	p     *Pipeline
	hints retryHints
}

// Timeout implements river.Worker: a service call may take the long limit.
func (w *understandWorker) Timeout(*river.Job[UnderstandArgs]) time.Duration {
	return w.p.cfg.longJob()
}

// NextRetry backs off, and waits at least as long as the service asked.
func (w *understandWorker) NextRetry(job *river.Job[UnderstandArgs]) time.Time {
	return time.Now().Add(w.hints.after(job.ID, w.p.backoff(job.Attempt)))
}

// retryHints keep, by job id, how long a provider asked callers to wait
// after the attempt that just failed, for the job's NextRetry.
type retryHints struct{ m sync.Map }

// note keeps err's Retry-After for the job, if it has one.
func (h *retryHints) note(jobID int64, err error) {
	var ce *ai.CallError
	if errors.As(err, &ce) && ce.RetryAfter > 0 {
		h.m.Store(jobID, ce.RetryAfter)
	}
}

// after is the delay before the job's next try: backoff, or longer when
// the provider asked.
func (h *retryHints) after(jobID int64, backoff time.Duration) time.Duration {
	if wait, ok := h.m.LoadAndDelete(jobID); ok {
		return max(backoff, wait.(time.Duration))
	}
	return backoff
}

// Work understands one attachment outside any transaction, stores what it
// says sealed, and lets the contact's messages that waited for it go on.
// A failure is retried, unless trying again cannot help; the last attempt
// records why it could not be understood instead, so nothing waits for
// ever: the flow then takes its fallback or asks for words.
func (w *understandWorker) Work(ctx context.Context, job *river.Job[UnderstandArgs]) error {
	p := w.p
	m, err := p.media.Get(ctx, job.Args.MediaID)
	if models.ErrorCode(err) == models.ENOTFOUND {
		return nil // erased meanwhile
	}
	if err != nil {
		return err
	}
	if m.Data == nil {
		return nil // not fetched: the fetch failed, and said why
	}
	start := time.Now()
	text, language, task, err := p.understand(ctx, m)
	outcome := "understood"
	switch {
	case err != nil && !ai.Permanent(err) && job.Attempt < job.MaxAttempts:
		p.metrics.ai.WithLabelValues(task, "retried").Inc()
		w.hints.note(job.ID, err)
		return err
	case err != nil:
		outcome = "failed"
		p.log.Warn("an attachment could not be understood; the flow goes on without it",
			slog.Int64("media_id", m.ID), slog.String("task", task), slog.String("error", err.Error()))
		err = p.media.NotUnderstood(ctx, m.ID, notUnderstoodReason(task, err))
	default:
		err = p.media.Understand(ctx, m.ID, text, language)
	}
	if models.ErrorCode(err) == models.ENOTFOUND {
		return nil // erased while it was being understood
	}
	if err != nil {
		return err
	}
	p.metrics.ai.WithLabelValues(task, outcome).Inc()
	p.metrics.jobLatency.WithLabelValues("understand_media").Observe(time.Since(start).Seconds())
	if isAudio(m.ContentType) {
		return p.resume(ctx, m.ContactID)
	}
	return nil
}

// understand calls the service for the attachment's kind, within the AI
// time limit, and records what it used.
func (p *Pipeline) understand(ctx context.Context, m *store.Media) (text, language, task string, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AITimeout)
	defer cancel()
	var usage ai.Usage
	switch {
	case isAudio(m.ContentType) && p.speech != nil:
		task = "transcribe"
		var t ai.Transcript
		if t, err = p.speech.Transcribe(ctx, m.Data, m.ContentType); err == nil {
			text, language = strings.TrimSpace(t.Text), t.Language
			usage = ai.Usage{Provider: "sarvam", Task: task, Audio: t.Audio}
		}
	case isImage(m.ContentType) && p.vision != nil:
		task = "describe"
		text, usage, err = p.vision.Describe(ctx, m.Data, m.ContentType)
	default:
		return "", "", "understand", errors.New("no service reads this kind of attachment here")
	}
	if err == nil {
		p.recordUsage(ctx, m.ContactID, nil, usage)
	}
	return text, language, task, err
}

// recordUsage keeps what a call used against the conversation
// (nil: the contact's open one); a failure to record is logged, never
// fatal.
func (p *Pipeline) recordUsage(ctx context.Context, contactID int64, conversationID *int64, u ai.Usage) {
	err := store.RecordAIUsage(ctx, p.db, store.AIUsage{ContactID: contactID, ConversationID: conversationID, Provider: u.Provider, Task: u.Task,
		AudioSeconds: u.Audio.Seconds(), PromptTokens: u.PromptTokens, OutputTokens: u.OutputTokens})
	if err != nil {
		p.log.Warn("AI usage not recorded", slog.Int64("contact_id", contactID), slog.String("error", err.Error()))
	}
}

// notUnderstoodReason says, for staff, why an attachment was not
// understood: the service's status, never its words.
func notUnderstoodReason(task string, err error) string {
	what := "Could not be transcribed"
	if task == "describe" {
		what = "Could not be described"
	}
	var ce *ai.CallError
	if errors.As(err, &ce) {
		return fmt.Sprintf("%s: %s %s.", what, ce.Provider, strings.TrimPrefix(ce.Error(), "ai: "+ce.Provider+": "))
	}
	return what + ": " + err.Error() + "."
}

// resume lets the messages of a contact that waited for an attachment be
// processed.
func (p *Pipeline) resume(ctx context.Context, contactID int64) error {
	return p.enqueue(ctx, nil, ProcessArgs{ContactID: contactID}, nil)
}

// heard reads what was understood of a message's attachments for the
// engine. held says a voice note is still being transcribed and the
// message (with those after it) must wait: until the transcript comes, or
// for at most UnderstandHold after it arrived, when a check already
// queued takes it up without one.
func (p *Pipeline) heard(ctx context.Context, tx *gorm.DB, in *models.Message) (held bool, err error) {
	if !in.HasMedia {
		return false, nil
	}
	media, err := p.media.Understanding(ctx, tx, in.ID)
	if err != nil {
		return false, err
	}
	h := &models.Heard{Media: len(media) > 0}
	var said []string
	for _, m := range media {
		switch {
		case m.Understanding == store.UnderstandWaiting:
			if until := in.CreatedAt.Add(p.cfg.UnderstandHold); time.Now().Before(until) {
				// Checked again when the hold ends, should the transcript
				// never come (once per message, however often it is held).
				return true, p.enqueue(ctx, tx, ProcessArgs{ContactID: in.ContactID, Held: in.ID},
					&river.InsertOpts{ScheduledAt: until, UniqueOpts: river.UniqueOpts{ByArgs: true}})
			}
			h.Unheard = true // waited long enough: it goes on unheard
		case isAudio(m.ContentType) && m.Understanding == store.UnderstandDone && m.Text != "":
			said = append(said, m.Text)
			if h.Language == "" {
				h.Language = m.Language
			}
		case isAudio(m.ContentType):
			h.Unheard = true // off, failed, or nothing heard
		case isImage(m.ContentType) && h.ImageID == 0:
			h.ImageID = m.ID
		}
	}
	h.Transcript = strings.Join(said, " ")
	if h.Transcript != "" {
		h.Unheard = false
	}
	in.Heard = h
	return false, nil
}

// readPhoto answers an AI request about a photo with the vision service:
// fields read off it against the node's schema. A photo not fetched yet
// is waited for (the request is retried); one that could not be fetched,
// or no vision service, sends the node to its fallback.
func (p *Pipeline) readPhoto(ctx context.Context, a AIArgs, req engine.AIRequest) (engine.AIResult, error) {
	if p.vision == nil {
		return engine.AIResult{Err: "photos are not read here (Gemini is off)"}, nil
	}
	m, err := p.media.Get(ctx, req.MediaID)
	switch {
	case models.ErrorCode(err) == models.ENOTFOUND:
		return engine.AIResult{Err: "the photo is gone"}, nil
	case err != nil:
		return engine.AIResult{}, err
	case m.Error != "":
		return engine.AIResult{Err: "the photo could not be fetched"}, nil
	case m.Data == nil:
		return engine.AIResult{}, errors.New("the photo has not been fetched yet")
	}
	res, usage, err := p.vision.Extract(ctx, m.Data, m.ContentType, req.Schema, req.Text)
	if err == nil {
		p.recordUsage(ctx, a.ContactID, &a.ConversationID, usage)
	}
	return res, err
}
