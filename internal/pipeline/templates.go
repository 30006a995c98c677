package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// TemplateSource is a platform that lists its WhatsApp templates (Meta's
// WhatsApp Business Account, Twilio's Content API).
type TemplateSource interface {
	Templates(ctx context.Context) ([]models.Template, error)
}

// TemplateSyncEvery is how often the periodic job reads the platforms'
// templates into the registry.
const TemplateSyncEvery = 15 * time.Minute

// SyncTemplates reads each source's templates into the registry, by
// provider. A source that fails is left as it was (its templates are not
// marked gone) and the others are still synced; the error joins the
// failures, naming their providers.
func SyncTemplates(ctx context.Context, reg *store.TemplateStore, sources map[string]TemplateSource) (map[string]store.SyncResult, error) {
	providers := make([]string, 0, len(sources))
	for p := range sources {
		providers = append(providers, p)
	}
	sort.Strings(providers)
	out := map[string]store.SyncResult{}
	var errs []error
	for _, provider := range providers {
		list, err := sources[provider].Templates(ctx)
		if err == nil {
			out[provider], err = reg.Sync(ctx, provider, list, time.Now())
		}
		if err != nil {
			errs = append(errs, models.Wrap(err, models.EUNAVAILABLE, "The "+provider+" templates could not be synced."))
		}
	}
	return out, errors.Join(errs...)
}

// TemplateSyncArgs is the periodic template sync.
type TemplateSyncArgs struct{}

// Kind implements river.JobArgs.
func (TemplateSyncArgs) Kind() string { return "templates_sync" }

// InsertOpts makes the sync unique while one waits or runs, so instances
// that start together (or a command run alongside) queue it once.
func (TemplateSyncArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled}}}
}

type templateSyncWorker struct {
	river.WorkerDefaults[TemplateSyncArgs]
	p *Pipeline
}

// Work syncs the templates within the job's time limit and logs what it
// found (counts and providers only).
func (w *templateSyncWorker) Work(ctx context.Context, _ *river.Job[TemplateSyncArgs]) error {
	p := w.p
	res, err := SyncTemplates(ctx, store.NewTemplateStore(p.db), p.templateSources)
	for provider, r := range res {
		p.log.Info("templates synced", slog.String("provider", provider), slog.Int("listed", r.Seen), slog.Int("gone", r.Gone))
	}
	return err
}

// templateJobs is the periodic sync, when a platform lists templates.
func templateJobs(sources map[string]TemplateSource) []*river.PeriodicJob {
	if len(sources) == 0 {
		return nil
	}
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(TemplateSyncEvery),
		func() (river.JobArgs, *river.InsertOpts) { return TemplateSyncArgs{}, nil },
		&river.PeriodicJobOpts{ID: "templates_sync", RunOnStart: true})}
}
