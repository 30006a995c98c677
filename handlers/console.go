package handlers

import (
	"context"
	"time"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// handleHome shows the console's landing page.
func handleHome(d Deps) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
		defer cancel()
		dbStatus := "ready"
		if err := d.Readiness.Ready(ctx); err != nil {
			dbStatus = models.ErrorMessage(err)
		}
		return render(c, views.Home(views.HomeProps{
			Staff:    badge(c),
			Version:  d.Version,
			Database: dbStatus,
			Features: d.Features,
		}))
	}
}

// render writes a templ component as the HTML response.
func render(c *fiber.Ctx, component templ.Component) error {
	c.Type("html", "utf-8")
	return component.Render(c.UserContext(), c.Response().BodyWriter())
}
