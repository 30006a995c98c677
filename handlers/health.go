package handlers

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/models"
)

// handleHealthz answers 200 while the process runs.
func handleHealthz() fiber.Handler {
	return func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"status": "ok"})
	}
}

// handleReadyz answers 200 when the database answers and is migrated, else
// 503 with the reason.
func handleReadyz(r Readiness) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
		defer cancel()
		if err := r.Ready(ctx); err != nil {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{
				"status": "unavailable",
				"reason": models.ErrorMessage(err),
			})
		}
		return c.JSON(fiber.Map{"status": "ready"})
	}
}
