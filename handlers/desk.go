package handlers

import (
	"context"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/desk"
	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// DeskActions are staff's notes, tags and saved replies (desk.Service):
// each checks who may and audits itself, so the console and the API are
// only their faces.
type DeskActions interface {
	// Notes returns ENOTFOUND when there is no such contact.
	Notes(ctx context.Context, actor models.Actor, contactID int64) ([]*models.Note, error)
	// AddNote returns EINVALID (empty, too long), ENOTFOUND, EFORBIDDEN.
	AddNote(ctx context.Context, actor models.Actor, contactID int64, body string) (*models.Note, error)
	// EditNote and DeleteNote return EFORBIDDEN unless actor wrote the
	// note or may moderate notes.
	EditNote(ctx context.Context, actor models.Actor, id int64, body string) (*models.Note, error)
	DeleteNote(ctx context.Context, actor models.Actor, id int64) (contactID int64, err error)
	// Tags returns ENOTFOUND when there is no such conversation.
	Tags(ctx context.Context, actor models.Actor, conversationID int64) ([]string, error)
	KnownTags(ctx context.Context, actor models.Actor) ([]string, error)
	// AddTag returns the tag as kept; EINVALID, ENOTFOUND, EFORBIDDEN.
	AddTag(ctx context.Context, actor models.Actor, conversationID int64, tag string) (string, error)
	RemoveTag(ctx context.Context, actor models.Actor, conversationID int64, tag string) error
	SavedReplies(ctx context.Context, actor models.Actor) ([]*models.SavedReply, error)
	SavedReply(ctx context.Context, actor models.Actor, id int64) (*models.SavedReply, error)
	// SaveReply returns EINVALID, ECONFLICT (title taken), ENOTFOUND.
	SaveReply(ctx context.Context, actor models.Actor, r *models.SavedReply) error
	DeleteReply(ctx context.Context, actor models.Actor, id int64) error
	// RenderReply fills a saved reply for a contact (audited).
	RenderReply(ctx context.Context, actor models.Actor, contactID, id int64) (*desk.Rendered, error)
}

// Desk is the console's and the API's face of DeskActions.
type Desk struct {
	Actions DeskActions
	Staff   StaffLookup // names notes' authors
	// Convs finds the contact's open conversation, the one the page tags.
	Convs interface {
		Open(ctx context.Context, tx *gorm.DB, contactID int64) (*models.Conversation, error)
		Read(ctx context.Context, id int64) (*models.Conversation, error)
	}
}

func (d *Desk) register(app *fiber.App, signedIn fiber.Handler) {
	read := require(auth.ReadConversations)
	app.Get("/contacts/:id<int>/notes", signedIn, read, d.notesPanel())
	app.Post("/contacts/:id<int>/notes", signedIn, require(auth.WriteNotes), d.addNote())
	app.Post("/notes/:id<int>", signedIn, require(auth.WriteNotes), d.editNote())
	app.Post("/notes/:id<int>/delete", signedIn, require(auth.WriteNotes), d.deleteNote())
	app.Get("/contacts/:id<int>/tags", signedIn, read, d.tagsPanel())
	app.Post("/conversations/:id<int>/tags", signedIn, require(auth.TagConversations), d.addTag())
	app.Post("/conversations/:id<int>/untag", signedIn, require(auth.TagConversations), d.removeTag())
	app.Get("/contacts/:id<int>/saved-replies", signedIn, require(auth.Reply), d.picker())
	app.Get("/contacts/:id<int>/saved-reply", signedIn, require(auth.Reply), d.renderReply())
	app.Get("/saved-replies", signedIn, require(auth.ManageReplies), d.repliesPage())
	app.Post("/saved-replies", signedIn, require(auth.ManageReplies), d.saveReply(false))
	app.Post("/saved-replies/:id<int>", signedIn, require(auth.ManageReplies), d.saveReply(true))
	app.Post("/saved-replies/:id<int>/delete", signedIn, require(auth.ManageReplies), d.deleteReply())
}

// csrfOf is the session's CSRF token for the forms a partial renders.
func csrfOf(c *fiber.Ctx) string {
	s, _ := c.Locals("csrf").(string)
	return s
}

// refusal is the message of an error the person can act on (invalid,
// conflict, forbidden, not found), shown beside the field; ok is false
// for any other, which goes to the error handler.
func refusal(err error) (msg string, ok bool) {
	switch models.ErrorCode(err) {
	case models.EINVALID, models.ECONFLICT, models.EFORBIDDEN:
		return models.ErrorMessage(err), true
	}
	return "", false
}

// notesProps reads the contact's notes for the panel (audited by the
// service), with the draft and error of a refused note.
func (d *Desk) notesProps(c *fiber.Ctx, contactID int64, draft, problem string) (views.NotesProps, error) {
	actor := actorOf(c)
	notes, err := d.Actions.Notes(c.UserContext(), actor, contactID)
	if err != nil {
		return views.NotesProps{}, err
	}
	p := views.NotesProps{ContactID: contactID, CSRF: csrfOf(c), CanWrite: auth.Can(actor.Role, auth.WriteNotes), Draft: draft, Error: problem}
	names := map[string]string{}
	for _, n := range notes {
		p.Notes = append(p.Notes, views.NoteRow{ID: n.ID, Author: d.authorName(c.UserContext(), names, n.AuthorID), Body: n.Body,
			At: n.CreatedAt.UTC().Format("2 Jan 2006 15:04 UTC"), Edited: n.UpdatedAt.After(n.CreatedAt),
			CanChange: auth.Can(actor.Role, auth.WriteNotes) && (n.AuthorID == actor.ID || auth.Can(actor.Role, auth.ModerateNotes))})
	}
	return p, nil
}

// authorName is how a note's author is shown: their display name, else
// their email (staff see each other's), else "former staff".
func (d *Desk) authorName(ctx context.Context, seen map[string]string, id string) string {
	if name, ok := seen[id]; ok {
		return name
	}
	name := "former staff"
	if id != "" && d.Staff != nil {
		if u, err := d.Staff.Get(ctx, id); err == nil {
			name = u.DisplayName
			if name == "" {
				name = u.Email
			}
		}
	}
	seen[id] = name
	return name
}

func (d *Desk) notesPanel() fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := d.notesProps(c, idParam(c), "", "")
		if err != nil {
			return err
		}
		return render(c, views.NotesPanel(p))
	}
}

// addNote writes a note and answers the panel again; a refused note comes
// back in the field with the reason beside it.
func (d *Desk) addNote() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := idParam(c)
		body := c.FormValue("body")
		draft, problem := "", ""
		if _, err := d.Actions.AddNote(c.UserContext(), actorOf(c), id, body); err != nil {
			msg, ok := refusal(err)
			if !ok {
				return err
			}
			draft, problem = body, msg // answered 200: htmx swaps only a success
		}
		p, err := d.notesProps(c, id, draft, problem)
		if err != nil {
			return err
		}
		return render(c, views.NotesPanel(p))
	}
}

// editNote changes a note's text and answers its contact's panel. A
// refused edit comes back in the note's open form with the reason beside
// it; the form names the contact, used only to draw that panel again (and
// only when the note is on it), never to decide who may edit.
func (d *Desk) editNote() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, body := idParam(c), c.FormValue("body")
		n, err := d.Actions.EditNote(c.UserContext(), actorOf(c), id, body)
		if err == nil {
			p, err := d.notesProps(c, n.ContactID, "", "")
			if err != nil {
				return err
			}
			return render(c, views.NotesPanel(p))
		}
		msg, ok := refusal(err)
		contactID, perr := strconv.ParseInt(c.FormValue("contact"), 10, 64)
		// Refused as forbidden: the form is not on this member's panel,
		// so the error handler says why.
		if !ok || models.ErrorCode(err) == models.EFORBIDDEN || perr != nil || contactID <= 0 {
			return err
		}
		p, perr := d.notesProps(c, contactID, "", "")
		if perr != nil {
			return perr
		}
		for i := range p.Notes {
			if p.Notes[i].ID == id {
				p.Notes[i].EditDraft, p.Notes[i].EditError = body, msg
				return render(c, views.NotesPanel(p)) // 200: htmx swaps only a success
			}
		}
		return err
	}
}

func (d *Desk) deleteNote() fiber.Handler {
	return func(c *fiber.Ctx) error {
		contactID, err := d.Actions.DeleteNote(c.UserContext(), actorOf(c), idParam(c))
		if err != nil {
			return err
		}
		p, err := d.notesProps(c, contactID, "", "")
		if err != nil {
			return err
		}
		return render(c, views.NotesPanel(p))
	}
}

// tagsProps reads the tags of the contact's open conversation.
func (d *Desk) tagsProps(c *fiber.Ctx, contactID int64, draft, problem string) (views.TagsProps, error) {
	actor := actorOf(c)
	p := views.TagsProps{ContactID: contactID, CSRF: csrfOf(c), CanTag: auth.Can(actor.Role, auth.TagConversations), Draft: draft, Error: problem}
	conv, err := d.Convs.Open(c.UserContext(), nil, contactID)
	if err != nil || conv == nil {
		return p, err
	}
	p.ConversationID = conv.ID
	if p.Tags, err = d.Actions.Tags(c.UserContext(), actor, conv.ID); err != nil {
		return p, err
	}
	if p.CanTag {
		p.Known, err = d.Actions.KnownTags(c.UserContext(), actor)
	}
	return p, err
}

func (d *Desk) tagsPanel() fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := d.tagsProps(c, idParam(c), "", "")
		if err != nil {
			return err
		}
		return render(c, views.TagsPanel(p))
	}
}

// tagChange adds or removes a tag, then answers the panel of the
// conversation's contact, a refusal beside the field.
func (d *Desk) tagChange(add bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		convID, tag := idParam(c), c.FormValue("tag")
		actor := actorOf(c)
		var err error
		if add {
			_, err = d.Actions.AddTag(c.UserContext(), actor, convID, tag)
		} else {
			err = d.Actions.RemoveTag(c.UserContext(), actor, convID, tag)
		}
		draft, problem := "", ""
		if err != nil {
			msg, ok := refusal(err)
			if !ok {
				return err
			}
			draft, problem = tag, msg
		}
		conv, err := d.Convs.Read(c.UserContext(), convID)
		if err != nil {
			return err
		}
		p, err := d.tagsProps(c, conv.ContactID, draft, problem)
		if err != nil {
			return err
		}
		return render(c, views.TagsPanel(p))
	}
}

func (d *Desk) addTag() fiber.Handler    { return d.tagChange(true) }
func (d *Desk) removeTag() fiber.Handler { return d.tagChange(false) }

// picker offers the saved replies beside the reply box.
func (d *Desk) picker() fiber.Handler {
	return func(c *fiber.Ctx) error {
		list, err := d.Actions.SavedReplies(c.UserContext(), actorOf(c))
		if err != nil {
			return err
		}
		p := views.ReplyPickerProps{ContactID: idParam(c)}
		for _, r := range list {
			p.Replies = append(p.Replies, savedReplyRow(r))
		}
		return render(c, views.ReplyPicker(p))
	}
}

// renderReply answers the reply box filled with the picked saved reply
// (?saved=id) for this contact; none picked: an empty box.
func (d *Desk) renderReply() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Query("saved") == "" {
			return render(c, views.ReplyText(views.ReplyTextProps{ContactID: idParam(c)}))
		}
		rid, err := strconv.ParseInt(c.Query("saved"), 10, 64)
		if err != nil || rid <= 0 {
			return models.Errorf(models.EINVALID, "Pick a saved reply.")
		}
		r, err := d.Actions.RenderReply(c.UserContext(), actorOf(c), idParam(c), rid)
		if err != nil {
			return err
		}
		return render(c, views.ReplyText(views.ReplyTextProps{ContactID: idParam(c), Text: r.Text, Missing: r.Missing}))
	}
}

func savedReplyRow(r *models.SavedReply) views.SavedReplyRow {
	return views.SavedReplyRow{ID: r.ID, Title: r.Title, Body: r.Body, Updated: r.UpdatedAt.UTC().Format("2 Jan 2006 15:04 UTC")}
}

// repliesPageOf renders the management page, with form and problem when
// a save was refused.
func (d *Desk) repliesPageOf(c *fiber.Ctx, form views.SavedReplyRow, problem string) error {
	list, err := d.Actions.SavedReplies(c.UserContext(), actorOf(c))
	if err != nil {
		return err
	}
	p := views.SavedRepliesProps{Staff: badge(c), Form: form, Error: problem}
	for _, r := range list {
		p.Replies = append(p.Replies, savedReplyRow(r))
	}
	return render(c, views.SavedReplies(p))
}

func (d *Desk) repliesPage() fiber.Handler {
	return func(c *fiber.Ctx) error { return d.repliesPageOf(c, views.SavedReplyRow{}, "") }
}

// saveReply adds a saved reply, or changes the one named (existing); a
// refusal shows the page again with the words typed and the reason.
func (d *Desk) saveReply(existing bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		r := &models.SavedReply{Title: c.FormValue("title"), Body: c.FormValue("body")}
		if existing {
			r.ID = idParam(c)
		}
		if err := d.Actions.SaveReply(c.UserContext(), actorOf(c), r); err != nil {
			msg, ok := refusal(err)
			if !ok {
				return err
			}
			c.Status(fiber.StatusUnprocessableEntity)
			return d.repliesPageOf(c, views.SavedReplyRow{Title: c.FormValue("title"), Body: c.FormValue("body")}, msg)
		}
		return c.Redirect("/saved-replies", fiber.StatusSeeOther)
	}
}

func (d *Desk) deleteReply() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := d.Actions.DeleteReply(c.UserContext(), actorOf(c), idParam(c)); err != nil {
			return err
		}
		return c.Redirect("/saved-replies", fiber.StatusSeeOther)
	}
}

// TagReader reads the tags on contacts' conversations (store.TagStore).
type TagReader interface {
	OfContacts(ctx context.Context, contactIDs []int64) (map[int64][]string, error)
}

// tagsOf reads the listed contacts' tags: one query a page (none when
// no TagReader is wired).
func (in *Inbox) tagsOf(ctx context.Context, contactIDs []int64) (map[int64][]string, error) {
	if in.Tags == nil || len(contactIDs) == 0 {
		return nil, nil
	}
	return in.Tags.OfContacts(ctx, contactIDs)
}

// tagHits puts each listed contact's tags on its row.
func (in *Inbox) tagHits(ctx context.Context, hits []views.MessageRow) error {
	ids := make([]int64, len(hits))
	for i, h := range hits {
		ids[i] = h.ContactID
	}
	tags, err := in.tagsOf(ctx, ids)
	if err != nil {
		return err
	}
	for i := range hits {
		hits[i].Tags = tags[hits[i].ContactID]
	}
	return nil
}
