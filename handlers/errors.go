package handlers

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// statusOf maps model error codes to HTTP statuses, in this one place.
var statusOf = map[string]int{
	models.ECONFLICT:       fiber.StatusConflict,
	models.EINTERNAL:       fiber.StatusInternalServerError,
	models.EINVALID:        fiber.StatusBadRequest,
	models.ENOTFOUND:       fiber.StatusNotFound,
	models.EUNAUTHORIZED:   fiber.StatusUnauthorized,
	models.EFORBIDDEN:      fiber.StatusForbidden,
	models.EUNAVAILABLE:    fiber.StatusServiceUnavailable,
	models.ENOTIMPLEMENTED: fiber.StatusNotImplemented,
}

// errorHandler answers a failed request in its caller's language: a plain
// status for a platform's webhook, JSON for the API, an alert fragment for
// HTMX and a full page for a browser. Internal errors are logged with the
// request id and never shown.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		status, message := classify(err)
		if status >= 500 {
			level := slog.LevelError
			if status == fiber.StatusServiceUnavailable {
				level = slog.LevelWarn // a dependency is down; the caller retries
			}
			log.LogAttrs(c.UserContext(), level, "request failed",
				slog.String("request_id", requestIDOf(c)),
				slog.String("route", c.Route().Path),
				slog.String("error", err.Error()),
			)
		}
		c.Status(status)
		path := c.Path()
		switch {
		case strings.HasPrefix(path, "/webhooks/"):
			if status == fiber.StatusRequestEntityTooLarge {
				// Platforms read any 4xx as "do not retry"; 400 is what
				// they document for a body they sent wrong.
				c.Status(fiber.StatusBadRequest)
			}
			return c.SendString(message)
		case strings.HasPrefix(path, "/api/") || strings.Contains(c.Get(fiber.HeaderAccept), "application/json"):
			return c.JSON(fiber.Map{"error": fiber.Map{"code": codeOf(status), "message": message}})
		case c.Get("HX-Request") == "true":
			// Failed HTMX requests land in the page's alert area.
			c.Set("HX-Retarget", "#alerts")
			c.Set("HX-Reswap", "afterbegin")
			return render(c, views.Alert(message))
		default:
			return render(c, views.ErrorPage(views.ErrorProps{Status: status, Message: message}))
		}
	}
}

// classify returns the status and the caller-safe message of err.
func classify(err error) (int, string) {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fiber.StatusNotFound:
			return fe.Code, "Page not found."
		case fiber.StatusRequestEntityTooLarge:
			return fe.Code, "Request body too large."
		}
		if fe.Code >= 500 {
			return fe.Code, "Internal error."
		}
		return fe.Code, fe.Message
	}
	code := models.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = fiber.StatusInternalServerError
	}
	return status, models.ErrorMessage(err)
}

// codeOf is the code named in JSON error bodies for a status: the model's
// codes, and two statuses only the router gives. The API's document lists
// them all (ErrorCode); they do not change.
func codeOf(status int) string {
	switch status {
	case fiber.StatusRequestEntityTooLarge:
		return "too_large"
	case fiber.StatusMethodNotAllowed:
		return "method_not_allowed"
	}
	for code, s := range statusOf {
		if s == status {
			return code
		}
	}
	if status >= 500 {
		return models.EINTERNAL
	}
	return models.EINVALID
}
