// Package handlers holds Parley's HTTP surface: Fiber routes for health,
// metrics, webhooks, the console and the JSON API, with one central error
// handler.
package handlers

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/helmet"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/static"
	"github.com/parley-chat/parley/views"
)

// Readiness tells whether the instance can serve traffic.
type Readiness interface {
	// Ready returns nil when the database answers and holds every
	// migration; otherwise an EUNAVAILABLE error saying which.
	Ready(ctx context.Context) error
}

// Deps are everything the server needs, passed explicitly.
type Deps struct {
	Logger    *slog.Logger
	Readiness Readiness
	Registry  *prometheus.Registry // metrics are registered here and served at /metrics
	Metrics   MetricsAccess        // who may read /metrics (the zero value: nobody, on this address)
	Version   string
	Features  []views.Feature // what the console's home page lists
	Dev       bool            // development mode: relaxed cookies, detailed pages
	Webhooks  *Webhooks       // nil: no platform webhooks
	Access    *Access         // nil: no staff routes (sign-in, the JSON API)
	Console   *Console        // nil: the console's pages are open (tests of other parts)
	Inbox     *Inbox          // with Console: the console's reading of conversations at /
	Admin     *Admin          // with Console: staff, audit log and system pages
	Dashboard *Dashboard      // nil: no dashboard (console page and API)
	Desk      *Desk           // nil: no notes, tags or saved replies (console and API)
	// Broadcasts, when set, serves broadcasts in the console and the API.
	Broadcasts *Broadcasts
	// ProxyHops is how many trusted proxies stand in front of the server
	// (PARLEY_TRUSTED_PROXY_HOPS): the client's address is read that many
	// entries from the right of X-Forwarded-For. 0 trusts no header.
	ProxyHops int
	// Draining, once set, says the instance is shutting down: /readyz and
	// the webhooks answer 503 (the platform retries elsewhere or later)
	// while what is in flight finishes. nil: never.
	Draining *atomic.Bool
}

// contentSecurityPolicy allows the console's own scripts, styles and
// images only: no inline script, no other origin, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// refuseWhileDraining answers 503 once draining is set.
func refuseWhileDraining(draining *atomic.Bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if draining != nil && draining.Load() {
			c.Set(fiber.HeaderRetryAfter, "1")
			return models.Errorf(models.EUNAVAILABLE, "This instance is shutting down; try again.")
		}
		return c.Next()
	}
}

// NewServer returns the Fiber app with every route registered.
func NewServer(d Deps) *fiber.App {
	bodyLimit := 1 << 20
	if d.Broadcasts != nil {
		bodyLimit = broadcastBodyLimit // an audience's CSV; smallBodies keeps 1 MiB elsewhere
	}
	app := fiber.New(fiber.Config{
		AppName:               "parley",
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler(d.Logger),
		BodyLimit:             bodyLimit,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           2 * time.Minute,
	})
	m := newHTTPMetrics(d.Registry)

	app.Use(realClient(d.ProxyHops))
	app.Use(requestID())
	app.Use(traceRequests())
	app.Use(observe(d.Logger, m))
	app.Use(recover.New())
	app.Use(refuseEncodedBodies())
	app.Use(smallBodies(1<<20, "/api/v1/broadcasts", "/broadcasts"))
	app.Use(helmet.New(helmet.Config{
		ContentSecurityPolicy: contentSecurityPolicy,
		ReferrerPolicy:        "same-origin",
		XFrameOptions:         "DENY",
		HSTSMaxAge:            31536000, // sent over HTTPS only
	}))

	app.Get("/healthz", handleHealthz())
	app.Get("/readyz", refuseWhileDraining(d.Draining), handleReadyz(d.Readiness))
	registerMetrics(app, d.Registry, d.Metrics)
	app.Use("/static", filesystem.New(filesystem.Config{
		Root:   static.HTTPFS(),
		MaxAge: 3600,
	}))
	registerWebhooks(app, d.Webhooks, refuseWhileDraining(d.Draining))
	registerAPI(app, d.Access, d.Inbox, d.Admin, d.Broadcasts)
	if d.Dashboard != nil && d.Access != nil {
		d.Dashboard.registerAPI(app) // behind registerAPI's bearer, which guards /api/v1
	}
	if d.Desk != nil && d.Access != nil {
		d.Desk.registerAPI(app) // likewise
	}
	if d.Console == nil { // no sign-in configured: the status page alone (tests of other parts)
		app.Get("/", handleHome(d))
		return app
	}
	d.Console.register(app)
	app.Get("/status", d.Console.signedIn, handleHome(d))
	if d.Dashboard != nil {
		d.Dashboard.register(app, d.Console.signedIn)
	}
	if d.Desk != nil {
		d.Desk.register(app, d.Console.signedIn)
	}
	if d.Admin != nil {
		d.Admin.register(app, d.Access, d.Console.signedIn)
	}
	if d.Broadcasts != nil {
		d.Broadcasts.register(app, d.Console.signedIn)
	}
	if d.Inbox != nil {
		d.Inbox.register(app, d.Access, d.Console.signedIn)
	} else {
		app.Get("/", d.Console.signedIn, handleHome(d))
	}
	return app
}
