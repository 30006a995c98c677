package handlers

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// MessageReader finds and reads messages, decrypted (store.MessageStore).
type MessageReader interface {
	Search(ctx context.Context, q models.MessageSearch) (*models.MessagePage, error)
	ForContact(ctx context.Context, contactID, before int64, limit int) ([]*models.Message, error)
	// Fingerprint changes when the contact's messages do; it holds nothing
	// sealed.
	Fingerprint(ctx context.Context, contactID int64) (string, error)
}

// ContactReader reads contacts, decrypted (store.ContactStore).
type ContactReader interface {
	Get(ctx context.Context, id int64) (*models.Contact, error)
}

// StaffActions are what staff do to conversations (pipeline.Pipeline);
// each audits itself.
type StaffActions interface {
	Reply(ctx context.Context, actor models.Actor, contactID int64, text string) error
	Resend(ctx context.Context, actor models.Actor, messageID int64) (int64, error)
	Override(ctx context.Context, actor models.Actor, conversationID int64, o engine.Override) error
}

// ConversationReader finds a contact's open conversation, decrypted, and
// the hand-off queue (store.ConversationStore).
type ConversationReader interface {
	// Open returns nil when the contact has no open conversation.
	Open(ctx context.Context, tx *gorm.DB, contactID int64) (*models.Conversation, error)
	Handoffs(ctx context.Context, before int64, limit int) ([]store.Handoff, error)
	// Take returns ENOTFOUND when the conversation is not handed off.
	Take(ctx context.Context, id int64, staffID string) error
}

// Inbox is the console's reading of conversations, and the replies and
// resends staff make there. Every read of decrypted data is audited
// before it is shown.
type Inbox struct {
	Messages MessageReader
	Contacts ContactReader
	Actions  StaffActions // nil: read only
	Convs    ConversationReader
	// PollEvery and StreamFor pace the live view's event stream: how often
	// it looks for changes (2 s), and how long one stream lasts before the
	// browser reconnects (15 s, inside the server's shutdown grace).
	PollEvery, StreamFor time.Duration
}

// inboxPage is how many messages a page lists.
const inboxPage = 50

func (in *Inbox) register(app *fiber.App, a *Access, signedIn fiber.Handler) {
	read := require(auth.ReadConversations)
	app.Get("/", signedIn, read, in.page(a))
	app.Get("/inbox/results", signedIn, read, in.results(a))
	app.Get("/contacts/:id<int>", signedIn, read, in.contact(a))
	app.Get("/contacts/:id<int>/timeline", signedIn, read, in.timeline(a))
	app.Get("/contacts/:id<int>/events", signedIn, read, in.events())
	if in.Actions != nil {
		app.Post("/contacts/:id<int>/reply", signedIn, require(auth.Reply), in.reply())
		app.Post("/messages/:id<int>/resend", signedIn, require(auth.Resend), in.resend())
		app.Post("/conversations/:id<int>/override", signedIn, require(auth.HandoffWork), in.override())
	}
	if in.Convs != nil {
		app.Get("/handoffs", signedIn, read, in.handoffs(a))
		app.Post("/conversations/:id<int>/take", signedIn, require(auth.HandoffWork), in.take(a))
	}
}

// handoffs is the queue of conversations waiting for a person.
func (in *Inbox) handoffs(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx := c.UserContext()
		before, _ := strconv.ParseInt(c.Query("before"), 10, 64)
		if err := a.record(c, a.actor(c), "conversations.handoffs", "conversations", "", map[string]any{"before": before}); err != nil {
			return err
		}
		rows, err := in.Convs.Handoffs(ctx, before, inboxPage)
		if err != nil {
			return err
		}
		who := principal(c)
		mask := auth.MasksPhones(who.Role)
		p := views.HandoffsProps{Staff: badge(c), CanTake: in.Actions != nil && auth.Can(who.Role, auth.HandoffWork)}
		for _, r := range rows {
			contact, err := in.Contacts.Get(ctx, r.ContactID)
			if err != nil {
				return err
			}
			row := messageRow(&models.Message{}, contact, mask)
			p.Rows = append(p.Rows, views.HandoffRow{ConversationID: r.ConversationID, ContactID: r.ContactID, Contact: row.Contact, Phone: row.Phone,
				Since: r.Since.UTC().Format("2 Jan 15:04"), TakenBy: r.AssignedEmail, Mine: r.AssignedTo == who.UserID})
		}
		if len(rows) == inboxPage {
			p.Next = "/handoffs?before=" + strconv.FormatInt(rows[len(rows)-1].ConversationID, 10)
		}
		return render(c, views.Handoffs(p))
	}
}

// take assigns a handed-off conversation to the signed-in staff member.
func (in *Inbox) take(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, _ := strconv.ParseInt(c.Params("id"), 10, 64)
		if err := in.Convs.Take(c.UserContext(), id, principal(c).UserID); err != nil {
			return err
		}
		if err := a.record(c, a.actor(c), "conversation.take", "conversation", strconv.FormatInt(id, 10), nil); err != nil {
			return err
		}
		return c.Redirect(safeNext(c.FormValue("back")), fiber.StatusSeeOther)
	}
}

// override applies a staff command to a conversation. Pausing and resuming
// the bot is hand-off work (agents and up); the others, which move the
// conversation, are overrides (supervisors and up).
func (in *Inbox) override() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, _ := strconv.ParseInt(c.Params("id"), 10, 64)
		o := engine.Override{Kind: engine.OverrideKind(c.FormValue("kind")), Node: strings.TrimSpace(c.FormValue("node")),
			Var: strings.TrimSpace(c.FormValue("var")), Value: c.FormValue("value"), Flow: strings.TrimSpace(c.FormValue("flow"))}
		if o.Kind != engine.OverridePause && o.Kind != engine.OverrideResume && !auth.Can(principal(c).Role, auth.Override) {
			return models.Errorf(models.EFORBIDDEN, "Your role (%s) may pause and resume the bot, not move the conversation.", principal(c).Role)
		}
		if err := in.Actions.Override(c.UserContext(), actorOf(c), id, o); err != nil {
			return err
		}
		return c.Redirect(safeNext(c.FormValue("back")), fiber.StatusSeeOther)
	}
}

// actorOf is the signed-in staff member of c as the pipeline audits them.
func actorOf(c *fiber.Ctx) models.Actor {
	p := principal(c)
	return models.Actor{ID: p.UserID, Role: p.Role, RequestID: requestIDOf(c), IP: utils.CopyString(c.IP())}
}

func (in *Inbox) reply() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, _ := strconv.ParseInt(c.Params("id"), 10, 64)
		if err := in.Actions.Reply(c.UserContext(), actorOf(c), id, c.FormValue("text")); err != nil {
			return err
		}
		return c.Redirect("/contacts/"+strconv.FormatInt(id, 10), fiber.StatusSeeOther)
	}
}

func (in *Inbox) resend() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, _ := strconv.ParseInt(c.Params("id"), 10, 64)
		if _, err := in.Actions.Resend(c.UserContext(), actorOf(c), id); err != nil {
			return err
		}
		return c.Redirect(safeNext(c.FormValue("back")), fiber.StatusSeeOther)
	}
}

// searchesFor reads what was typed: a phone number in any format, or
// words, looked for in names and in messages alike.
func searchesFor(q string, before int64) []models.MessageSearch {
	q = strings.TrimSpace(q)
	digits, other := 0, false
	for _, r := range q {
		switch {
		case unicode.IsDigit(r):
			digits++
		case strings.ContainsRune("+-(). ", r):
		default:
			other = true
		}
	}
	switch {
	case q == "":
		return []models.MessageSearch{{Before: before, Limit: inboxPage}}
	case digits >= 6 && !other:
		return []models.MessageSearch{{Phone: q, Before: before, Limit: inboxPage}}
	}
	return []models.MessageSearch{{Name: q, Before: before, Limit: inboxPage}, {Text: q, Before: before, Limit: inboxPage}}
}

// search runs the searches for q and merges them, newest first; next is
// the cursor of the following page (0: none).
func (in *Inbox) search(ctx context.Context, q string, before int64) (hits []models.MessageHit, next int64, err error) {
	seen := map[int64]bool{}
	more := false
	for _, s := range searchesFor(q, before) {
		page, err := in.Messages.Search(ctx, s)
		if err != nil {
			return nil, 0, err
		}
		more = more || page.Next != 0
		for _, h := range page.Hits {
			if !seen[h.Message.ID] {
				seen[h.Message.ID] = true
				hits = append(hits, h)
			}
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].Message.ID > hits[j].Message.ID })
	if len(hits) > inboxPage {
		hits, more = hits[:inboxPage], true
	}
	if more && len(hits) > 0 {
		next = hits[len(hits)-1].Message.ID
	}
	return hits, next, nil
}

func (in *Inbox) resultsProps(c *fiber.Ctx, a *Access) (views.InboxResultsProps, error) {
	q := c.Query("q")
	before, _ := strconv.ParseInt(c.Query("before"), 10, 64)
	if err := a.record(c, a.actor(c), "messages.search", "messages", "", map[string]any{"query": q, "before": before}); err != nil {
		return views.InboxResultsProps{}, err
	}
	hits, next, err := in.search(c.UserContext(), q, before)
	if err != nil {
		return views.InboxResultsProps{}, err
	}
	p := views.InboxResultsProps{Query: q}
	mask := auth.MasksPhones(principal(c).Role)
	for _, h := range hits {
		p.Hits = append(p.Hits, messageRow(h.Message, h.Contact, mask))
	}
	if next != 0 {
		p.Next = "/?" + url.Values{"q": {q}, "before": {strconv.FormatInt(next, 10)}}.Encode()
	}
	return p, nil
}

func (in *Inbox) page(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		results, err := in.resultsProps(c, a)
		if err != nil {
			return err
		}
		return render(c, views.Inbox(views.InboxProps{Staff: badge(c), Query: c.Query("q"), Results: results}))
	}
}

func (in *Inbox) results(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		results, err := in.resultsProps(c, a)
		if err != nil {
			return err
		}
		return render(c, views.InboxResults(results))
	}
}

// timeline is the contact's messages alone, fetched again when the event
// stream says they changed (a view, audited like the page).
func (in *Inbox) timeline(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := in.contactProps(c, a)
		if err != nil {
			return err
		}
		return render(c, views.Timeline(p))
	}
}

// events streams "changed" (server-sent events) while the contact's
// messages change, so an open page follows the conversation live. It
// sends nothing sealed, so it is not audited; what it triggers is.
func (in *Inbox) events() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, _ := strconv.ParseInt(c.Params("id"), 10, 64)
		pollEvery, streamFor := in.PollEvery, in.StreamFor
		if pollEvery <= 0 {
			pollEvery = 2 * time.Second
		}
		if streamFor <= 0 {
			streamFor = 15 * time.Second
		}
		first, err := in.Messages.Fingerprint(c.UserContext(), id)
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, "text/event-stream")
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			// Not the request's context: Fiber reuses it once the handler
			// has returned, and the stream outlives the handler.
			ctx, cancel := context.WithTimeout(context.Background(), streamFor)
			defer cancel()
			fmt.Fprint(w, "retry: 2000\n\n")
			if w.Flush() != nil {
				return
			}
			tick := time.NewTicker(pollEvery)
			defer tick.Stop()
			last := first
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				now, err := in.Messages.Fingerprint(ctx, id)
				if err != nil {
					return
				}
				if now != last {
					last = now
					fmt.Fprint(w, "event: changed\ndata: messages\n\n")
				} else {
					fmt.Fprint(w, ": idle\n\n")
				}
				if w.Flush() != nil {
					return // the browser left
				}
			}
		})
		return nil
	}
}

func (in *Inbox) contact(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := in.contactProps(c, a)
		if err != nil {
			return err
		}
		return render(c, views.Contact(p))
	}
}

// contactProps reads a contact and their latest messages for the page,
// after auditing the view.
func (in *Inbox) contactProps(c *fiber.Ctx, a *Access) (views.ContactProps, error) {
	ctx := c.UserContext()
	id, _ := strconv.ParseInt(c.Params("id"), 10, 64)
	before, _ := strconv.ParseInt(c.Query("before"), 10, 64)
	if err := a.record(c, a.actor(c), "contact.view", "contact", strconv.FormatInt(id, 10), nil); err != nil {
		return views.ContactProps{}, err
	}
	contact, err := in.Contacts.Get(ctx, id)
	if err != nil {
		return views.ContactProps{}, err
	}
	msgs, err := in.Messages.ForContact(ctx, id, before, inboxPage)
	if err != nil {
		return views.ContactProps{}, err
	}
	role := principal(c).Role
	mask := auth.MasksPhones(role)
	p := views.ContactProps{Staff: badge(c), ID: id, Channel: string(contact.Channel), OptedOut: contact.OptedOut,
		CanReply: in.Actions != nil && auth.Can(role, auth.Reply), CanResend: in.Actions != nil && auth.Can(role, auth.Resend)}
	row := messageRow(&models.Message{}, contact, mask)
	p.Name, p.Phone = row.Contact, row.Phone
	for i := len(msgs) - 1; i >= 0; i-- { // oldest first
		p.Messages = append(p.Messages, messageRow(msgs[i], contact, mask))
	}
	if in.Convs != nil {
		conv, err := in.Convs.Open(ctx, nil, id)
		if err != nil {
			return views.ContactProps{}, err
		}
		if conv != nil {
			p.Conversation = conversationPanel(conv, role)
		}
	}
	if len(msgs) == inboxPage {
		p.Older = "/contacts/" + strconv.FormatInt(id, 10) + "?before=" + strconv.FormatInt(msgs[len(msgs)-1].ID, 10)
	}
	return p, nil
}

// messageRow is a message as the console shows it; mask hides all but the
// last digits of the number.
func messageRow(m *models.Message, c *models.Contact, mask bool) views.MessageRow {
	number := c.Address
	if mask {
		number = phone.Mask(number)
	}
	name := c.Name
	if name == "" {
		name = number
	}
	return views.MessageRow{ID: m.ID, ContactID: c.ID, Contact: name, Phone: number, Channel: string(c.Channel), Inbound: m.Direction == models.Inbound,
		Body: m.Body, At: m.CreatedAt.UTC().Format("2 Jan 15:04"), Status: string(m.Status), Error: m.ErrorReason}
}

// conversationPanel is a conversation's state as the console shows it, and
// what the role may do to it.
func conversationPanel(conv *models.Conversation, role models.Role) *views.ConversationPanel {
	cp := &views.ConversationPanel{ID: conv.ID, Flow: conv.FlowID, Version: conv.FlowVersion, Node: conv.Node, Status: string(conv.Status),
		Error: conv.Error, CanPause: auth.Can(role, auth.HandoffWork), CanOverride: auth.Can(role, auth.Override)}
	names := make([]string, 0, len(conv.Variables))
	for k := range conv.Variables {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		cp.Vars = append(cp.Vars, views.Var{Name: k, Value: conv.Variables[k]})
	}
	return cp
}
