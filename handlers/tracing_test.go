package handlers_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/tracing"
)

// Each request is a server span named by its route, continuing the trace
// its caller sent, and its log line carries the trace id.
func TestTracing_RequestsAreSpansAndLogLinesCarryTheTraceID(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(previous); _ = tp.Shutdown(context.Background()) })

	readiness, err := store.NewReadiness(pgtest.Open(t))
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	app := handlers.NewServer(handlers.Deps{Logger: slog.New(tracing.LogHandler{Handler: slog.NewJSONHandler(logs, nil)}),
		Readiness: readiness, Registry: prometheus.NewRegistry(), Version: "test"})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if resp, _ := do(t, app, req); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	got := spans.GetSpans()
	if len(got) != 1 || got[0].Name != "GET /healthz" || got[0].SpanContext.TraceID().String() != traceID {
		t.Fatalf("spans %+v, want one GET /healthz in the caller's trace", got)
	}
	if !strings.Contains(logs.String(), `"trace_id":"`+traceID+`"`) {
		t.Fatalf("the request's log line lacks the trace id:\n%s", logs)
	}
}
