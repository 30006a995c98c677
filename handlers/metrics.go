package handlers

import (
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method, route pattern and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route", "status"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (m *httpMetrics) observe(method, route, status string, d time.Duration) {
	m.requests.WithLabelValues(method, route, status).Inc()
	m.latency.WithLabelValues(method, route, status).Observe(d.Seconds())
}

// MetricsAccess says who may read /metrics on the service's address. The
// service is public (Cloud Run, behind a load balancer), and its metrics
// tell traffic, failures and providers to whoever asks: they are served
// there only behind a token, or openly in development.
type MetricsAccess struct {
	// Token is the Bearer token asked for; "" asks none.
	Token string
	// Open serves /metrics without a token (`parley dev`). With neither
	// Token nor Open, /metrics is not served on the service's address
	// (a listener of its own may serve it: MetricsHandler).
	Open bool
}

// MetricsHandler serves reg's metrics to a caller presenting token as
// "Authorization: Bearer …" (to anyone when token is ""); others get 401.
// The service's /metrics and the metrics listener of PARLEY_METRICS_ADDR
// both use it.
func MetricsHandler(reg *prometheus.Registry, token string) http.Handler {
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if token == "" {
		return metrics
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Constant time: the comparison must not tell how much of a
		// guess was right.
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "Metrics need a bearer token (PARLEY_METRICS_TOKEN).", http.StatusUnauthorized)
			return
		}
		metrics.ServeHTTP(w, r)
	})
}

// registerMetrics serves /metrics on the service's address as access
// allows, or not at all.
func registerMetrics(app *fiber.App, reg *prometheus.Registry, access MetricsAccess) {
	if access.Token == "" && !access.Open {
		return
	}
	app.Get("/metrics", adaptor.HTTPHandler(MetricsHandler(reg, access.Token)))
}
