package handlers

import (
	"io"
	"log/slog"
	"net/url"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
)

// whatsAppForm is an inbound WhatsApp message as Twilio posts it.
var whatsAppForm = map[string]string{
	"SmsMessageSid": "SM0123456789abcdef0123456789abcdef", "NumMedia": "0", "ProfileName": "Asha",
	"MessageType": "text", "SmsSid": "SM0123456789abcdef0123456789abcdef", "WaId": "919876543210",
	"SmsStatus": "received", "Body": "hi, I would like an appointment on Tuesday", "To": "whatsapp:+14155238886",
	"NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": "SM0123456789abcdef0123456789abcdef",
	"AccountSid": "AC0123456789abcdef0123456789abcdef", "From": "whatsapp:+919876543210", "ApiVersion": "2010-04-01",
}

// twilioCtx is a fiber context holding a signed Twilio webhook, as the
// router hands it to the handler.
func twilioCtx(tb testing.TB, app *fiber.App, token string) (*fiber.Ctx, string) {
	tb.Helper()
	v := url.Values{}
	for k, val := range whatsAppForm {
		v.Set(k, val)
	}
	fctx := &fasthttp.RequestCtx{}
	fctx.Request.Header.SetMethod(fiber.MethodPost)
	fctx.Request.SetRequestURI("/webhooks/twilio")
	fctx.Request.Header.SetContentType(fiber.MIMEApplicationForm)
	fctx.Request.SetBodyString(v.Encode())
	return app.AcquireCtx(fctx), twiliotest.Sign(token, "https://parley.example.org/webhooks/twilio", whatsAppForm)
}

// The form read from a webhook holds every parameter as posted, also
// after Fiber has reused the request's buffers.
func TestFormParams_CopiesEveryParameter(t *testing.T) {
	app := fiber.New()
	c, _ := twilioCtx(t, app, "token")
	params, err := formParams(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Request().PostArgs().VisitAll(func(k, v []byte) {
		for i := range v {
			v[i] = 'x' // the buffers Fiber hands the next request
		}
	})
	app.ReleaseCtx(c)
	if len(params) != len(whatsAppForm) {
		t.Fatalf("%d parameters, want %d", len(params), len(whatsAppForm))
	}
	for k, want := range whatsAppForm {
		if params[k] != want {
			t.Fatalf("%s = %q, want %q", k, params[k], want)
		}
	}
}

// BenchmarkTwilioWebhook_ParseAndVerify is the webhook path's own work
// before storing: the form read, the signature checked, the message parsed.
func BenchmarkTwilioWebhook_ParseAndVerify(b *testing.B) {
	const token = "0123456789abcdef0123456789abcdef"
	app := fiber.New()
	c, sig := twilioCtx(b, app, token)
	v := twilio.NewVerifier("https://parley.example.org", token)
	b.ReportAllocs()
	for b.Loop() {
		params, err := formParams(c)
		if err != nil {
			b.Fatal(err)
		}
		if !v.Verify("/webhooks/twilio", "", params, sig) {
			b.Fatal("not verified")
		}
		if _, err := twilio.ParseMessage(params); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMiddleware_TraceAndObserve is what every request pays the
// tracing and logging middleware, tracing off, logging at its default.
func BenchmarkMiddleware_TraceAndObserve(b *testing.B) {
	app := fiber.New()
	app.Use(traceRequests())
	app.Use(observe(slog.New(slog.NewJSONHandler(io.Discard, nil)), newHTTPMetrics(prometheus.NewRegistry())))
	app.Post("/webhooks/twilio", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })
	h := app.Handler()
	fctx := &fasthttp.RequestCtx{}
	fctx.Request.Header.SetMethod(fiber.MethodPost)
	fctx.Request.SetRequestURI("/webhooks/twilio")
	b.ReportAllocs()
	for b.Loop() {
		h(fctx)
		if fctx.Response.StatusCode() != fiber.StatusOK {
			b.Fatal(fctx.Response.StatusCode())
		}
	}
}
