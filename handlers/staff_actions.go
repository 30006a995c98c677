package handlers

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/engine"
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
		id := idParam(c)
		if _, err := in.Actions.Reply(c.UserContext(), actorOf(c), id, c.FormValue("text")); err != nil {
			return err
		}
		return c.Redirect("/contacts/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
	}
}

func (in *Inbox) resend() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := idParam(c)
		if _, err := in.Actions.Resend(c.UserContext(), actorOf(c), id); err != nil {
			return err
		}
		return c.Redirect(safeNext(c.FormValue("back")), fiber.StatusSeeOther)
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
				Since: r.Since.UTC().Format("2 Jan 15:04"), TakenBy: r.AssignedEmail, Held: r.AssignedTo != "", Mine: r.AssignedTo == who.UserID})
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
			return err
		}
		return c.Redirect(safeNext(c.FormValue("back")), fiber.StatusSeeOther)
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
			return err
		}
		return c.Redirect(safeNext(c.FormValue("back")), fiber.StatusSeeOther)
	}
}

// resendAll sends each of the failed messages ids (of the days since to
// until) again as Resend does, after auditing the bulk resend: the new
// messages' ids, and how many could not go now (opted out, window closed)
// and stay failed.
func (in *Inbox) resendAll(c *fiber.Ctx, a *Access, since, until string, ids []int64) (resent []int64, refused int, err error) {
	if err := a.audit(c, "messages.bulk_resend", "messages", "", map[string]any{"since": since, "until": until, "count": len(ids)}); err != nil {
		return nil, 0, err
	}
	resent = []int64{}
	for _, id := range ids {
		again, err := in.Actions.Resend(c.UserContext(), actorOf(c), id)
		switch {
		case models.ErrorCode(err) == models.ECONFLICT:
			refused++
		case err != nil:
			return nil, 0, err
		default:
			resent = append(resent, again)
		}
	}
	return resent, refused, nil
}

// bulkResendCap is how many messages one bulk resend sends at most.
const bulkResendCap = 500

// bulkResend previews (GET) and sends again (POST) the failed messages of
// a range of days, each as Resend does: once, however often it is asked.
func (in *Inbox) bulkResend(a *Access) fiber.Handler {
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
		if err != nil || !until.After(since) {
			return models.Errorf(models.EINVALID, "Give a range of days like 2026-12-01 to 2026-12-03.")
		}
		ctx := c.UserContext()
		ids, err := in.Messages.FailedBetween(ctx, since, until, bulkResendCap+1)
		if err != nil {
			return err
		}
		if len(ids) > bulkResendCap {
			ids, p.Capped = ids[:bulkResendCap], true
		}
		if c.Method() == fiber.MethodPost {
			resent, _, err := in.resendAll(c, a, p.Since, p.Until, ids)
			if err != nil {
				return err
			}
			p.Done = len(resent)
			// What is left after this go (a capped range, or sends refused).
			if ids, err = in.Messages.FailedBetween(ctx, since, until.AddDate(0, 0, 1), bulkResendCap+1); err != nil {
				return err
			}
		}
		p.Count = min(len(ids), bulkResendCap)
		return render(c, views.BulkResend(p))
	}
}
