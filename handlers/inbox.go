package handlers

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/pipeline"
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
	// FailedBetween lists failed outbound messages not sent again.
	FailedBetween(ctx context.Context, since, until time.Time, limit int) ([]int64, error)
	// Workspace lists a view's conversations, latest activity first, each
	// with its latest message decrypted: EINVALID for an unknown view.
	Workspace(ctx context.Context, f store.WorkFilter) ([]store.WorkItem, error)
	// WorkFingerprint changes when the workspace's list may have; it
	// holds nothing sealed.
	WorkFingerprint(ctx context.Context) (string, error)
}

// ContactReader reads contacts, decrypted (store.ContactStore).
type ContactReader interface {
	Get(ctx context.Context, id int64) (*models.Contact, error)
	// FindByPhone returns the contacts on any channel with this number.
	FindByPhone(ctx context.Context, number string) ([]*models.Contact, error)
}

// MediaReader lists and opens messages' attachments (store.MediaStore).
type MediaReader interface {
	ForMessages(ctx context.Context, messageIDs []int64) (map[int64][]store.MediaInfo, error)
	Get(ctx context.Context, id int64) (*store.Media, error)
}

// Ingester stores inbound messages and queues them, as a platform's
// webhook does (pipeline.Pipeline).
type Ingester interface {
	Ingest(ctx context.Context, ins []channel.Inbound) (int, error)
}

// StaffActions are what staff do to conversations (pipeline.Pipeline);
// each audits itself.
type StaffActions interface {
	// Reply returns EFORBIDDEN when the actor may not write to the
	// contact now (an agent, and the contact is not in a hand-off they
	// hold).
	Reply(ctx context.Context, actor models.Actor, contactID int64, text string) (int64, error)
	// MayReply is nil when Reply would not refuse the actor, else the
	// EFORBIDDEN it would.
	MayReply(ctx context.Context, actor models.Actor, contactID int64) error
	// Take gives a handed-off conversation to the actor: ENOTFOUND when
	// it is not handed off, EFORBIDDEN when another member holds it and
	// the actor may not take it over.
	Take(ctx context.Context, actor models.Actor, conversationID int64) error
	Resend(ctx context.Context, actor models.Actor, messageID int64) (int64, error)
	// BulkResend resends (or with dryRun counts) the failed messages of a
	// range of days: EINVALID for a range that is not one.
	BulkResend(ctx context.Context, actor models.Actor, since, until time.Time, dryRun bool) (pipeline.BulkResendResult, error)
	// Override returns EFORBIDDEN when the actor's role may not give the
	// command, or another member holds the hand-off and the actor may not
	// take it over.
	Override(ctx context.Context, actor models.Actor, conversationID int64, o engine.Override) error
	// MayCommand is nil when Override would not refuse the actor a command
	// of kind, else the EFORBIDDEN it would.
	MayCommand(ctx context.Context, actor models.Actor, conversationID int64, kind engine.OverrideKind) error
	// FlowOf returns the flow a conversation is pinned to and the flows
	// that may be started.
	FlowOf(ctx context.Context, conv *models.Conversation) (*engine.Flow, []string, error)
}

// ConversationReader finds a contact's open conversation, decrypted, and
// the hand-off queue (store.ConversationStore).
type ConversationReader interface {
	// Open returns nil when the contact has no open conversation.
	Open(ctx context.Context, tx *gorm.DB, contactID int64) (*models.Conversation, error)
	// Read returns a conversation by id (ENOTFOUND when there is none).
	Read(ctx context.Context, id int64) (*models.Conversation, error)
	Handoffs(ctx context.Context, before int64, limit int) ([]store.Handoff, error)
	Counts(ctx context.Context) (store.InboxCounts, error)
	// Timers lists a conversation's pending reminders and time-outs.
	Timers(ctx context.Context, conversationID int64) ([]store.Timer, error)
	// Holder returns a conversation's status and who holds it ("" when
	// nobody has taken it).
	Holder(ctx context.Context, tx *gorm.DB, id int64) (models.ConversationStatus, string, error)
}

// Inbox is the console's reading of conversations, and the replies and
// resends staff make there. Every read of decrypted data is audited
// before it is shown.
type Inbox struct {
	Messages MessageReader
	Contacts ContactReader
	Actions  StaffActions // nil: read only
	Convs    ConversationReader
	// Flows lists the flows this instance runs (pipeline.Pipeline); nil:
	// no flows page.
	Flows interface{ Flows() []*engine.Flow }
	// Templates is the WhatsApp template registry (store.TemplateStore);
	// nil: no templates page.
	Templates interface {
		List(ctx context.Context) ([]*models.Template, error)
	}
	// CheckFlows reads the flows folder again and says what is wrong in it
	// now (nil: nothing), so an author sees a mistake before the next
	// start refuses it; nil: no check.
	CheckFlows func() error
	// Counts gives the flow map its funnel and a contact's node
	// (store.DashboardStore); nil: the map alone.
	Counts DashboardReader
	// Media reads attachments (store.MediaStore); nil: none shown.
	Media MediaReader
	// Tags reads the tags of contacts' conversations for the list's
	// badges (store.TagStore); nil: none shown.
	Tags TagReader
	// Simulator takes the simulator's messages in; nil: no simulator.
	Simulator Ingester
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
	app.Post("/contacts/:id<int>/reveal", signedIn, require(auth.RevealPhone), in.reveal(a))
	if in.Media != nil {
		app.Get("/media/:id<int>", signedIn, read, in.media(a))
	}
	if a != nil && a.Personal != nil {
		app.Post("/contacts/:id<int>/erase", signedIn, require(auth.EraseContacts), in.erase(a))
	}
	if in.Actions != nil {
		app.Post("/contacts/:id<int>/reply", signedIn, require(auth.Reply), in.reply())
		app.Post("/messages/:id<int>/resend", signedIn, require(auth.Resend), in.resend())
		app.Post("/conversations/:id<int>/override", signedIn, require(auth.HandoffWork), in.override())
		app.Get("/resend", signedIn, require(auth.Resend), in.bulkResend())
		app.Post("/resend", signedIn, require(auth.Resend), in.bulkResend())
	}
	in.registerWork(app, a, signedIn)
	registerStart(app, nil, in, signedIn)
	if in.Flows != nil {
		app.Get("/flows", signedIn, require(auth.ReadFlows), in.flows())
		app.Get("/flows/:id", signedIn, require(auth.ReadFlows), in.flow(a))
	}
	if in.Templates != nil {
		app.Get("/templates", signedIn, require(auth.ReadTemplates), in.templates())
	}
	if in.Simulator != nil {
		app.Get("/simulator", signedIn, require(auth.SimulateFlows), in.simulator(a))
		app.Post("/simulator", signedIn, require(auth.SimulateFlows), in.simulate(a))
	}
	if in.Convs != nil {
		in.registerWaiting(app, signedIn) // the count every page shows
		app.Get("/handoffs", signedIn, read, in.handoffs(a))
		if in.Actions != nil {
			app.Post("/conversations/:id<int>/take", signedIn, require(auth.HandoffWork), in.take())
		}
	}
}

// filtersOf reads the inbox's filters (state, flow, channel, status,
// direction, dates as YYYY-MM-DD, the last one included); anything else is
// refused. The page cursor is the caller's to read.
func filtersOf(c *fiber.Ctx) (models.MessageSearch, url.Values, error) {
	var f models.MessageSearch
	kept := url.Values{}
	keep := func(k, v string) {
		if v != "" {
			kept.Set(k, v)
		}
	}
	switch ch := models.Channel(c.Query("channel")); ch {
	case "", models.ChannelSMS, models.ChannelWhatsApp, models.ChannelSimulator:
		f.Channel = ch
		keep("channel", string(ch))
	default:
		return f, nil, models.Errorf(models.EINVALID, "Unknown channel.")
	}
	switch st := models.MessageStatus(c.Query("status")); st {
	case "", models.StatusReceived, models.StatusProcessed, models.StatusQueued, models.StatusSending, models.StatusSent,
		models.StatusDelivered, models.StatusRead, models.StatusFailed:
		f.Status = st
		keep("status", string(st))
	default:
		return f, nil, models.Errorf(models.EINVALID, "Unknown status.")
	}
	switch st := c.Query("state"); st {
	case "", models.StateActive, models.StateWaiting, models.StateHandoff, models.StatePaused, models.StateEnded, models.StateFailed:
		f.State = st
		keep("state", st)
	default:
		return f, nil, models.Errorf(models.EINVALID, "Unknown conversation state.")
	}
	if flow := c.Query("flow"); flow != "" {
		if len(flow) > 100 {
			return f, nil, models.Errorf(models.EINVALID, "Unknown flow.")
		}
		f.Flow = flow
		keep("flow", flow)
	}
	if tag := c.Query("tag"); tag != "" {
		t, err := models.CleanTag(tag)
		if err != nil {
			return f, nil, err
		}
		f.Tag = t
		keep("tag", t)
	}
	switch d := models.Direction(c.Query("direction")); d {
	case "", models.Inbound, models.Outbound:
		f.Direction = d
		keep("direction", string(d))
	default:
		return f, nil, models.Errorf(models.EINVALID, "Unknown direction.")
	}
	var err error
	if f.Since, f.Until, err = dayBounds(c.Query("since"), c.Query("until")); err != nil {
		return f, nil, err
	}
	keep("since", c.Query("since"))
	keep("until", c.Query("until"))
	return f, kept, nil
}

// dayBounds reads a range of whole days written YYYY-MM-DD, the last one
// included: from is the first day's start, to the start of the day after
// the last; a bound not given stays zero.
func dayBounds(since, until string) (from, to time.Time, err error) {
	for _, b := range []struct {
		text string
		to   *time.Time
		days int
	}{{since, &from, 0}, {until, &to, 1}} {
		if b.text == "" {
			continue
		}
		day, err := time.Parse("2006-01-02", b.text)
		if err != nil {
			return from, to, models.Errorf(models.EINVALID, "Dates are written like 2026-12-31.")
		}
		*b.to = day.AddDate(0, 0, b.days)
	}
	return from, to, nil
}

func (in *Inbox) resultsProps(c *fiber.Ctx, a *Access) (views.InboxResultsProps, error) {
	q := c.Query("q")
	f, kept, err := filtersOf(c)
	if err != nil {
		return views.InboxResultsProps{}, err
	}
	f.Before, _ = strconv.ParseInt(c.Query("before"), 10, 64)
	f.Limit = inboxPage
	hits, next, err := in.auditedSearch(c, a, q, f, kept)
	if err != nil {
		return views.InboxResultsProps{}, err
	}
	p := views.InboxResultsProps{Query: q}
	mask := auth.MasksPhones(principal(c).Role)
	for _, g := range hits {
		row := messageRow(g.first.Message, g.first.Contact, mask)
		row.More = g.more
		p.Hits = append(p.Hits, row)
	}
	if err := in.tagHits(c.UserContext(), p.Hits); err != nil {
		return views.InboxResultsProps{}, err
	}
	if next != 0 {
		kept.Set("q", q)
		kept.Set("before", strconv.FormatInt(next, 10))
		p.Next = "/?" + kept.Encode()
	}
	return p, nil
}

func (in *Inbox) page(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		results, err := in.resultsProps(c, a)
		if err != nil {
			return err
		}
		p := views.InboxProps{Staff: badge(c), Query: c.Query("q"), Results: results, State: c.Query("state"), Flow: c.Query("flow"),
			Channel: c.Query("channel"), Status: c.Query("status"), Direction: c.Query("direction"), Since: c.Query("since"), Until: c.Query("until")}
		p.Tag, _ = models.CleanTag(c.Query("tag")) // refused above when malformed
		if c.Query("done") == "erased" {
			p.Notice = "Erased: everything held of that person is gone; an audit entry says it happened."
		}
		if in.Flows != nil {
			for _, f := range in.Flows.Flows() {
				p.Flows = append(p.Flows, f.ID)
			}
		}
		if in.Convs != nil {
			n, err := in.Convs.Counts(c.UserContext())
			if err != nil {
				return err
			}
			p.Counts = &views.InboxCounts{Active: n.Active, Handoff: n.Handoff, Unassigned: n.Unassigned, Failed: n.Failed}
		}
		return render(c, views.Inbox(p))
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

// contactLabel is how the console names a contact: their name, else their
// number; and the number, all but its last digits hidden when mask.
func contactLabel(c *models.Contact, mask bool) (name, number string) {
	number = c.Address
	if mask {
		number = phone.Mask(number)
	}
	name = c.Name
	if name == "" {
		name = number
	}
	return name, number
}

// messageTime is how the console gives a message's time: in UTC, and
// saying so, as every other time on the same pages does (a reminder's,
// a note's, a hand-off's).
const messageTime = "2 Jan 15:04 UTC"

// messageRow is a message as the console shows it; mask hides all but the
// last digits of the number.
func messageRow(m *models.Message, c *models.Contact, mask bool) views.MessageRow {
	name, number := contactLabel(c, mask)
	return views.MessageRow{ID: m.ID, ContactID: c.ID, Contact: name, Phone: number, Channel: string(c.Channel), Inbound: m.Direction == models.Inbound,
		Body: m.Body, At: m.CreatedAt.UTC().Format(messageTime), Status: string(m.Status), Error: m.ErrorReason,
		ByStaff: m.SentBy != ""}
}

func summaryOf(f *engine.Flow) views.FlowSummary {
	return views.FlowSummary{ID: f.ID, Version: f.Version, File: f.File, Nodes: len(f.Nodes)}
}

// flows lists the flows this instance runs.
func (in *Inbox) flows() fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := views.FlowsProps{Staff: badge(c)}
		if in.CheckFlows != nil {
			if err := in.CheckFlows(); err != nil {
				p.Problems = strings.Split(strings.TrimSpace(err.Error()), "\n")
			}
		}
		for _, f := range in.Flows.Flows() {
			p.Flows = append(p.Flows, summaryOf(f))
			for _, w := range f.Warnings {
				p.Warnings = append(p.Warnings, w.Error())
			}
		}
		return render(c, views.Flows(p))
	}
}
