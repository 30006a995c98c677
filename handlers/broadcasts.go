package handlers

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
)

// BroadcastActions are the staff actions on broadcasts (pipeline.Pipeline):
// each checks the actor's role (EFORBIDDEN) and audits itself; a change a
// broadcast's status does not allow is ECONFLICT.
type BroadcastActions interface {
	PlanBroadcast(ctx context.Context, actor models.Actor, req pipeline.BroadcastRequest) (*pipeline.BroadcastPlan, error)
	ConfirmBroadcast(ctx context.Context, actor models.Actor, id int64) error
	PauseBroadcast(ctx context.Context, actor models.Actor, id int64) error
	ResumeBroadcast(ctx context.Context, actor models.Actor, id int64) error
	CancelBroadcast(ctx context.Context, actor models.Actor, id int64) error
	// Broadcast and Broadcasts decrypt what a broadcast sends and to whom,
	// and audit the read; BroadcastProgress decrypts nothing.
	Broadcast(ctx context.Context, actor models.Actor, id int64) (*models.Broadcast, *models.BroadcastProgress, error)
	BroadcastProgress(ctx context.Context, actor models.Actor, id int64) (models.BroadcastStatus, *models.BroadcastProgress, error)
	Broadcasts(ctx context.Context, actor models.Actor, limit int) ([]*models.Broadcast, error)
}

// Broadcasts serves broadcasts in the console and the JSON API: both
// translate HTTP to the same BroadcastActions.
type Broadcasts struct {
	Actions BroadcastActions
	// Zone is the clinic's time zone (PARLEY_TIME_ZONE): a time to send
	// written without an offset is read in it, and shown in it.
	Zone *time.Location
}

// broadcastBodyLimit bounds the requests that may carry an audience's CSV
// (its bound, and room for the rest of the form); every other request
// keeps the server's 1 MiB.
const broadcastBodyLimit = pipeline.MaxAudienceCSVBytes + 1<<20

// smallBodies refuses a body over limit on every route but those under the
// prefixes (the broadcast routes, which take a CSV): the server's own limit
// is raised to theirs only.
func smallBodies(limit int, prefixes ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if len(c.Request().Body()) <= limit && c.Request().Header.ContentLength() <= limit {
			return c.Next()
		}
		for _, p := range prefixes {
			if strings.HasPrefix(c.Path(), p) {
				return c.Next()
			}
		}
		return fiber.ErrRequestEntityTooLarge
	}
}

// zone is the clinic's time zone, UTC when none is set.
func (b *Broadcasts) zone() *time.Location {
	if b.Zone == nil {
		return time.UTC
	}
	return b.Zone
}

// sendAt reads a time to send: RFC 3339 with its offset, or a date and
// time without one ("2026-12-08T10:00", as a browser's datetime-local
// field sends it), read in the clinic's time zone. "": now.
func (b *Broadcasts) sendAt(s string) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return &t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, b.zone()); err == nil {
			return &t, nil
		}
	}
	return nil, models.Errorf(models.EINVALID, "send_at is a time such as 2026-12-08T10:00 (in %s) or with its offset (RFC 3339).", b.zone())
}

// registerAPI adds the broadcast routes of the JSON API.
func (b *Broadcasts) registerAPI(api fiber.Router) {
	may := require(auth.Broadcast)
	api.Get("/broadcasts", may, b.apiList())
	api.Post("/broadcasts", may, b.apiPlan())
	api.Get("/broadcasts/:id<int>", may, b.apiGet())
	for _, action := range []string{"confirm", "pause", "resume", "cancel"} {
		api.Post("/broadcasts/:id<int>/"+action, may, b.apiChange(action))
	}
}

// apiBroadcastRequest is the body of POST /api/v1/broadcasts.
type apiBroadcastRequest struct {
	Name     string              `json:"name"`
	Channel  models.Channel      `json:"channel"`
	Provider string              `json:"provider"`
	Template *models.TemplateRef `json:"template"`
	Flow     string              `json:"flow"`
	Audience models.Audience     `json:"audience"`
	CSV      *string             `json:"csv"` // the audience as CSV text, instead of the filter
	SendAt   string              `json:"send_at"`
}

func (b *Broadcasts) apiPlan() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in apiBroadcastRequest
		if err := readJSON(c, &in); err != nil {
			return err
		}
		at, err := b.sendAt(in.SendAt)
		if err != nil {
			return err
		}
		req := pipeline.BroadcastRequest{Name: in.Name, Channel: in.Channel, Provider: in.Provider, SendAt: at,
			Message: models.BroadcastMessage{Template: in.Template, FlowID: in.Flow}, Audience: in.Audience}
		if in.CSV != nil { // an empty one is refused, never taken for no CSV
			req.CSV = strings.NewReader(*in.CSV)
		}
		plan, err := b.Actions.PlanBroadcast(c.UserContext(), actorOf(c), req)
		if err != nil {
			return err
		}
		bad := plan.BadLines
		if bad == nil {
			bad = []models.BadLine{}
		}
		return c.Status(fiber.StatusCreated).JSON(fiber.Map{"broadcast": plan.Broadcast, "progress": plan.Progress, "bad_lines": bad})
	}
}

func (b *Broadcasts) apiList() fiber.Handler {
	return func(c *fiber.Ctx) error {
		list, err := b.Actions.Broadcasts(c.UserContext(), actorOf(c), apiPage)
		if err != nil {
			return err
		}
		if list == nil {
			list = []*models.Broadcast{}
		}
		return c.JSON(fiber.Map{"broadcasts": list})
	}
}

func (b *Broadcasts) apiGet() fiber.Handler {
	return func(c *fiber.Ctx) error {
		bc, progress, err := b.Actions.Broadcast(c.UserContext(), actorOf(c), idParam(c))
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"broadcast": bc, "progress": progress})
	}
}

func (b *Broadcasts) apiChange(action string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := b.change(c, action); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// change applies a staff action to the broadcast of the route.
func (b *Broadcasts) change(c *fiber.Ctx, action string) error {
	ctx, actor, id := c.UserContext(), actorOf(c), idParam(c)
	switch action {
	case "confirm":
		return b.Actions.ConfirmBroadcast(ctx, actor, id)
	case "pause":
		return b.Actions.PauseBroadcast(ctx, actor, id)
	case "resume":
		return b.Actions.ResumeBroadcast(ctx, actor, id)
	}
	return b.Actions.CancelBroadcast(ctx, actor, id)
}
