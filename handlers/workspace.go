package handlers

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// The workspace is the queue and the open conversation on one screen, at
// /work (the first entry of the navigation). It has an address of its
// own rather than taking over /: the inbox's message search, its filters
// and every link to it keep working as they were, and the workspace's
// list is of conversations, not of messages.

// workPage is how many conversations the workspace lists.
const workPage = 100

// workViews are the list's views, in the order the tabs show them.
var workViews = []views.WorkView{
	{Key: store.WorkMine, Label: "Mine"},
	{Key: store.WorkWaiting, Label: "Waiting for a person"},
	{Key: store.WorkFailed, Label: "Failed sends"},
	{Key: store.WorkAll, Label: "All"},
}

func (in *Inbox) registerWork(app *fiber.App, a *Access, signedIn fiber.Handler) {
	read := require(auth.ReadConversations)
	app.Get("/work", signedIn, read, in.work(a))
	app.Get("/work/list", signedIn, read, in.workList(a))
	app.Get("/work/pane/:id<int>", signedIn, read, in.workPane(a))
	app.Get("/work/events", signedIn, read, in.workEvents())
}

// workQuery is what the list shows: a view, a search and the open
// conversation.
type workQuery struct {
	View, Q string
	Open    int64
}

func workQueryOf(c *fiber.Ctx) (workQuery, error) {
	q := workQuery{View: c.Query("view", store.WorkAll), Q: strings.TrimSpace(c.Query("q"))}
	q.Open, _ = strconv.ParseInt(c.Query("c"), 10, 64)
	for _, v := range workViews {
		if v.Key == q.View {
			return q, nil
		}
	}
	return q, models.Errorf(models.EINVALID, "Unknown view.")
}

// href is the workspace's address for q with contact open.
func (q workQuery) href(open int64) string {
	v := url.Values{"view": {q.View}}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if open != 0 {
		v.Set("c", strconv.FormatInt(open, 10))
	}
	return "/work?" + v.Encode()
}

func (in *Inbox) work(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		q, err := workQueryOf(c)
		if err != nil {
			return err
		}
		cursor, err := in.Messages.WorkFingerprint(c.UserContext())
		if err != nil {
			return err
		}
		list, err := in.workListProps(c, a, q)
		if err != nil {
			return err
		}
		p := views.WorkProps{Staff: badge(c), List: list, Views: workViews, View: q.View, Query: q.Q, Cursor: cursor}
		if q.Open != 0 {
			pane, err := in.workPaneProps(c, a, q.Open, q)
			if err != nil {
				return err
			}
			p.Pane = &pane
		}
		return render(c, views.Work(p))
	}
}

// workList is the list alone: searched, or fetched again when the event
// stream says something changed.
func (in *Inbox) workList(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		q, err := workQueryOf(c)
		if err != nil {
			return err
		}
		p, err := in.workListProps(c, a, q)
		if err != nil {
			return err
		}
		return render(c, views.WorkList(p))
	}
}

// workListProps reads the list. The list decrypts the latest message and
// the name of each conversation it shows, as the inbox's does, and follows
// its rule: a search is audited (a keyed fingerprint of what was typed,
// never the text, and the view), a listing without one is not.
func (in *Inbox) workListProps(c *fiber.Ctx, a *Access, q workQuery) (views.WorkListProps, error) {
	ctx := c.UserContext()
	who := principal(c)
	f := store.WorkFilter{View: q.View, StaffID: who.UserID, Limit: workPage}
	if q.Q != "" {
		if err := a.audit(c, "conversations.search", "conversations", "", map[string]any{"query_fp": a.fingerprint(q.Q), "view": q.View}); err != nil {
			return views.WorkListProps{}, err
		}
		found, _, err := in.search(ctx, q.Q, models.MessageSearch{Limit: workPage})
		if err != nil {
			return views.WorkListProps{}, err
		}
		f.Contacts = make([]int64, 0, len(found))
		for _, h := range found {
			f.Contacts = append(f.Contacts, h.first.Contact.ID)
		}
	}
	items, err := in.Messages.Workspace(ctx, f)
	if err != nil {
		return views.WorkListProps{}, err
	}
	mask := auth.MasksPhones(who.Role)
	now := time.Now()
	p := views.WorkListProps{Query: q.Q, View: q.View, Open: q.Open}
	for _, it := range items {
		p.Rows = append(p.Rows, workRow(it, q, who.UserID, mask, now))
	}
	return p, nil
}

// workRow is one conversation as the list shows it.
func workRow(it store.WorkItem, q workQuery, me string, mask bool, now time.Time) views.WorkRow {
	m, contact := it.Last.Message, it.Last.Contact
	name, number := contactLabel(contact, mask)
	r := views.WorkRow{ContactID: contact.ID, Name: name, Named: contact.Name != "", Phone: number, Channel: string(contact.Channel),
		Last: m.Body, LastIn: m.Direction == models.Inbound, At: m.CreatedAt.UTC().Format(messageTime), Href: q.href(contact.ID),
		Unread: m.Direction == models.Inbound, Failed: it.Failed}
	switch it.Status {
	case models.ConversationActive:
		if !contact.OptedOut { // the bot writes to nobody who opted out
			r.Badges = append(r.Badges, views.Badge{Key: "bot", Label: "bot"})
		}
	case models.ConversationPaused:
		r.Badges = append(r.Badges, views.Badge{Key: "paused", Label: "paused"})
	case models.ConversationEnded, models.ConversationError:
		r.Badges = append(r.Badges, views.Badge{Key: "ended", Label: "ended"})
	}
	if contact.OptedOut {
		r.Badges = append(r.Badges, views.Badge{Key: "optedout", Label: "opted out"})
	}
	if it.Waiting {
		r.Badges = append(r.Badges, views.Badge{Key: "waiting", Label: "hand-off waiting"})
	}
	if it.HeldBy != "" && it.HeldBy == me {
		r.Badges = append(r.Badges, views.Badge{Key: "mine", Label: "held by me"})
	} else if it.HeldBy != "" && it.Status == models.ConversationHandoff {
		r.Badges = append(r.Badges, views.Badge{Key: "held", Label: "taken"})
	}
	if it.Failed > 0 {
		r.Badges = append(r.Badges, views.Badge{Key: "failed", Label: "failed send"})
	}
	if it.WaitingSince != nil {
		r.Waited = waited(now.Sub(*it.WaitingSince))
	}
	return r
}

// waited says a wait in the largest unit that fits: 40s, 12m, 3h, 2d.
func waited(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(max(0, int(d.Seconds()))) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

// workPane is the open conversation, loaded into the right of the
// workspace (a view of the contact, audited as their page is).
func (in *Inbox) workPane(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		q, err := workQueryOf(c)
		if err != nil {
			return err
		}
		p, err := in.workPaneProps(c, a, idParam(c), q)
		if err != nil {
			return err
		}
		return render(c, views.WorkPane(p))
	}
}

func (in *Inbox) workPaneProps(c *fiber.Ctx, a *Access, id int64, q workQuery) (views.WorkPaneProps, error) {
	p, err := in.contactPropsOf(c, a, id, viewPage)
	if err != nil {
		return views.WorkPaneProps{}, err
	}
	p.Back = q.href(id) // its timeline's actions return to the workspace
	return views.WorkPaneProps{Contact: p, Back: p.Back}, nil
}

// workEvents streams "changed" while the workspace's list may have
// changed, as a contact's page's stream does for its messages; the list
// fetches itself again on it. It sends nothing sealed.
func (in *Inbox) workEvents() fiber.Handler {
	return func(c *fiber.Ctx) error {
		return in.streamChanges(c, in.Messages.WorkFingerprint)
	}
}
