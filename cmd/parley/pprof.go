package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/parley-chat/parley/internal/config"
)

// servePprof serves Go's profiler on PARLEY_PPROF_ADDR (loopback only,
// checked by config) until stopped; it returns at once without one. Its
// own mux, so nothing registers on http.DefaultServeMux and the public
// router never sees these routes.
func servePprof(ctx context.Context, cfg *config.Config, log *slog.Logger) (stop func(), err error) {
	if cfg.PprofAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.PprofAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (set PARLEY_PPROF_ADDR to a free loopback address)", cfg.PprofAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// A CPU profile or trace runs for its ?seconds=, so no write timeout.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Warn("profiler listening (PARLEY_PPROF_ADDR): for measuring, not for production", slog.String("addr", ln.Addr().String()))
	return serveAside(ctx, ln, srv, "pprof listener", log), nil
}
