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
// type and size, and stores it sealed. A refused type or size is recorded
// and not retried; an outage is retried.
func (w *mediaWorker) Work(ctx context.Context, job *river.Job[MediaArgs]) error {
	p := w.p
	start := time.Now()
	m, err := p.media.Get(ctx, job.Args.MediaID)
	if err != nil {
		return err
	}
	if m.Data != nil {
		return nil // fetched already
	}
	fetcher := p.fetchers[job.Args.Provider]
	if fetcher == nil {
		return p.media.Fail(ctx, m.ID, "no media fetcher configured for "+job.Args.Provider)
	}
	body, contentType, err := fetcher.Fetch(ctx, m.Ref)
	if err != nil {
		if se := channel.AsSendError(err); se != nil && !se.Retryable {
			return p.media.Fail(ctx, m.ID, fmt.Sprintf("the platform refused the download (HTTP %d)", se.HTTPStatus))
		}
		return err
	}
	defer body.Close()
	if contentType == "" {
		contentType = m.ContentType
	}
	if !mediaAllowed(contentType) {
		return p.media.Fail(ctx, m.ID, "content type "+contentType+" is not accepted")
	}
	data, err := io.ReadAll(io.LimitReader(body, p.cfg.MediaMaxBytes+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > p.cfg.MediaMaxBytes {
		return p.media.Fail(ctx, m.ID, fmt.Sprintf("larger than the %d-byte limit", p.cfg.MediaMaxBytes))
	}
	if err := p.media.Save(ctx, m.ID, contentType, data); err != nil {
		return err
	}
	p.metrics.jobLatency.WithLabelValues("fetch_media").Observe(time.Since(start).Seconds())
	return nil
}
