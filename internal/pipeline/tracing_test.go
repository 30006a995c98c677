package pipeline_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/tracing"
)

// One trace runs from the webhook across the queue: the processing job and
// the send job continue the trace their arguments carry.
func TestTracing_OneTraceFromWebhookThroughTheQueueToTheSend(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(previous); _ = tp.Shutdown(context.Background()) })

	e := newEnv(t)
	p := e.start(t, pipeline.NewFlows(engine.Builtin(), e.db, e.crypto))
	ctx, webhook := tracing.Tracer().Start(context.Background(), "POST /webhooks/twilio")
	if _, err := p.Ingest(ctx, []channel.Inbound{sms("SM1", "+919876543210", "hello")}); err != nil {
		t.Fatal(err)
	}
	webhook.End()
	waitFor(t, "the replies", func() bool { return len(e.api.Sent()) == 2 && e.idle(t) })
	_ = tp.ForceFlush(context.Background())

	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		if _, seen := byName[s.Name]; !seen {
			byName[s.Name] = s
		}
	}
	root := byName["POST /webhooks/twilio"]
	process, respond, send := byName["process_contact"], byName["respond"], byName["send_message"]
	for name, s := range map[string]tracetest.SpanStub{"process_contact": process, "respond": respond, "send_message": send} {
		if !s.SpanContext.IsValid() {
			t.Fatalf("no %s span; spans: %v", name, spans.GetSpans())
		}
		if s.SpanContext.TraceID() != root.SpanContext.TraceID() {
			t.Errorf("%s is in trace %s, not the webhook's %s", name, s.SpanContext.TraceID(), root.SpanContext.TraceID())
		}
	}
	if process.Parent.SpanID() != root.SpanContext.SpanID() || respond.Parent.SpanID() != process.SpanContext.SpanID() ||
		send.Parent.SpanID() != process.SpanContext.SpanID() {
		t.Error("the spans do not nest webhook → process_contact → respond, send_message")
	}
}
