package handlers

import (
	"github.com/a-h/templ"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// actorOf is the signed-in staff member of c as the pipeline audits them.
func actorOf(c *fiber.Ctx) models.Actor {
	p := principal(c)
	return models.Actor{ID: p.UserID, Role: p.Role, RequestID: requestIDOf(c), IP: utils.CopyString(c.IP())}
}

func (in *Inbox) reply() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, text, stay := idParam(c), c.FormValue("text"), c.FormValue("stay") == "1"
		if _, err := in.Actions.Reply(c.UserContext(), actorOf(c), id, text); err != nil {
			return refused(c, err, func(reason string) templ.Component {
				return views.ReplyForm(views.ReplyFormProps{ContactID: id, CSRF: badge(c).CSRF, Text: text, Error: reason, Stay: stay})
			})
		}
		if stay && isHTMX(c) { // the workspace: an empty box, and the timeline fetches itself
			c.Set("HX-Trigger", "parley-sent")
			return render(c, views.ReplyForm(views.ReplyFormProps{ContactID: id, CSRF: badge(c).CSRF, Stay: true}))
		}
		return goOn(c, "/contacts/"+strconv.FormatInt(id, 10))
	}
}

func (in *Inbox) resend() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := idParam(c)
		if _, err := in.Actions.Resend(c.UserContext(), actorOf(c), id); err != nil {
			return refused(c, err, views.Refusal)
		}
		return goOn(c, safeNext(c.FormValue("back")))
	}
}

// handoffs is the queue of conversations waiting for a person.
func (in *Inbox) handoffs(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx := c.UserContext()
		before, _ := strconv.ParseInt(c.Query("before"), 10, 64)
		if err := a.audit(c, "conversations.handoffs", "conversations", "", map[string]any{"before": before}); err != nil {
			return err
		}
		rows, err := in.Convs.Handoffs(ctx, before, inboxPage)
		if err != nil {
			return err
		}
		who := principal(c)
		mask := auth.MasksPhones(who.Role)
		p := views.HandoffsProps{Staff: badge(c), CanTake: in.Actions != nil && auth.Can(who.Role, auth.HandoffWork),
			CanTakeOver: in.Actions != nil && auth.Can(who.Role, auth.TakeOver)}
		for _, r := range rows {
			contact, err := in.Contacts.Get(ctx, r.ContactID)
			if err != nil {
				return err
			}
			name, number := contactLabel(contact, mask)
			p.Rows = append(p.Rows, views.HandoffRow{ConversationID: r.ConversationID, ContactID: r.ContactID, Contact: name, Phone: number,
				Since: r.Since.UTC().Format("2 Jan 15:04 UTC"), TakenBy: r.AssignedEmail, Held: r.AssignedTo != "", Mine: r.AssignedTo == who.UserID})
		}
		if len(rows) == inboxPage {
			p.Next = "/handoffs?before=" + strconv.FormatInt(rows[len(rows)-1].ConversationID, 10)
		}
		return render(c, views.Handoffs(p))
	}
}

// take assigns a handed-off conversation to the signed-in staff member
// (the service decides whether they may, and audits it).
func (in *Inbox) take() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := in.Actions.Take(c.UserContext(), actorOf(c), idParam(c)); err != nil {
			return refused(c, err, views.Refusal)
		}
		return goOn(c, safeNext(c.FormValue("back")))
	}
}

// override applies a staff command to a conversation (the service decides
// whether the member may: Pipeline.Override).
func (in *Inbox) override() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := idParam(c)
		o := engine.Override{Kind: engine.OverrideKind(c.FormValue("kind")), Node: strings.TrimSpace(c.FormValue("node")),
			Var: strings.TrimSpace(c.FormValue("var")), Value: c.FormValue("value"), Flow: strings.TrimSpace(c.FormValue("flow"))}
		if err := in.Actions.Override(c.UserContext(), actorOf(c), id, o); err != nil {
			return refused(c, err, views.Refusal)
		}
		return goOn(c, safeNext(c.FormValue("back")))
	}
}

// bulkResend previews (GET) and sends again (POST) the failed messages of
// a range of days (Pipeline.BulkResend: each once, however often it is
// asked).
func (in *Inbox) bulkResend() fiber.Handler {
	return func(c *fiber.Ctx) error {
		get := func(k string) string {
			if c.Method() == fiber.MethodPost {
				return c.FormValue(k)
			}
			return c.Query(k)
		}
		p := views.BulkResendProps{Staff: badge(c), Since: get("since"), Until: get("until")}
		if p.Since == "" || p.Until == "" {
			return render(c, views.BulkResend(p))
		}
		since, until, err := dayBounds(p.Since, p.Until)
		if err != nil {
			return err
		}
		r, err := in.Actions.BulkResend(c.UserContext(), actorOf(c), since, until, c.Method() != fiber.MethodPost)
		if err != nil {
			return err
		}
		p.Capped, p.Count = r.Capped, r.Found
		if c.Method() == fiber.MethodPost {
			// What is left after this go (a capped range, or sends refused).
			p.Done, p.Refused, p.Count = len(r.Resent), r.Refused, min(r.Left, pipeline.BulkResendCap)
		}
		return render(c, views.BulkResend(p))
	}
}
