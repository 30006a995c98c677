package ai

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count the AI layer's calls and what they used. Labels carry
// providers, tasks and outcomes only.
type Metrics struct {
	requests *prometheus.CounterVec
	used     *prometheus.CounterVec
	seconds  *prometheus.CounterVec
}

// NewMetrics makes the collectors and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_ai_provider_requests_total", Help: "Calls to AI providers by provider, task and outcome (answered, failed, resting).",
		}, []string{"provider", "task", "outcome"}),
		used: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_ai_tokens_total", Help: "Tokens AI providers counted, by provider and kind (prompt, completion).",
		}, []string{"provider", "kind"}),
		seconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_ai_audio_seconds_total", Help: "Seconds of audio sent to speech-to-text providers, by provider.",
		}, []string{"provider"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.used, m.seconds)
	}
	return m
}

func (m *Metrics) request(provider, task, outcome string) {
	if m != nil {
		m.requests.WithLabelValues(provider, task, outcome).Inc()
	}
}

func (m *Metrics) tokens(provider string, prompt, completion int64) {
	if m != nil {
		m.used.WithLabelValues(provider, "prompt").Add(float64(prompt))
		m.used.WithLabelValues(provider, "completion").Add(float64(completion))
	}
}

func (m *Metrics) audio(provider string, d time.Duration) {
	if m != nil {
		m.seconds.WithLabelValues(provider).Add(d.Seconds())
	}
}
