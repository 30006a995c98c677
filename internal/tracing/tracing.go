// Package tracing is Parley's OpenTelemetry: off unless
// OTEL_EXPORTER_OTLP_ENDPOINT is set; spans from a webhook through the
// queue to the engine and the send, the trace context carried in each
// job's arguments, and the trace id on log lines.
package tracing

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Tracer is Parley's tracer from the global provider (a no-op one until
// Setup, or a test, sets another).
func Tracer() trace.Tracer { return otel.Tracer("github.com/parley-chat/parley") }

// propagator writes and reads W3C trace context.
var propagator = propagation.TraceContext{}

// Carrier is the trace context a queued job carries in its arguments.
type Carrier map[string]string

// Inject returns ctx's trace context to store with a job (nil: none).
func Inject(ctx context.Context) Carrier {
	c := Carrier{}
	propagator.Inject(ctx, propagation.MapCarrier(c))
	if len(c) == 0 {
		return nil
	}
	return c
}

// Extract continues the trace a job carries.
func Extract(ctx context.Context, c Carrier) context.Context {
	if len(c) == 0 {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier(c))
}

// Setup exports spans over OTLP/HTTP to the endpoint the standard OTEL_*
// variables name, when OTEL_EXPORTER_OTLP_ENDPOINT is set (endpoint here);
// otherwise it changes nothing. The returned function flushes and stops.
func Setup(ctx context.Context, endpoint, version string) (func(context.Context) error, error) {
	if endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx) // reads OTEL_EXPORTER_OTLP_* itself
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("parley"), semconv.ServiceVersion(version))))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	return tp.Shutdown, nil
}

// LogHandler adds the trace and span ids to each log record written with
// a context inside a span.
type LogHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return LogHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h LogHandler) WithGroup(name string) slog.Handler { return LogHandler{h.Handler.WithGroup(name)} }
