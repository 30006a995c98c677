package pipeline

import (
	"context"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/models"
)

// allowedMedia are the content types Parley keeps: what people send in
// conversations, nothing executable.
var allowedMedia = []string{"image/", "audio/", "video/", "application/pdf"}

func mediaAllowed(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	for _, prefix := range allowedMedia {
		if strings.HasPrefix(mt, prefix) {
			return true
		}
	}
	return false
}

// Work fetches one attachment with the platform's credentials, checks its
// type and size, stores it sealed, and queues it to be understood (a voice
// note transcribed, a photo described) where a service is on. A refused
// type or size is recorded and not retried; an outage is retried, and the
// last attempt records the failure, so a voice note its contact's
// messages wait for never holds them for good.
func (w *mediaWorker) Work(ctx context.Context, job *river.Job[MediaArgs]) error {
	p := w.p
	start := time.Now()
	m, err := p.media.Get(ctx, job.Args.MediaID)
	if models.ErrorCode(err) == models.ENOTFOUND {
		return nil // erased meanwhile
	}
	if err != nil {
		return err
	}
	if m.Data != nil {
		return p.toUnderstand(ctx, m.ID, m.ContentType) // fetched already; a crash may have come before this
	}
	fail := func(reason string) error {
		if err := p.media.Fail(ctx, m.ID, reason); err != nil {
			return err
		}
		if p.waitsFor(m.ContentType) {
			return p.resume(ctx, m.ContactID)
		}
		return nil
	}
	fetcher := p.fetchers[job.Args.Provider]
	if fetcher == nil {
		return fail("no media fetcher configured for " + job.Args.Provider)
	}
	body, contentType, err := fetcher.Fetch(ctx, m.Ref)
	if err != nil {
		if se := channel.AsSendError(err); se != nil && !se.Retryable {
			return fail(fmt.Sprintf("the platform refused the download (HTTP %d)", se.HTTPStatus))
		}
		if job.Attempt >= job.MaxAttempts {
			return fail("the platform could not be reached to download it")
		}
		return err
	}
	defer body.Close()
	if contentType == "" {
		contentType = m.ContentType
	}
	if !mediaAllowed(contentType) {
		return fail("content type " + contentType + " is not accepted")
	}
	data, err := io.ReadAll(io.LimitReader(body, p.cfg.MediaMaxBytes+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > p.cfg.MediaMaxBytes {
		return fail(fmt.Sprintf("larger than the %d-byte limit", p.cfg.MediaMaxBytes))
	}
	if err := p.media.Save(ctx, m.ID, contentType, data); err != nil {
		return err
	}
	p.metrics.jobLatency.WithLabelValues("fetch_media").Observe(time.Since(start).Seconds())
	return p.toUnderstand(ctx, m.ID, contentType)
}

// toUnderstand queues a fetched attachment for its service, if one reads
// its kind (once, however often this is asked).
func (p *Pipeline) toUnderstand(ctx context.Context, id int64, contentType string) error {
	if !p.understands(contentType) {
		return nil
	}
	return p.enqueue(ctx, nil, UnderstandArgs{MediaID: id},
		&river.InsertOpts{Queue: queueAI, MaxAttempts: p.cfg.MaxAITries, UniqueOpts: river.UniqueOpts{ByArgs: true}})
}
