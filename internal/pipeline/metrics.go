package pipeline

import (
	"context"
	"github.com/parley-chat/parley/internal/store"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus collectors. Labels carry providers
// and outcomes only, never anything about a person.
type Metrics struct {
	Webhooks       *prometheus.CounterVec // by provider and outcome; counted by the handlers
	AckLatency     *prometheus.HistogramVec
	ingestLatency  prometheus.Histogram
	ingestCommits  *prometheus.CounterVec // ingest transactions by outcome
	ingestBatch    prometheus.Histogram   // webhooks (requests) per committed ingest transaction
	ingestPending  prometheus.Gauge       // webhooks inside Ingest now: queued for a committer or in its batch
	statuses       *prometheus.CounterVec
	sends          *prometheus.CounterVec
	processed      prometheus.Counter
	setAside       prometheus.Counter
	jobLatency     *prometheus.HistogramVec
	ai             *prometheus.CounterVec
	throttled      *prometheus.CounterVec // provider answers that said slow down (429 and its like), by provider
	inFlight       *prometheus.GaugeVec   // provider calls out now, by provider
	inFlightLimit  *prometheus.GaugeVec   // how many may be out now, by provider
	sendsAhead     prometheus.Gauge       // seconds the replies waiting to be sent would take, as last read
	processPaced   prometheus.Counter     // processing jobs that waited for a turn while sending was behind
	processWaiting prometheus.Gauge       // processing jobs waiting for a turn now
}

// NewMetrics makes the collectors and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		Webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_webhooks_total", Help: "Webhook deliveries by provider, kind and outcome.",
		}, []string{"provider", "kind", "outcome"}),
		AckLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_webhook_ack_seconds", Help: "Time from a webhook's arrival to its answer, by provider.", Buckets: buckets,
		}, []string{"provider"}),
		ingestLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_ingest_commit_seconds", Help: "Time to store inbound messages and enqueue their processing.", Buckets: buckets,
		}),
		ingestCommits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_ingest_commits_total", Help: "Ingest transactions by outcome (committed, failed); a failed batch's webhooks are then tried one at a time.",
		}, []string{"outcome"}),
		ingestBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_ingest_batch_requests", Help: "Webhooks sharing one committed ingest transaction (group commit).", Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		ingestPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_ingest_pending", Help: "Webhooks waiting for their ingest commit now (queued for a committer or in its transaction).",
		}),
		statuses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_delivery_statuses_total", Help: "Delivery status callbacks by provider and outcome (applied, ignored).",
		}, []string{"provider", "outcome"}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_sends_total", Help: "Send attempts by provider and outcome.",
		}, []string{"provider", "outcome"}),
		processed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_processed_total", Help: "Inbound messages processed.",
		}),
		setAside: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_set_aside_total", Help: "Inbound messages that failed processing on every try, set aside for a person.",
		}),
		jobLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_job_seconds", Help: "Time jobs take to run, by kind.", Buckets: buckets,
		}, []string{"kind"}),
		ai: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_ai_requests_total", Help: "AI requests by task (classify, extract, transcribe, describe) and outcome (answered, understood, retried, failed, off).",
		}, []string{"task", "outcome"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_send_throttled_total", Help: "Sends the provider refused for its rate (HTTP 429, Twilio 20429, Meta 130429/131056/80007), by provider: retried later, never failed.",
		}, []string{"provider"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_send_in_flight", Help: "Calls to the provider's send API in flight from this instance, by provider.",
		}, []string{"provider"}),
		inFlightLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_send_in_flight_limit", Help: "How many send calls may be in flight from this instance now (send rate × latency, under the cap and the provider's 429s), by provider.",
		}, []string{"provider"}),
		sendsAhead: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_sends_ahead_seconds", Help: "How long the replies waiting in the send queue would take to leave at their provider's send rate (the slowest provider's), as processing last read it.",
		}),
		processPaced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_process_paced_total", Help: "Processing jobs that waited for a turn because sending was behind (more than PARLEY_PROCESS_AHEAD of replies waiting).",
		}),
		processWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_process_waiting", Help: "Processing jobs waiting for a turn now, because sending is behind.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Webhooks, m.AckLatency, m.ingestLatency, m.ingestCommits, m.ingestBatch, m.ingestPending, m.statuses, m.sends, m.processed, m.setAside, m.jobLatency, m.ai, m.throttled, m.inFlight, m.inFlightLimit,
			m.sendsAhead, m.processPaced, m.processWaiting)
	}
	return m
}

// queueDepth reports the jobs waiting in the queue, by kind and state, read
// from Postgres when metrics are scraped.
type queueDepth struct {
	p    *Pipeline
	desc *prometheus.Desc
}

func (q *queueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *queueDepth) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := store.JobCounts(ctx, q.p.db, store.JobsWaiting)
	if err != nil {
		return // the database is down: /readyz says so
	}
	for _, c := range counts {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(c.N), c.Kind, c.State)
	}
}

// RegisterQueueDepth adds the queue depth gauge to reg.
func (p *Pipeline) RegisterQueueDepth(reg prometheus.Registerer) {
	reg.MustRegister(&queueDepth{p: p, desc: prometheus.NewDesc("parley_queue_jobs",
		"Jobs waiting or running in the queue, by kind and state.", []string{"kind", "state"}, nil)})
}
