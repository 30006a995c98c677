package main

import (
	"context"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/ai"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/meta"
	"github.com/parley-chat/parley/internal/channel/simulator"
	"github.com/parley-chat/parley/internal/channel/siren"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
)

// wiring is the pipeline with what the console shows of its parts.
type wiring struct {
	pipe      *pipeline.Pipeline
	hooks     *handlers.Webhooks
	providers []string                 // the channels configured, the simulator first
	breakers  map[string]func() string // the AI services' circuit breakers
}

// newPipeline wires the platforms that are configured into the pipeline
// and their webhooks.
func newPipeline(cfg *config.Config, db *store.DB, c store.Crypto, log *slog.Logger, reg prometheus.Registerer) (*wiring, error) {
	// The console's simulator is always there: it reaches nobody.
	senders := map[string]channel.Sender{channel.Simulator: simulator.Sender{}}
	fetchers := map[string]channel.MediaFetcher{}
	templates := store.NewTemplateStore(db)
	sources := map[string]pipeline.TemplateSource{}
	hooks := &handlers.Webhooks{
		MetaAppSecret: cfg.MetaAppSecret, MetaVerifyToken: cfg.MetaVerifyToken, SirenSecret: cfg.SirenWebhookSecret,
	}
	if cfg.TwilioAccountSID != "" {
		statusCallback := ""
		if cfg.PublicURL != "" {
			statusCallback = cfg.PublicURL + "/webhooks/twilio/status"
		}
		tc, err := twilio.NewClient(twilio.Config{
			AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken, From: cfg.TwilioFrom,
			MessagingServiceSID: cfg.TwilioMessagingServiceSID, StatusCallback: statusCallback, APIBaseURL: cfg.TwilioAPIBaseURL,
			MediaHosts: cfg.TwilioMediaHosts, MaxInFlight: cfg.SendMaxInFlight, Templates: templates,
		})
		if err != nil {
			return nil, err
		}
		senders[channel.Twilio], fetchers[channel.Twilio], sources[channel.Twilio] = tc, tc, tc
		hooks.Twilio = twilio.NewVerifier(cfg.PublicURL, cfg.TwilioAuthToken)
	}
	if cfg.MetaAccessToken != "" {
		mc, err := meta.NewClient(meta.Config{AccessToken: cfg.MetaAccessToken, PhoneNumberID: cfg.MetaPhoneNumberID, BaseURL: cfg.MetaAPIBaseURL,
			MediaHosts: cfg.MetaMediaHosts, MaxInFlight: cfg.SendMaxInFlight, WABAID: cfg.MetaWABAID, Templates: templates})
		if err != nil {
			return nil, err
		}
		senders[channel.Meta], fetchers[channel.Meta] = mc, mc
		if cfg.MetaWABAID != "" {
			sources[channel.Meta] = mc
		}
	}
	if cfg.SirenAPIKey != "" && cfg.SirenAPIBaseURL != "" {
		sc, err := siren.NewClient(siren.Config{APIKey: cfg.SirenAPIKey, BaseURL: cfg.SirenAPIBaseURL, MediaHosts: cfg.SirenMediaHosts,
			MaxInFlight: cfg.SendMaxInFlight})
		if err != nil {
			return nil, err
		}
		senders[channel.Siren], fetchers[channel.Siren] = sc, sc
	}
	// Conversations run through the flows, unless a plain acknowledgement
	// is configured instead.
	var responder pipeline.Responder = pipeline.Ack{Text: cfg.AutoReply}
	if cfg.AutoReply == "" {
		lib, err := library(cfg.FlowsDir)
		if err != nil {
			return nil, &config.Error{Problems: []config.Problem{{Var: "PARLEY_FLOWS_DIR", Reason: "holds invalid flows: " + strings.ReplaceAll(err.Error(), "\n", "; "), Fix: "run `parley flows validate` and fix what it names"}}}
		}
		flows := pipeline.NewFlows(lib, db, c)
		flows.Zone = cfg.TimeZone
		responder = flows
	}
	aiMetrics := ai.NewMetrics(reg)
	textAI, err := newTextAI(cfg.LLMBaseURL, cfg.LLMAPIKey, cfg.LLMModel, aiMetrics)
	if err != nil {
		return nil, err
	}
	w := &wiring{breakers: map[string]func() string{}}
	if t, ok := textAI.(*ai.Text); ok {
		w.breakers["Text model ("+cfg.LLMModel+")"] = t.State
	}
	if textAI == nil {
		log.Info("AI layer off: PARLEY_LLM_BASE_URL is unset, so ai_classify and ai_extract nodes take their fallback")
	}
	var speech pipeline.Speech
	if cfg.SarvamAPIKey != "" {
		s := ai.NewSpeech(ai.SpeechConfig{BaseURL: cfg.SarvamBaseURL, APIKey: cfg.SarvamAPIKey, Model: cfg.SarvamModel, Language: cfg.SarvamLanguage, Metrics: aiMetrics})
		speech, w.breakers["Speech-to-text (Sarvam)"] = s, s.State
	} else {
		log.Info("speech-to-text off: PARLEY_SARVAM_API_KEY is unset, so a voice note answering a question is asked for in writing")
	}
	var vision pipeline.Vision
	if cfg.GeminiAPIKey != "" {
		v, err := ai.NewVision(context.Background(), ai.VisionConfig{BaseURL: cfg.GeminiBaseURL, APIKey: cfg.GeminiAPIKey, Model: cfg.GeminiModel, Metrics: aiMetrics})
		if err != nil {
			return nil, err
		}
		vision, w.breakers["Vision (Gemini)"] = v, v.State
	} else {
		log.Info("vision off: PARLEY_GEMINI_API_KEY is unset, so photos are kept as attachments only")
	}
	metrics := pipeline.NewMetrics(reg)
	var events *pipeline.Events
	if cfg.EventsURL != "" {
		events = &pipeline.Events{URL: cfg.EventsURL, Secret: []byte(cfg.EventsSecret), Personal: cfg.EventsPersonal}
	}
	p, err := pipeline.New(pipeline.Deps{Events: events, Supabase: supabaseUsers(cfg), TemplateSources: sources, Templates: templates,
		DB: db, Crypto: c, Senders: senders, Fetchers: fetchers, Logger: log, Metrics: metrics,
		Responder: responder, AI: textAI, Speech: speech, Vision: vision,
		Config: pipeline.Config{Workers: cfg.Workers, SendWorkers: cfg.SendWorkers, AIWorkers: cfg.AIWorkers, SendRate: cfg.SendRate, MediaMaxBytes: cfg.MediaMaxBytes,
			SendRates:       map[string]float64{channel.Twilio: cfg.TwilioSendRate, channel.Meta: cfg.MetaSendRate, channel.Siren: cfg.SirenSendRate},
			SendMaxInFlight: cfg.SendMaxInFlight, ProcessAhead: cfg.ProcessAhead,
			JobTimeout: cfg.JobTimeout, RescueAfter: cfg.RescueAfter, RetentionDays: cfg.RetentionDays, UnderstandHold: cfg.UnderstandHold,
			SessionMaxAge: cfg.SessionAbsolute},
	})
	if err != nil {
		return nil, err
	}
	p.RegisterQueueDepth(reg)
	hooks.Pipeline, hooks.Metrics = p, metrics
	w.pipe, w.hooks = p, hooks
	for _, prov := range []string{channel.Simulator, channel.Twilio, channel.Meta, channel.Siren} {
		if senders[prov] != nil {
			w.providers = append(w.providers, prov)
		}
	}
	return w, nil
}

// newTextAI returns the text model AI nodes use, or nil (no error) when
// none is configured.
func newTextAI(baseURL, key, model string, m *ai.Metrics) (pipeline.AI, error) {
	if baseURL == "" {
		return nil, nil
	}
	return ai.NewText(ai.TextConfig{BaseURL: baseURL, APIKey: key, Model: model, Metrics: m})
}
