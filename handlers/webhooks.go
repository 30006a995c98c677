package handlers

import (
	"bytes"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/meta"
	"github.com/parley-chat/parley/internal/channel/siren"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
)

// Webhooks configures the platforms' webhooks. A platform whose secret is
// unset answers 404: it is not enabled on this instance.
type Webhooks struct {
	Pipeline        *pipeline.Pipeline
	Metrics         *pipeline.Metrics
	Twilio          *twilio.Verifier // nil: Twilio off
	MetaAppSecret   string
	MetaVerifyToken string
	SirenSecret     string
	SirenVerify     siren.Verifier // nil: siren.VerifyHexHMAC
}

// maxWebhookBody caps a webhook's body: far above what platforms send
// (Twilio's are a few KB), far below what would hurt. Larger bodies than
// the server's own limit (1 MiB) are cut off by the HTTP layer itself.
const maxWebhookBody = 512 << 10

func registerWebhooks(app *fiber.App, w *Webhooks, draining fiber.Handler) {
	if w == nil || w.Pipeline == nil {
		return
	}
	app.Use("/webhooks", draining, func(c *fiber.Ctx) error {
		if len(rawBody(c)) > maxWebhookBody {
			w.count("any", "body", "too_large")
			return models.Errorf(models.EINVALID, "Body too large.")
		}
		return c.Next()
	})
	if w.SirenVerify == nil {
		w.SirenVerify = siren.VerifyHexHMAC
	}
	if w.Twilio != nil {
		app.Post("/webhooks/twilio", w.twilioMessage)
		app.Post("/webhooks/twilio/status", w.twilioStatus)
	}
	if w.MetaAppSecret != "" {
		app.Get("/webhooks/meta", w.metaVerify)
		app.Post("/webhooks/meta", w.metaEvents)
	}
	if w.SirenSecret != "" {
		app.Post("/webhooks/siren", w.sirenEvents)
	}
}

// rawBody is the request body exactly as sent. Never c.Body(), which
// inflates compressed bodies without a bound (refuseEncodedBodies refuses
// them first, and this keeps a slip there from becoming a bomb).
func rawBody(c *fiber.Ctx) []byte { return c.Request().Body() }

func (w *Webhooks) count(provider, kind, outcome string) {
	w.Metrics.Webhooks.WithLabelValues(provider, kind, outcome).Inc()
}

// refuse answers a webhook that failed its signature check.
func (w *Webhooks) refuse(provider, kind string) error {
	w.count(provider, kind, "bad_signature")
	return models.Errorf(models.EFORBIDDEN, "Signature check failed.")
}

// reject answers a malformed webhook.
func (w *Webhooks) reject(provider, kind string, err error) error {
	w.count(provider, kind, "malformed")
	if models.ErrorCode(err) == models.EINVALID {
		return err
	}
	return models.Errorf(models.EINVALID, "Malformed request.")
}

// formParams copies the urlencoded body's parameters; Fiber reuses its
// buffers after the handler returns. They are copied into one string and
// sliced from it, one allocation where a string per key and value made
// thirty on a Twilio message.
func formParams(c *fiber.Ctx) (map[string]string, error) {
	if !strings.HasPrefix(strings.ToLower(string(c.Request().Header.ContentType())), fiber.MIMEApplicationForm) {
		return nil, models.Errorf(models.EINVALID, "Expected a form body.")
	}
	if !escapesWellFormed(c.Body()) {
		return nil, models.Errorf(models.EINVALID, "The form body has a percent sign that escapes nothing (%%XX, two hex digits).")
	}
	args := c.Request().PostArgs()
	size := 0
	args.VisitAll(func(k, v []byte) { size += len(k) + len(v) })
	var b strings.Builder
	b.Grow(size)
	args.VisitAll(func(k, v []byte) { b.Write(k); b.Write(v) })
	all, at := b.String(), 0
	params := make(map[string]string, args.Len())
	args.VisitAll(func(k, v []byte) {
		key := all[at : at+len(k)]
		at += len(k)
		params[key] = all[at : at+len(v)]
		at += len(v)
	})
	return params, nil
}

// escapesWellFormed reports whether every % in an urlencoded body starts an
// escape of two hex digits, as url.ParseQuery requires; fasthttp keeps a
// malformed one as it is, which would store "%ZZ" as a sender.
func escapesWellFormed(b []byte) bool {
	for i := bytes.IndexByte(b, '%'); i >= 0; i = bytes.IndexByte(b, '%') {
		if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
			return false
		}
		b = b[i+3:]
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (w *Webhooks) twilioMessage(c *fiber.Ctx) error {
	start := time.Now()
	defer func() { w.Metrics.AckLatency.WithLabelValues(channel.Twilio).Observe(time.Since(start).Seconds()) }()
	params, err := formParams(c)
	if err != nil {
		return w.reject(channel.Twilio, "message", err)
	}
	if !w.Twilio.Verify(c.Path(), string(c.Request().URI().QueryString()), params, c.Get("X-Twilio-Signature")) {
		return w.refuse(channel.Twilio, "message")
	}
	in, err := twilio.ParseMessage(params)
	if err != nil {
		return w.reject(channel.Twilio, "message", err)
	}
	stored, err := w.Pipeline.Ingest(c.UserContext(), []channel.Inbound{in})
	if err != nil {
		w.count(channel.Twilio, "message", "unavailable")
		return err
	}
	w.count(channel.Twilio, "message", outcome(stored))
	c.Set(fiber.HeaderContentType, "text/xml; charset=utf-8")
	return c.SendString(twilio.TwiML)
}

func outcome(stored int) string {
	if stored == 0 {
		return "duplicate"
	}
	return "stored"
}

func (w *Webhooks) twilioStatus(c *fiber.Ctx) error {
	params, err := formParams(c)
	if err != nil {
		return w.reject(channel.Twilio, "status", err)
	}
	if !w.Twilio.Verify(c.Path(), string(c.Request().URI().QueryString()), params, c.Get("X-Twilio-Signature")) {
		return w.refuse(channel.Twilio, "status")
	}
	st, known, err := twilio.ParseStatus(params)
	if err != nil {
		return w.reject(channel.Twilio, "status", err)
	}
	if !known {
		w.count(channel.Twilio, "status", "ignored")
		return noBody(c)
	}
	if err := w.Pipeline.ApplyStatuses(c.UserContext(), []channel.Status{st}); err != nil {
		w.count(channel.Twilio, "status", "unavailable")
		return err
	}
	w.count(channel.Twilio, "status", "applied")
	return noBody(c)
}

// noBody answers 200 with an empty body, as Twilio expects of a status
// callback (Fiber's SendStatus would write "OK").
func noBody(c *fiber.Ctx) error {
	c.Status(fiber.StatusOK)
	return nil
}

func (w *Webhooks) metaVerify(c *fiber.Ctx) error {
	challenge, ok := meta.VerifyChallenge(w.MetaVerifyToken, c.Query("hub.mode"), c.Query("hub.verify_token"), c.Query("hub.challenge"))
	if !ok {
		return w.refuse(channel.Meta, "verify")
	}
	w.count(channel.Meta, "verify", "ok")
	return c.SendString(challenge)
}

func (w *Webhooks) metaEvents(c *fiber.Ctx) error {
	start := time.Now()
	defer func() { w.Metrics.AckLatency.WithLabelValues(channel.Meta).Observe(time.Since(start).Seconds()) }()
	body := rawBody(c) // the bytes as signed
	if !meta.VerifySignature(w.MetaAppSecret, body, c.Get("X-Hub-Signature-256")) {
		return w.refuse(channel.Meta, "events")
	}
	ev, err := meta.Parse(body)
	if err != nil {
		return w.reject(channel.Meta, "events", err)
	}
	for range ev.Ignored {
		w.count(channel.Meta, "event", "ignored")
	}
	if len(ev.Messages) > 0 {
		stored, err := w.Pipeline.Ingest(c.UserContext(), ev.Messages)
		if err != nil {
			w.count(channel.Meta, "events", "unavailable")
			return err
		}
		w.count(channel.Meta, "events", outcome(stored))
	}
	if len(ev.Statuses) > 0 {
		if err := w.Pipeline.ApplyStatuses(c.UserContext(), ev.Statuses); err != nil {
			w.count(channel.Meta, "events", "unavailable")
			return err
		}
	}
	return c.SendStatus(fiber.StatusOK)
}

func (w *Webhooks) sirenEvents(c *fiber.Ctx) error {
	start := time.Now()
	defer func() { w.Metrics.AckLatency.WithLabelValues(channel.Siren).Observe(time.Since(start).Seconds()) }()
	body := rawBody(c)
	if !w.SirenVerify(w.SirenSecret, body, c.Get("X-Siren-Signature")) {
		return w.refuse(channel.Siren, "events")
	}
	in, ok, err := siren.Parse(body)
	if err != nil {
		return w.reject(channel.Siren, "events", err)
	}
	if !ok {
		w.count(channel.Siren, "events", "ignored")
		return c.SendStatus(fiber.StatusOK)
	}
	stored, err := w.Pipeline.Ingest(c.UserContext(), []channel.Inbound{in})
	if err != nil {
		w.count(channel.Siren, "events", "unavailable")
		return err
	}
	w.count(channel.Siren, "events", outcome(stored))
	return c.SendStatus(fiber.StatusOK)
}
