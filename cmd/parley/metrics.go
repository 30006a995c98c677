package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/config"
)

// metricsAccess says how the service's own address serves /metrics:
// not at all when metrics have a listener of their own, behind the token
// when one is set, openly in development, else not at all (the service is
// public, and nobody chose how its metrics are guarded).
func metricsAccess(cfg *config.Config, dev bool, log *slog.Logger) handlers.MetricsAccess {
	switch {
	case cfg.MetricsAddr != "":
		return handlers.MetricsAccess{}
	case cfg.MetricsToken != "":
		return handlers.MetricsAccess{Token: cfg.MetricsToken}
	case dev:
		return handlers.MetricsAccess{Open: true}
	}
	log.Warn("metrics are not served: set PARLEY_METRICS_TOKEN (a bearer token for /metrics) or PARLEY_METRICS_ADDR (a listener of their own)")
	return handlers.MetricsAccess{}
}

// serveMetrics serves /metrics alone on PARLEY_METRICS_ADDR (behind the
// token when one is set) until ctx ends; it returns at once without one.
// The listener is bound before it returns, so a taken port stops the start.
func serveMetrics(ctx context.Context, cfg *config.Config, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	if cfg.MetricsAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (set PARLEY_METRICS_ADDR to a free address)", cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", handlers.MetricsHandler(reg, cfg.MetricsToken))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	log.Info("metrics listening", slog.String("addr", ln.Addr().String()))
	return serveAside(ctx, ln, srv, "metrics listener", log), nil
}

// serveAside serves srv on ln, a listener of its own beside the public
// one (metrics, the profiler), logging a failure of it as what; the
// function it returns shuts it down within two seconds.
func serveAside(ctx context.Context, ln net.Listener, srv *http.Server, what string, log *slog.Logger) (stop func()) {
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what, slog.String("error", err.Error()))
		}
	}()
	return func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(stopCtx)
	}
}
