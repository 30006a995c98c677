package handlers

import (
	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/models"
)

// The console's forms keep the user's place and words: sent through HTMX,
// a refused action (the service's EINVALID, ECONFLICT, EFORBIDDEN or
// ENOTFOUND, whose messages say what to do) is answered 422 with the form,
// or the words beside its button, again; the layout's htmx-config swaps a
// 422 in place (htmx swaps no other 4xx). A success answers HX-Redirect to
// where the plain form's 303 goes. Without HTMX, both go as they always
// did: the redirect, or the central error handler's page.

// isHTMX says whether c came from HTMX.
func isHTMX(c *fiber.Ctx) bool { return c.Get("HX-Request") == "true" }

// refused answers err for a form sent through HTMX with again(reason), in
// place; any other caller or error goes to the central error handler.
func refused(c *fiber.Ctx, err error, again func(reason string) templ.Component) error {
	switch models.ErrorCode(err) {
	case models.EINVALID, models.ECONFLICT, models.EFORBIDDEN, models.ENOTFOUND:
	default:
		return err
	}
	if !isHTMX(c) {
		return err
	}
	c.Status(fiber.StatusUnprocessableEntity)
	return render(c, again(models.ErrorMessage(err)))
}

// goOn sends the browser on to to after a form's success.
func goOn(c *fiber.Ctx, to string) error {
	if isHTMX(c) {
		c.Set("HX-Redirect", to)
		return c.SendStatus(fiber.StatusNoContent)
	}
	return c.Redirect(to, fiber.StatusSeeOther)
}
