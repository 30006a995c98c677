package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/tracing"
	"github.com/parley-chat/parley/views"
)

func cmdServe(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv, config.Requirements{Database: true, Keys: true, AuthMode: true})
	if err != nil {
		return err
	}
	log := newLogger(stdout, cfg.LogLevel)
	if cfg.AuthModeChosen != "" {
		log.Info("staff sign-in: "+cfg.AuthMode+" ("+cfg.AuthModeChosen+")", slog.String("auth_mode", cfg.AuthMode))
	} else {
		log.Info("staff sign-in: "+cfg.AuthMode, slog.String("auth_mode", cfg.AuthMode))
	}
	stopTracing, err := tracing.Setup(ctx, getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), version)
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.WithoutCancel(ctx)) }()
	return serve(ctx, cfg, log, false, nil)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(tracing.LogHandler{Handler: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})})
}

// serve runs the HTTP server until ctx ends, then lets in-flight requests
// finish and closes the pool. ready, when set, receives the bound address.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, dev bool, ready func(addr string)) error {
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{MaxConns: cfg.DBMaxConns})
	if err != nil {
		return err
	}
	defer db.Close()
	readiness, err := store.NewReadiness(db)
	if err != nil {
		return err
	}
	if err := readiness.Ready(ctx); err != nil {
		// Serve anyway: /readyz reports it, and the database may come back.
		log.Warn("database not ready at start", slog.String("reason", err.Error()))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c, err := newCrypto(cfg, log)
	if err != nil {
		return err
	}
	w, err := newPipeline(cfg, db, c, log, reg)
	if err != nil {
		return err
	}
	pipe := w.pipe
	access, err := newAccess(ctx, cfg, db, c)
	if err != nil {
		return err
	}
	access.Personal = store.PersonalData{Contacts: store.NewContactStore(db, c), Audit: store.NewAuditStore(db, c)}
	console, err := newConsole(cfg, db, c, access, dev)
	if err != nil {
		return err
	}
	console.SignOutLater = pipe.SignOutLater
	if cfg.AuthMode == "supabase" && cfg.SupabaseServiceRoleKey == "" {
		log.Warn("SUPABASE_SERVICE_ROLE_KEY is unset: staff banned or deleted at Supabase directly keep access until their token expires")
	}
	// Workers run on a context of their own: shutdown stops them after the
	// HTTP server, so acknowledged work is never abandoned.
	pipe.StartWhenReady(context.WithoutCancel(ctx))
	go fillTails(ctx, store.NewContactStore(db, c), log)
	var draining atomic.Bool
	app := handlers.NewServer(handlers.Deps{
		Webhooks: w.hooks,
		Access:   access,
		Console:  console,
		Inbox: &handlers.Inbox{Messages: store.NewMessageStore(db, c), Contacts: store.NewContactStore(db, c), Actions: pipe, Flows: pipe, Simulator: pipe, Media: store.NewMediaStore(db, c), Templates: store.NewTemplateStore(db), Tags: store.NewTagStore(db),
			CheckFlows: checkFlows(cfg.FlowsDir),
			Convs:      store.NewConversationStore(db, c), Counts: store.NewDashboardStore(db)},
		Dashboard: &handlers.Dashboard{Counts: store.NewDashboardStore(db), Flows: pipe},
		Desk:      newDesk(db, c, access.Staff),
		Admin: &handlers.Admin{Audit: store.NewAuditStore(db, c), System: &handlers.System{DB: db, Features: features(cfg), Providers: w.providers,
			ActiveKey: c.Ring.ActiveKeyID(), Rotations: store.NewRotator(db, c.Ring), Breakers: w.breakers}},
		Broadcasts: &handlers.Broadcasts{Actions: pipe, Zone: cfg.TimeZone},

		Logger:    log,
		Readiness: readiness,
		Registry:  reg,
		Metrics:   metricsAccess(cfg, dev, log),
		Version:   version,
		Features:  features(cfg),
		Dev:       dev,
		ProxyHops: cfg.TrustedProxyHops,
		Draining:  &draining,
	})

	stopMetrics, err := serveMetrics(ctx, cfg, reg, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	stopPprof, err := servePprof(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stopPprof()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set PARLEY_ADDR to a free address)", cfg.Addr, err)
	}
	log.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("version", version))
	if ready != nil {
		ready(ln.Addr().String())
	}

	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	select {
	case err := <-served:
		_ = pipe.Stop(context.Background())
		return err
	case <-ctx.Done():
	}
	// Stopping (SIGTERM; Cloud Run kills after its grace): refuse new
	// webhooks (503, so the platform retries) and readiness, let the
	// requests in flight finish, then let running jobs finish or release
	// them to other instances, all within the grace.
	deadline := time.Now().Add(cfg.ShutdownGrace)
	draining.Store(true)
	log.Info("shutting down: finishing in-flight requests and jobs", slog.Duration("grace", cfg.ShutdownGrace))
	// A quarter of the grace answering 503 before the listener closes: a
	// load balancer still routing here meanwhile gets an answer it retries
	// elsewhere, not a reset connection.
	time.Sleep(cfg.ShutdownGrace / 4)
	if err := app.ShutdownWithTimeout(cfg.ShutdownGrace / 4); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("shutdown", slog.String("error", err.Error()))
	}
	select {
	case <-served:
	case <-time.After(time.Until(deadline)):
	}
	stopCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := pipe.Stop(stopCtx); err != nil {
		log.Error("stop queue workers", slog.String("error", err.Error()))
	}
	log.Info("stopped")
	return nil
}

// checkFlows reads the flows folder again on each call (nil without one).
func checkFlows(dir string) func() error {
	if dir == "" {
		return nil
	}
	return func() error {
		_, err := engine.LoadDir(dir)
		return err
	}
}

// features lists the optional capabilities for the console's home page.
func features(cfg *config.Config) []views.Feature {
	return []views.Feature{
		{Name: "Twilio (SMS, WhatsApp)", Enabled: cfg.TwilioAccountSID != "", Hint: "set PARLEY_TWILIO_ACCOUNT_SID and PARLEY_TWILIO_AUTH_TOKEN"},
		{Name: "WhatsApp Cloud API", Enabled: cfg.MetaAccessToken != "", Hint: "set PARLEY_META_ACCESS_TOKEN and PARLEY_META_APP_SECRET"},
		{Name: "Siren", Enabled: cfg.SirenAPIKey != "", Hint: "set PARLEY_SIREN_API_KEY"},
		{Name: "Voice transcription (Sarvam)", Enabled: cfg.SarvamAPIKey != "", Hint: "set PARLEY_SARVAM_API_KEY"},
		{Name: "Image understanding (Gemini)", Enabled: cfg.GeminiAPIKey != "", Hint: "set PARLEY_GEMINI_API_KEY"},
		{Name: "Text AI (LiteLLM / OpenAI-compatible)", Enabled: cfg.LLMBaseURL != "", Hint: "set PARLEY_LLM_BASE_URL and PARLEY_LLM_MODEL"},
		{Name: "Staff sign-in", Enabled: true, Hint: ""},
	}
}
