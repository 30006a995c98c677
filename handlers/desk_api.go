package handlers

import (
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// registerAPI adds the desk's JSON routes under /api/v1, behind
// registerAPI's bearer, which guards the prefix.
func (d *Desk) registerAPI(app *fiber.App) {
	api := app.Group("/api/v1")
	read := require(auth.ReadConversations)
	api.Get("/contacts/:id<int>/notes", read, d.apiNotes())
	api.Post("/contacts/:id<int>/notes", require(auth.WriteNotes), d.apiAddNote())
	api.Patch("/notes/:id<int>", require(auth.WriteNotes), d.apiEditNote())
	api.Delete("/notes/:id<int>", require(auth.WriteNotes), d.apiDeleteNote())
	api.Get("/conversations/:id<int>/tags", read, d.apiTags())
	api.Post("/conversations/:id<int>/tags", require(auth.TagConversations), d.apiAddTag())
	api.Delete("/conversations/:id<int>/tags/:tag", require(auth.TagConversations), d.apiRemoveTag())
	api.Get("/saved-replies", require(auth.Reply), d.apiReplies())
	api.Post("/saved-replies", require(auth.ManageReplies), d.apiSaveReply(false))
	api.Put("/saved-replies/:id<int>", require(auth.ManageReplies), d.apiSaveReply(true))
	api.Delete("/saved-replies/:id<int>", require(auth.ManageReplies), d.apiDeleteReply())
	api.Get("/contacts/:id<int>/saved-replies/:reply<int>", require(auth.Reply), d.apiRenderReply())
}

func (d *Desk) apiNotes() fiber.Handler {
	return func(c *fiber.Ctx) error {
		notes, err := d.Actions.Notes(c.UserContext(), actorOf(c), idParam(c))
		if err != nil {
			return err
		}
		if notes == nil {
			notes = []*models.Note{}
		}
		return c.JSON(fiber.Map{"notes": notes})
	}
}

type noteIn struct {
	Body string `json:"body"`
}

func (d *Desk) apiAddNote() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in noteIn
		if err := readJSON(c, &in); err != nil {
			return err
		}
		n, err := d.Actions.AddNote(c.UserContext(), actorOf(c), idParam(c), in.Body)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(n)
	}
}

func (d *Desk) apiEditNote() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in noteIn
		if err := readJSON(c, &in); err != nil {
			return err
		}
		n, err := d.Actions.EditNote(c.UserContext(), actorOf(c), idParam(c), in.Body)
		if err != nil {
			return err
		}
		return c.JSON(n)
	}
}

func (d *Desk) apiDeleteNote() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if _, err := d.Actions.DeleteNote(c.UserContext(), actorOf(c), idParam(c)); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// tagsJSON answers a conversation's tags as they are now.
func (d *Desk) tagsJSON(c *fiber.Ctx, convID int64) error {
	tags, err := d.Actions.Tags(c.UserContext(), actorOf(c), convID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"tags": tags})
}

func (d *Desk) apiTags() fiber.Handler {
	return func(c *fiber.Ctx) error { return d.tagsJSON(c, idParam(c)) }
}

func (d *Desk) apiAddTag() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in struct {
			Tag string `json:"tag"`
		}
		if err := readJSON(c, &in); err != nil {
			return err
		}
		if _, err := d.Actions.AddTag(c.UserContext(), actorOf(c), idParam(c), in.Tag); err != nil {
			return err
		}
		return d.tagsJSON(c, idParam(c))
	}
}

// apiRemoveTag takes a tag off; one the conversation does not carry is
// already off (204 all the same).
func (d *Desk) apiRemoveTag() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := d.Actions.RemoveTag(c.UserContext(), actorOf(c), idParam(c), utils.CopyString(c.Params("tag"))); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

func (d *Desk) apiReplies() fiber.Handler {
	return func(c *fiber.Ctx) error {
		list, err := d.Actions.SavedReplies(c.UserContext(), actorOf(c))
		if err != nil {
			return err
		}
		if list == nil {
			list = []*models.SavedReply{}
		}
		return c.JSON(fiber.Map{"saved_replies": list})
	}
}

func (d *Desk) apiSaveReply(existing bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		}
		if err := readJSON(c, &in); err != nil {
			return err
		}
		r := &models.SavedReply{Title: in.Title, Body: in.Body}
		status := fiber.StatusCreated
		if existing {
			r.ID, status = idParam(c), fiber.StatusOK
		}
		if err := d.Actions.SaveReply(c.UserContext(), actorOf(c), r); err != nil {
			return err
		}
		return c.Status(status).JSON(r)
	}
}

func (d *Desk) apiDeleteReply() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := d.Actions.DeleteReply(c.UserContext(), actorOf(c), idParam(c)); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// apiRenderReply answers a saved reply filled for the contact, and the
// variables left as {{name}} for the sender to fill.
func (d *Desk) apiRenderReply() fiber.Handler {
	return func(c *fiber.Ctx) error {
		rid, _ := strconv.ParseInt(c.Params("reply"), 10, 64) // the route allows digits only
		r, err := d.Actions.RenderReply(c.UserContext(), actorOf(c), idParam(c), rid)
		if err != nil {
			return err
		}
		if r.Missing == nil {
			r.Missing = []string{}
		}
		return c.JSON(r)
	}
}
