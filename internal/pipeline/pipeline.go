// Package pipeline is Parley's durable path for messages: ingest (store and
// enqueue in one transaction), per-contact processing in order, outbound
// sends with retries, and delivery statuses. All work is queued in Postgres
// (River), so several instances share it and a crash replays safely.
package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/ai"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Responder decides what to do about one inbound message: the
// conversation engine (Flows), or a plain acknowledgement (Ack).
type Responder interface {
	// Respond runs inside the processing transaction tx and must not send
	// anything itself: the pipeline stores and sends the outcome's replies.
	Respond(ctx context.Context, tx *gorm.DB, contact *models.Contact, in *models.Message) (*Outcome, error)
}

// Batcher is a Responder that answers the messages of several contacts in
// one processing transaction with fewer statements: the BatchResponder
// Batch returns reads what it needs of all of them at once, and keeps what
// they change until Flush writes it.
type Batcher interface {
	Batch(ctx context.Context, tx *gorm.DB, contactIDs []int64) (BatchResponder, error)
}

// BatchResponder is a Responder for one processing transaction, which
// flushes it before the replies, which refer to what it keeps, are
// written.
type BatchResponder interface {
	Responder
	Flush(ctx context.Context, tx *gorm.DB) error
}

// Waiter is a Responder whose conversations wait, with timeouts.
type Waiter interface {
	// Timeout answers a wait that came due; a stale one changes nothing.
	Timeout(ctx context.Context, tx *gorm.DB, contact *models.Contact, w WaitArgs) (*Outcome, error)
	// Stale reports, without a lock, a wait that can change nothing any
	// more, whatever happens next: most come due after the person
	// answered, and those need not wait for the contact's turn.
	Stale(ctx context.Context, w WaitArgs) (bool, error)
}

// Outcome is what a responder decided.
type Outcome struct {
	Replies []string
	// ReplyTemplates, when set, is the template each of Replies goes as
	// (nil: free text), index for index: WhatsApp past its window.
	ReplyTemplates []*models.TemplateRef
	ConversationID *int64
	OptOut         bool // the contact asked for no more messages; Replies confirm it
	OptIn          bool // the contact asked for messages again
	Waits          []WaitArgs
	WaitAfter      []time.Duration // when each of Waits comes due
	// AI asks the AI layer for what the conversation waits on.
	AI *AIArgs
	// Defer leaves the message (and those after it) unprocessed: the
	// conversation waits on the AI layer and takes them up afterwards.
	Defer bool
	// Became is the status the conversation moved to, when it did
	// (handoff, ended): an event reports it.
	Became models.ConversationStatus
	// Queued is set by apply: the ids of the replies it stored, in order.
	Queued []int64
	// SentBy, when set, is the staff member whose words Replies are: the
	// console shows them as a person's, not the bot's.
	SentBy string
	// Template, when set, sends the first reply as this approved WhatsApp
	// template (its text the reply's): how a conversation Parley starts
	// opens when the contact's window is closed.
	Template *models.TemplateRef
	// Schedules are messages planned for later (schedule nodes), kept
	// and fired at their time by scheduled_message jobs.
	Schedules []*engine.Scheduled
	// DropSchedules cancels what the conversation planned and has not
	// sent: it ended or restarted.
	DropSchedules bool
}

// Thinker is a Responder whose conversations can wait on the AI layer.
type Thinker interface {
	// PendingAI returns the request a conversation waits on, or nil when
	// a is stale (the conversation moved on).
	PendingAI(ctx context.Context, a AIArgs) (*engine.AIRequest, error)
	// AIAnswered applies the AI layer's result inside tx, under the
	// contact's lock; a stale one changes nothing.
	AIAnswered(ctx context.Context, tx *gorm.DB, contact *models.Contact, a AIArgs, res engine.AIResult) (*Outcome, error)
}

// AI is the AI layer as the pipeline uses it: it answers AI nodes'
// requests. An error is retried with backoff; after the last attempt the
// node's fallback runs.
type AI interface {
	Answer(ctx context.Context, req engine.AIRequest) (engine.AIResult, error)
}

// MeteredAI is an AI layer that also tells what each answer used (ai.Text),
// recorded against the conversation.
type MeteredAI interface {
	AnswerMetered(ctx context.Context, req engine.AIRequest) (engine.AIResult, ai.Usage, error)
}

// defaultKeywords are the STOP and START words Ack honours: the engine's,
// in the languages it knows.
var defaultKeywords = engine.DefaultKeywords()

// Ack answers every message with the same text (an empty text answers
// nothing) and honours STOP and START.
type Ack struct{ Text string }

// Respond implements Responder.
func (a Ack) Respond(_ context.Context, _ *gorm.DB, contact *models.Contact, in *models.Message) (*Outcome, error) {
	switch {
	case defaultKeywords.Kind(in.Body) == "stop":
		return &Outcome{OptOut: true}, nil
	case defaultKeywords.Kind(in.Body) == "start":
		return &Outcome{OptIn: true, Replies: a.replies()}, nil
	case contact.OptedOut:
		return &Outcome{}, nil
	}
	return &Outcome{Replies: a.replies()}, nil
}

func (a Ack) replies() []string {
	if a.Text == "" {
		return nil
	}
	return []string{a.Text}
}

// Config tunes the pipeline.
type Config struct {
	Workers     int     // jobs run at once by this instance (default 20)
	SendWorkers int     // send jobs at once, on a queue of their own so processing waiting its turn never holds up replies (default 10)
	AIWorkers   int     // AI requests at once, on a queue of their own so slow calls never hold up messages (default 10)
	SendRate    float64 // messages per second per provider, all instances together (default 10)
	// SendRates overrides SendRate for a provider (by provider name).
	SendRates map[string]float64
	// SendMaxInFlight caps a provider's send calls in flight from this
	// instance; below it they follow the rate and the latency (default 200).
	SendMaxInFlight int
	SendBurst       int // sends the cap lets through at once after a quiet spell (default 1)
	MaxSendTries    int // attempts before a send is given up (default 8)
	// MaxProcessTries is how often a contact's messages are tried before
	// one that keeps failing is set aside for a person, so it cannot hold
	// up the contact's later messages (default 5).
	MaxProcessTries int
	MediaMaxBytes   int64         // largest attachment fetched (default 16 MiB)
	RetryBase       time.Duration // first retry delay; doubles each attempt, with jitter (default 2s)
	RetryMax        time.Duration // longest retry delay (default 10m)
	FetchInterval   time.Duration // how often idle workers look for jobs that came due without a notice: retries, snoozes (default 100ms)
	WhatsAppWindow  time.Duration // free-form replies allowed this long after the contact wrote (24h)
	MaxAITries      int           // attempts at an AI request before the node's fallback runs (default 4)
	// ProcessAhead is how far processing may run ahead of sending: when
	// the replies waiting for the send queue would take longer than this
	// to leave at their provider's rate, processing slows to a couple of
	// jobs at a time, leaving the machine to acknowledging (default 300ms).
	ProcessAhead time.Duration
	// ProcessHold is the longest a processing job waits for its turn
	// while processing is slowed; then it goes on anyway (default 5s).
	ProcessHold time.Duration
	// IngestTimeout bounds how long storing a webhook's messages may take
	// from its arrival, whatever the database does; past it the webhook
	// is answered "unavailable" (503) and the platform retries (default
	// 8s, inside Twilio's 15 s).
	IngestTimeout time.Duration
	AITimeout     time.Duration // time limit of one AI request (default: the long job time limit less a tenth)
	// UnderstandHold is the longest a voice note holds up its contact's
	// messages while it is transcribed; past it the flow goes on without
	// its words (default 2m).
	UnderstandHold time.Duration
	// RetentionDays, when set, clears personal data older than this many
	// days, daily (store.RetentionStore says what).
	RetentionDays int
	// SessionMaxAge is how long a console session may live: retention
	// removes older ones (and their tokens) too (0: by RetentionDays only).
	SessionMaxAge time.Duration
	// JobTimeout bounds one job: processing, a send, a timer, a status
	// check (default 15s). Fetching media and AI calls get twice it.
	JobTimeout time.Duration
	// RescueAfter is how long a job may stay running before it is taken
	// for stuck (its instance died) and run again (default and least: the
	// long job time limit and 10s). With the queue's check every 30 s, work
	// a crash left behind resumes within RescueAfter + 30 s.
	RescueAfter time.Duration
}

// rate is the provider's send rate: its own, or SendRate.
func (c *Config) rate(provider string) float64 {
	if r := c.SendRates[provider]; r > 0 {
		return r
	}
	return c.SendRate
}

// longJob is the time limit of the jobs that call out for long: media
// fetches and AI requests.
func (c *Config) longJob() time.Duration { return 2 * c.JobTimeout }

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 20
	}
	if c.SendWorkers <= 0 {
		c.SendWorkers = 10
	}
	if c.SendRate <= 0 {
		c.SendRate = 10
	}
	if c.SendMaxInFlight <= 0 {
		c.SendMaxInFlight = channel.MaxInFlight
	}
	if c.SendBurst <= 0 {
		c.SendBurst = 1
	}
	if c.MaxSendTries <= 0 {
		c.MaxSendTries = 8
	}
	if c.MaxProcessTries <= 0 {
		c.MaxProcessTries = 5
	}
	if c.MediaMaxBytes <= 0 {
		c.MediaMaxBytes = 16 << 20
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 2 * time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Minute
	}
	if c.WhatsAppWindow <= 0 {
		c.WhatsAppWindow = 24 * time.Hour
	}
	if c.FetchInterval <= 0 {
		// River's own default is a second: each reply waiting for an
		// earlier one to the same contact would wait that long.
		c.FetchInterval = 100 * time.Millisecond
	}
	if c.AIWorkers <= 0 {
		c.AIWorkers = 10
	}
	if c.MaxAITries <= 0 {
		c.MaxAITries = 4
	}
	if c.IngestTimeout <= 0 {
		c.IngestTimeout = 8 * time.Second
	}
	if c.ProcessAhead <= 0 {
		c.ProcessAhead = 300 * time.Millisecond
	}
	if c.ProcessHold <= 0 {
		c.ProcessHold = 5 * time.Second
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = 15 * time.Second
	}
	if c.UnderstandHold <= 0 {
		c.UnderstandHold = 2 * time.Minute
	}
	if c.AITimeout <= 0 || c.AITimeout > c.longJob() {
		c.AITimeout = c.longJob() - c.longJob()/10
	}
	c.RescueAfter = max(c.RescueAfter, c.longJob()+10*time.Second)
}

// Deps are what the pipeline works with.
type Deps struct {
	DB        *store.DB
	Crypto    store.Crypto
	Senders   map[string]channel.Sender       // by provider
	Fetchers  map[string]channel.MediaFetcher // by provider
	Responder Responder
	AI        AI      // nil: the AI layer is off and AI nodes take their fallback
	Speech    Speech  // nil: voice notes are not transcribed (an ask for words asks for them typed)
	Vision    Vision  // nil: photos are not described or read
	Events    *Events // nil: no outgoing events
	Logger    *slog.Logger
	Metrics   *Metrics
	Config    Config
	// Supabase, in Supabase mode, retries sign-outs there and re-checks
	// staff (with the service-role key); nil: neither.
	Supabase SupabaseUsers
	// TemplateSources, by provider, are synced into the template registry
	// every TemplateSyncEvery; none: no sync job.
	TemplateSources map[string]TemplateSource
	// Templates is the template registry broadcasts ask which templates
	// are approved in which language, and render them from; nil: not asked
	// (all taken as approved, their text the name and parameters).
	Templates channel.Templates
}

// Pipeline ingests, processes and sends.
type Pipeline struct {
	db        *store.DB
	contacts  *store.ContactStore
	messages  *store.MessageStore
	convs     *store.ConversationStore
	media     *store.MediaStore
	ingestor  *store.Ingestor
	audit     *store.AuditStore
	senders   map[string]channel.Sender
	fetchers  map[string]channel.MediaFetcher
	responder Responder
	ai        AI
	speech    Speech
	vision    Vision
	log       *slog.Logger
	metrics   *Metrics
	cfg       Config
	slots     *store.SendSlots // the send rate cap, shared by every instance
	gates     gates            // provider calls in flight from this instance
	events    *Events
	supabase  SupabaseUsers
	// recheckAfter is the id of the last member the re-check asked
	// Supabase about, where its next run resumes (under recheckMu).
	recheckMu    sync.Mutex
	recheckAfter string
	sessions     *store.SessionStore
	// templateSources are the platforms the template sync reads.
	templateSources map[string]TemplateSource
	startKeys       *store.StartKeys // idempotency keys of started conversations
	scheduled       *store.ScheduledStore
	phones          phone.Normalizer // numbers staff and the API type

	inserter *river.Client[*sql.Tx] // inserts jobs inside GORM transactions
	worker   *river.Client[pgx.Tx]  // runs jobs
	batch    batcher                // group commit of ingests
	bcast    broadcaster
	pace     pacer // processing slowed while sending is behind
}

// New returns a pipeline; Start runs its workers.
func New(d Deps) (*Pipeline, error) {
	d.Config.defaults()
	if d.Responder == nil {
		d.Responder = Ack{}
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil)
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{
		db: d.DB, contacts: store.NewContactStore(d.DB, d.Crypto), messages: store.NewMessageStore(d.DB, d.Crypto),
		convs: store.NewConversationStore(d.DB, d.Crypto),
		media: store.NewMediaStore(d.DB, d.Crypto), ingestor: store.NewIngestor(d.DB, d.Crypto), audit: store.NewAuditStore(d.DB, d.Crypto), senders: d.Senders, fetchers: d.Fetchers,
		responder: d.Responder, ai: d.AI, speech: d.Speech, vision: d.Vision, log: d.Logger, metrics: d.Metrics, cfg: d.Config, slots: store.NewSendSlots(d.DB), events: d.Events,
		supabase: d.Supabase, sessions: store.NewSessionStore(d.DB, d.Crypto), templateSources: d.TemplateSources,
		startKeys: store.NewStartKeys(d.DB, d.Crypto), phones: d.Crypto.Phones, scheduled: store.NewScheduledStore(d.DB, d.Crypto),
		bcast: broadcaster{store: store.NewBroadcastStore(d.DB, d.Crypto), phones: d.Crypto.Phones, templates: d.Templates},
		pace:  pacer{turns: make(chan struct{}, pacedWorkers)},
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &processWorker{p: p})
	river.AddWorker(workers, &processBatchWorker{p: p})
	river.AddWorker(workers, &sendWorker{p: p})
	river.AddWorker(workers, &sendBatchWorker{p: p})
	river.AddWorker(workers, &mediaWorker{p: p})
	river.AddWorker(workers, &waitWorker{p: p})
	river.AddWorker(workers, &aiWorker{p: p})
	river.AddWorker(workers, &understandWorker{p: p})
	river.AddWorker(workers, &pollWorker{p: p})
	river.AddWorker(workers, &retentionWorker{p: p})
	river.AddWorker(workers, &eventWorker{p: p})
	river.AddWorker(workers, &signOutWorker{p: p})
	river.AddWorker(workers, &recheckWorker{p: p})
	river.AddWorker(workers, &templateSyncWorker{p: p})
	river.AddWorker(workers, &scheduledWorker{p: p})
	river.AddWorker(workers, &sweepStartKeysWorker{p: p})
	river.AddWorker(workers, &broadcastWorker{p: p})
	if d.Events != nil {
		d.Events.defaults()
	}
	var err error
	p.worker, err = river.NewClient(riverpgxv5.New(d.DB.Pool), &river.Config{
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: d.Config.Workers},
			queueSend:          {MaxWorkers: d.Config.SendWorkers},
			queueAI:            {MaxWorkers: d.Config.AIWorkers},
		},
		Workers:              workers,
		PeriodicJobs:         append(append(append(retentionJobs(d.Config.RetentionDays), supabaseJobs(d.Supabase)...), templateJobs(d.TemplateSources)...), startKeyJobs()...),
		Logger:               d.Logger,
		FetchPollInterval:    d.Config.FetchInterval,
		FetchCooldown:        fetchCooldown,
		JobTimeout:           d.Config.JobTimeout,
		RescueStuckJobsAfter: d.Config.RescueAfter,
		ReindexerIndexNames:  reindexed(),
	})
	if err != nil {
		return nil, fmt.Errorf("queue worker: %w", err)
	}
	// The inserter runs no workers; its cooldown only spaces the notices
	// its inserts send the workers (per queue). River's default, 100 ms,
	// left a reply queued within a tenth of a second of another's notice
	// unannounced, waiting for the send workers' next poll; within 10 ms
	// one still is.
	p.inserter, err = river.NewClient(riverdatabasesql.New(d.DB.SQL), &river.Config{Workers: workers, FetchCooldown: fetchCooldown})
	if err != nil {
		return nil, fmt.Errorf("queue inserter: %w", err)
	}
	return p, nil
}

// Start runs the workers until Stop. It fails when the database cannot be
// reached; StartWhenReady keeps trying instead.
func (p *Pipeline) Start(ctx context.Context) error { return p.worker.Start(ctx) }

// StartWhenReady starts the workers in the background, retrying while the
// database is unreachable, so an instance that boots during an outage
// serves /readyz (503) and takes up work when the database returns.
func (p *Pipeline) StartWhenReady(ctx context.Context) {
	go func() {
		delay := time.Second
		for {
			err := p.worker.Start(ctx)
			if err == nil {
				return
			}
			p.log.Warn("queue workers not started; retrying", slog.String("error", err.Error()), slog.Duration("retry_in", delay))
			select {
			case <-ctx.Done():
				return
			case <-p.batch.quitOrNil():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 30*time.Second)
		}
	}()
}

// Stop lets running jobs finish (until ctx ends, when they are cancelled
// and released for a retry, by this instance or another) and stops the
// workers. Cancelled jobs get a second to record that they stopped.
func (p *Pipeline) Stop(ctx context.Context) error {
	p.stopCommitters()
	err := p.worker.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		cancelled, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		return p.worker.StopAndCancel(cancelled)
	}
	return err
}

// enqueue inserts a job inside tx, so both commit or neither (nil: on
// its own).
func (p *Pipeline) enqueue(ctx context.Context, tx *gorm.DB, args river.JobArgs, opts *river.InsertOpts) error {
	return p.enqueueMany(ctx, tx, []river.InsertManyParams{{Args: args, InsertOpts: opts}})
}

// enqueueMany inserts jobs with one statement, inside tx so that they
// commit with it, or on their own when tx is nil; none is nothing.
func (p *Pipeline) enqueueMany(ctx context.Context, tx *gorm.DB, jobs []river.InsertManyParams) error {
	if len(jobs) == 0 {
		return nil
	}
	if tx == nil {
		_, err := p.worker.InsertMany(ctx, jobs)
		return err
	}
	sqlTx, ok := tx.Statement.ConnPool.(*sql.Tx)
	if !ok {
		return errors.New("pipeline: enqueue needs a transaction")
	}
	_, err := p.inserter.InsertManyTx(ctx, sqlTx, jobs)
	return err
}

// fetchCooldown is how soon River's workers fetch again after a fetch
// (River's default is 100 ms; jobs here take milliseconds, so workers would
// sit idle), and how often a client's inserts notify them at most.
const fetchCooldown = 10 * time.Millisecond

// maxBody caps stored bodies in bytes: room for the 4096 characters
// WhatsApp allows in any script (the engine reads at most engine.MaxInput
// and tells the contact when it read less).
const maxBody = 16 << 10

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// ingestError makes a database outage an EUNAVAILABLE error, so the webhook
// answers 503 and the platform retries or falls back.
func ingestError(err error) error {
	switch models.ErrorCode(err) {
	case models.EINVALID, models.EUNAVAILABLE:
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return models.Wrap(err, models.EUNAVAILABLE, "Storing the message timed out; try again.")
	}
	return models.Wrap(err, models.EUNAVAILABLE, "Messages could not be stored; try again.")
}

// ApplyStatuses records delivery statuses; each moves its message forward
// or changes nothing. Like Ingest it takes at most Config.IngestTimeout,
// whatever the database does.
func (p *Pipeline) ApplyStatuses(ctx context.Context, statuses []channel.Status) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.IngestTimeout)
	defer cancel()
	for _, st := range statuses {
		changed, err := p.messages.UpdateStatus(ctx, st.Provider, st.ProviderMessageID, st.Status, st.ErrorCode, st.Reason)
		if err != nil {
			return ingestError(err)
		}
		outcome := "applied"
		if !changed {
			outcome = "ignored"
		}
		p.metrics.statuses.WithLabelValues(st.Provider, outcome).Inc()
	}
	return nil
}

// reindexed is River's own list of indexes to rebuild, less the GIN index
// of job args that migration 00046 drops (River warns of every index it
// is told of and does not find).
func reindexed() []string {
	return slices.DeleteFunc(river.ReindexerIndexNamesDefault(), func(name string) bool { return name == "river_job_args_index" })
}
