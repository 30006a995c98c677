package handlers

import (
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"go.opentelemetry.io/otel/trace"

	"github.com/parley-chat/parley/internal/tracing"
)

const requestIDHeader = "X-Request-ID"

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID keeps a well-formed incoming X-Request-ID (set by a proxy) or
// makes a new one, stores it in c.Locals("requestid") and echoes it.
func requestID() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := c.Get(requestIDHeader)
		if !requestIDRE.MatchString(id) {
			id = utils.UUIDv4()
		} else {
			id = utils.CopyString(id)
		}
		c.Locals("requestid", id)
		c.Set(requestIDHeader, id)
		return c.Next()
	}
}

// refuseEncodedBodies answers 415 to any request whose body is compressed
// (or otherwise content-encoded). Fiber's c.Body() inflates gzip, deflate
// and brotli bodies with no cap: BodyLimit bounds only the bytes on the
// wire, so a small compressed POST could make the server allocate
// gigabytes. No platform compresses its webhooks and browsers do not
// compress requests, so nothing legitimate is lost by refusing them here,
// before any route reads a body.
func refuseEncodedBodies() fiber.Handler {
	return func(c *fiber.Ctx) error {
		enc := strings.TrimSpace(string(c.Request().Header.Peek(fiber.HeaderContentEncoding)))
		if enc != "" && !strings.EqualFold(enc, "identity") {
			return fiber.NewError(fiber.StatusUnsupportedMediaType, "Compressed request bodies are not accepted.")
		}
		return c.Next()
	}
}

func requestIDOf(c *fiber.Ctx) string {
	id, _ := c.Locals("requestid").(string)
	return id
}

// traceRequests makes a server span of each request, continuing a trace
// the caller sent (traceparent), named by its route once routed; the
// request's context carries it on to the queue.
func traceRequests() fiber.Handler {
	return func(c *fiber.Ctx) error {
		parent := c.UserContext()
		if tp := c.Get("traceparent"); tp != "" { // most callers send none: no carrier to build
			parent = tracing.Extract(parent, tracing.Carrier{"traceparent": tp, "tracestate": c.Get("tracestate")})
		}
		ctx, span := tracing.Tracer().Start(parent, "http", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		c.SetUserContext(ctx)
		err := c.Next()
		if span.IsRecording() { // with tracing off, nobody reads the name
			span.SetName(utils.CopyString(c.Method()) + " " + routeLabel(c, err))
		}
		return err
	}
}

// observe runs the error handler itself, so that it sees the final status,
// then logs one line and counts the request. It logs the route pattern,
// never the path or query, which may carry personal data.
func observe(log *slog.Logger, m *httpMetrics) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		if err != nil {
			if herr := c.App().ErrorHandler(c, err); herr != nil {
				_ = c.SendStatus(fiber.StatusInternalServerError)
			}
		}
		elapsed := time.Since(start)
		status := c.Response().StatusCode()
		route := routeLabel(c, err)
		method := utils.CopyString(c.Method())
		m.observe(method, route, strconv.Itoa(status), elapsed)
		log.LogAttrs(c.UserContext(), slog.LevelInfo, "http request",
			slog.String("request_id", requestIDOf(c)),
			slog.String("method", method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		)
		return nil
	}
}

// routeLabel is the matched route's pattern, or "unmatched" when no route
// matched, so that scanners cannot blow up the metric's label set.
func routeLabel(c *fiber.Ctx, err error) string {
	var fe *fiber.Error
	if errors.As(err, &fe) && (fe.Code == fiber.StatusNotFound || fe.Code == fiber.StatusMethodNotAllowed) && c.Route().Path == "/" && c.Path() != "/" {
		return "unmatched"
	}
	return utils.CopyString(c.Route().Path)
}

// idParam is the route's :id.
func idParam(c *fiber.Ctx) int64 {
	id, _ := strconv.ParseInt(c.Params("id"), 10, 64) // the route allows digits only (:id<int>)
	return id
}
