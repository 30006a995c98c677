package handlers

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// openAPI is the JSON API's description (OpenAPI 3.1), served as it is;
// TestOpenAPI keeps it true to the routes and their answers.
//
//go:embed openapi.json
var openAPI []byte

// API is the JSON API's reading of conversations and the staff actions on
// them, with the console's permissions and audit: the same Inbox and
// Admin parts, answered as JSON.
type API struct {
	Inbox *Inbox
	Admin *Admin
}

// apiPage is the default page size of the API's lists; a caller may ask
// for 1 to apiPageMax.
const (
	apiPage    = 50
	apiPageMax = 200
)

// registerAPI adds the JSON API under /api/v1, every route but the
// document itself behind a bearer token.
func registerAPI(app *fiber.App, a *Access, in *Inbox, ad *Admin, bc *Broadcasts) {
	if a == nil {
		return
	}
	if a.Local != nil {
		a.Local.access = a
		a.Local.register(app)
	}
	app.Get("/api/v1/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(openAPI)
	})
	api := app.Group("/api/v1", a.bearer)
	api.Get("/me", handleMe)
	a.registerStaffAPI(api)
	if a.Personal != nil {
		api.Get("/contacts/:id<int>/export", require(auth.ExportContacts), a.exportContact)
		api.Delete("/contacts/:id<int>", require(auth.EraseContacts), a.eraseContact)
	}
	x := &API{Inbox: in, Admin: ad}
	if in != nil {
		read := require(auth.ReadConversations)
		api.Get("/conversations", read, x.searchConversations(a))
		api.Get("/contacts/:id<int>", read, x.contact(a))
		api.Get("/contacts/:id<int>/messages", read, x.messages(a))
		if in.Convs != nil {
			api.Get("/conversations/:id<int>", read, x.conversation(a))
			api.Get("/handoffs", read, x.handoffs(a))
			if in.Actions != nil {
				api.Post("/conversations/:id<int>/take", require(auth.HandoffWork), x.take())
			}
		}
		if in.Actions != nil {
			api.Post("/contacts/:id<int>/reply", require(auth.Reply), x.reply())
			api.Post("/messages/:id<int>/resend", require(auth.Resend), x.resend())
			api.Post("/messages/resend", require(auth.Resend), x.bulkResend())
			api.Post("/conversations/:id<int>/override", require(auth.HandoffWork), x.override())
		}
		registerStart(nil, api, in, nil)
	}
	if bc != nil {
		bc.registerAPI(api)
	}
	if ad != nil && ad.Audit != nil {
		api.Get("/audit", require(auth.ReadAudit), x.audit(a))
		api.Get("/audit/verify", require(auth.ReadAudit), x.verifyAudit(a))
	}
}

// readJSON decodes the request's JSON body into v, refusing any other
// type, unknown fields and trailing data: a typo is an error, not ignored.
func readJSON(c *fiber.Ctx, v any) error {
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationJSON) {
		return models.Errorf(models.EINVALID, "Send JSON (Content-Type: application/json).")
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return models.Errorf(models.EINVALID, "The body is not the JSON this route takes: %s.", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return models.Errorf(models.EINVALID, "The body holds more than one JSON value.")
	}
	return nil
}

// jsonProblem says what is wrong in a body without repeating its content.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return "field " + typeErr.Field + " should be " + typeErr.Type.String()
	case errors.As(err, &syntaxErr):
		return "malformed at byte " + strconv.FormatInt(syntaxErr.Offset, 10)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "it is empty or cut short"
	}
	return "malformed"
}

// pageOf reads a list's keyset cursor (after: the id the previous page
// ended on; 0 from the start) and size.
func pageOf(c *fiber.Ctx) (after int64, limit int, err error) {
	if s := c.Query("after"); s != "" {
		if after, err = strconv.ParseInt(s, 10, 64); err != nil || after <= 0 {
			return 0, 0, models.Errorf(models.EINVALID, "after is the next value of the previous page.")
		}
	}
	limit, err = limitOf(c)
	return after, limit, err
}

// seqCursor starts the cursors of a contact's messages, which page by seq.
// They paged by id once, under the same parameter and as a bare number: an
// old cursor read as a seq would page wrongly without a word, so the new
// ones carry a mark and a bare number is refused.
const seqCursor = "s"

// seqPageOf reads the keyset cursor of a contact's messages (the seq the
// previous page ended on; 0 from the start) and the page's size.
func seqPageOf(c *fiber.Ctx) (after int64, limit int, err error) {
	if s := c.Query("after"); s != "" {
		n, marked := strings.CutPrefix(s, seqCursor)
		if after, err = strconv.ParseInt(n, 10, 64); !marked || err != nil || after <= 0 {
			return 0, 0, models.Errorf(models.EINVALID, "after is the next value of the previous page, as it was given (a message id is not one: start again from the first page).")
		}
	}
	limit, err = limitOf(c)
	return after, limit, err
}

// limitOf reads a list's page size: apiPage unless asked.
func limitOf(c *fiber.Ctx) (limit int, err error) {
	limit = apiPage
	if s := c.Query("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > apiPageMax {
			return 0, models.Errorf(models.EINVALID, "limit is a number from 1 to %d.", apiPageMax)
		}
	}
	return limit, nil
}

// cursor is the next value of a page: the last id when the page is full
// (there may be more), "" when the list is done.
func cursor(n, limit int, last int64) string {
	if n < limit || last == 0 {
		return ""
	}
	return strconv.FormatInt(last, 10)
}

type contactOut struct {
	ID          int64     `json:"id"`
	Channel     string    `json:"channel"`
	Phone       string    `json:"phone"`
	PhoneMasked bool      `json:"phone_masked"`
	Name        string    `json:"name"`
	Language    string    `json:"language"`
	OptedOut    bool      `json:"opted_out"`
	CreatedAt   time.Time `json:"created_at"`
}

func contactJSON(ct *models.Contact, mask bool) contactOut {
	number := ct.Address
	if mask {
		number = phone.Mask(number)
	}
	return contactOut{ID: ct.ID, Channel: string(ct.Channel), Phone: number, PhoneMasked: mask, Name: ct.Name, Language: ct.Language,
		OptedOut: ct.OptedOut, CreatedAt: ct.CreatedAt.UTC()}
}

type attachmentOut struct {
	ID            int64  `json:"id"`
	ContentType   string `json:"content_type"`
	Kind          string `json:"kind"`
	Ready         bool   `json:"ready"`
	Error         string `json:"error"`
	Text          string `json:"text"`
	Language      string `json:"language"`
	Understanding string `json:"understanding"`
	NotUnderstood string `json:"not_understood"`
}

type messageOut struct {
	ID             int64           `json:"id"`
	ContactID      int64           `json:"contact_id"`
	ConversationID *int64          `json:"conversation_id"`
	Direction      string          `json:"direction"`
	Channel        string          `json:"channel"`
	Provider       string          `json:"provider"`
	Body           string          `json:"body"`
	Status         string          `json:"status"`
	ErrorCode      string          `json:"error_code"`
	ErrorReason    string          `json:"error_reason"`
	CreatedAt      time.Time       `json:"created_at"`
	Seq            int64           `json:"seq"`
	Attachments    []attachmentOut `json:"attachments"`
}

func messageJSON(m *models.Message, media []store.MediaInfo) messageOut {
	out := messageOut{ID: m.ID, ContactID: m.ContactID, ConversationID: m.ConversationID, Direction: string(m.Direction), Channel: string(m.Channel),
		Provider: m.Provider, Body: m.Body, Status: string(m.Status), ErrorCode: m.ErrorCode, ErrorReason: m.ErrorReason,
		CreatedAt: m.CreatedAt.UTC(), Seq: m.Seq, Attachments: []attachmentOut{}}
	for _, a := range media {
		kind, _ := mediaKind(a.ContentType)
		out.Attachments = append(out.Attachments, attachmentOut{ID: a.ID, ContentType: a.ContentType, Kind: kind, Ready: a.Fetched, Error: a.Error,
			Text: a.Text, Language: a.Language, Understanding: a.Understanding, NotUnderstood: a.UnderstandError})
	}
	return out
}

type timerOut struct {
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
}

type conversationOut struct {
	ID          int64             `json:"id"`
	ContactID   int64             `json:"contact_id"`
	Flow        string            `json:"flow"`
	FlowVersion string            `json:"flow_version"`
	Node        string            `json:"node"`
	Status      string            `json:"status"`
	Variables   map[string]string `json:"variables"`
	Language    string            `json:"language"`
	Error       string            `json:"error"`
	StartedAt   time.Time         `json:"started_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	ExpiresAt   *time.Time        `json:"expires_at"`
	EndedAt     *time.Time        `json:"ended_at"`
	Timers      []timerOut        `json:"timers"`
}

// conversationJSON is a conversation and its pending timers.
func (x *API) conversationJSON(c *fiber.Ctx, conv *models.Conversation) (*conversationOut, error) {
	out := &conversationOut{ID: conv.ID, ContactID: conv.ContactID, Flow: conv.FlowID, FlowVersion: conv.FlowVersion, Node: conv.Node,
		Status: string(conv.Status), Variables: conv.Variables, Language: conv.Language, Error: conv.Error, StartedAt: conv.StartedAt.UTC(),
		UpdatedAt: conv.UpdatedAt.UTC(), ExpiresAt: utcOrNil(conv.ExpiresAt), EndedAt: utcOrNil(conv.EndedAt), Timers: []timerOut{}}
	if out.Variables == nil {
		out.Variables = map[string]string{}
	}
	timers, err := x.Inbox.Convs.Timers(c.UserContext(), conv.ID)
	if err != nil {
		return nil, err
	}
	for _, t := range timers {
		out.Timers = append(out.Timers, timerOut{Kind: t.Input, At: t.At.UTC()}) // remind, expire or scheduled
	}
	return out, nil
}

func utcOrNil(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// searchConversations finds conversations as the inbox does (q: a phone
// number in any format, or words of a name or a message; the inbox's
// filters), one row per contact with its newest message found.
func (x *API) searchConversations(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		f, kept, err := filtersOf(c)
		if err != nil {
			return err
		}
		if f.Before, f.Limit, err = pageOf(c); err != nil {
			return err
		}
		q := c.Query("q")
		hits, next, err := x.Inbox.auditedSearch(c, a, q, f, kept)
		if err != nil {
			return err
		}
		mask := auth.MasksPhones(principal(c).Role)
		type row struct {
			Contact contactOut `json:"contact"`
			Message messageOut `json:"message"`
			More    int        `json:"more"`
			Tags    []string   `json:"tags"` // the contact's conversations' (desk.go)
		}
		rows := []row{}
		ids := make([]int64, 0, len(hits))
		for _, g := range hits {
			rows = append(rows, row{Contact: contactJSON(g.first.Contact, mask), Message: messageJSON(g.first.Message, nil), More: g.more})
			ids = append(ids, g.first.Contact.ID)
		}
		tags, err := x.Inbox.tagsOf(c.UserContext(), ids)
		if err != nil {
			return err
		}
		for i := range rows {
			rows[i].Tags = tags[rows[i].Contact.ID]
			if rows[i].Tags == nil {
				rows[i].Tags = []string{}
			}
		}
		nextText := ""
		if next != 0 {
			nextText = strconv.FormatInt(next, 10)
		}
		return c.JSON(fiber.Map{"conversations": rows, "next": nextText})
	}
}

// contact reads a contact and their open conversation (null when none).
func (x *API) contact(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, ctx := idParam(c), c.UserContext()
		if err := a.audit(c, "contact.view", "contact", strconv.FormatInt(id, 10), nil); err != nil {
			return err
		}
		ct, err := x.Inbox.Contacts.Get(ctx, id)
		if err != nil {
			return err
		}
		var open *conversationOut
		if x.Inbox.Convs != nil {
			conv, err := x.Inbox.Convs.Open(ctx, nil, id)
			if err != nil {
				return err
			}
			if conv != nil {
				if open, err = x.conversationJSON(c, conv); err != nil {
					return err
				}
			}
		}
		return c.JSON(fiber.Map{"contact": contactJSON(ct, auth.MasksPhones(principal(c).Role)), "conversation": open})
	}
}

// messages lists a contact's messages, latest first in the order they
// happened (seq, which pages them too), with their attachments
// (described; /media/{id} in the console serves them).
func (x *API) messages(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, ctx := idParam(c), c.UserContext()
		after, limit, err := seqPageOf(c)
		if err != nil {
			return err
		}
		if err := a.audit(c, "contact.view", "contact", strconv.FormatInt(id, 10), map[string]any{"messages": true, "after": after}); err != nil {
			return err
		}
		if _, err := x.Inbox.Contacts.Get(ctx, id); err != nil {
			return err // not found is an error, not an empty list
		}
		msgs, err := x.Inbox.Messages.ForContact(ctx, id, after, limit)
		if err != nil {
			return err
		}
		media, err := x.Inbox.attachmentsOf(ctx, msgs)
		if err != nil {
			return err
		}
		out := make([]messageOut, len(msgs))
		var last int64
		for i, m := range msgs {
			out[i], last = messageJSON(m, media[m.ID]), m.Seq
		}
		next := cursor(len(msgs), limit, last)
		if next != "" {
			next = seqCursor + next
		}
		return c.JSON(fiber.Map{"messages": out, "next": next})
	}
}

// conversation reads one conversation: where it stands, its variables and
// its pending timers.
func (x *API) conversation(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := idParam(c)
		if err := a.audit(c, "conversation.view", "conversation", strconv.FormatInt(id, 10), nil); err != nil {
			return err
		}
		conv, err := x.Inbox.Convs.Read(c.UserContext(), id)
		if err != nil {
			return err
		}
		out, err := x.conversationJSON(c, conv)
		if err != nil {
			return err
		}
		return c.JSON(out)
	}
}

// handoffs lists the conversations waiting for a person, the latest hand-off
// first.
func (x *API) handoffs(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		after, limit, err := pageOf(c)
		if err != nil {
			return err
		}
		if err := a.audit(c, "conversations.handoffs", "conversations", "", map[string]any{"before": after}); err != nil {
			return err
		}
		rows, err := x.Inbox.Convs.Handoffs(c.UserContext(), after, limit)
		if err != nil {
			return err
		}
		type row struct {
			ConversationID int64     `json:"conversation_id"`
			ContactID      int64     `json:"contact_id"`
			Since          time.Time `json:"since"`
			AssignedTo     *string   `json:"assigned_to"`
		}
		out := make([]row, len(rows))
		var last int64
		for i, r := range rows {
			out[i], last = row{ConversationID: r.ConversationID, ContactID: r.ContactID, Since: r.Since.UTC()}, r.ConversationID
			if r.AssignedTo != "" {
				out[i].AssignedTo = &rows[i].AssignedTo
			}
		}
		return c.JSON(fiber.Map{"handoffs": out, "next": cursor(len(rows), limit, last)})
	}
}

// take assigns a handed-off conversation to the caller (the service
// decides whether they may, and audits it).
func (x *API) take() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := x.Inbox.Actions.Take(c.UserContext(), actorOf(c), idParam(c)); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// reply queues a staff member's message to a contact (202: it goes out
// through the send queue; its status follows on the contact's messages).
func (x *API) reply() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in struct {
			Text string `json:"text"`
		}
		if err := readJSON(c, &in); err != nil {
			return err
		}
		id, err := x.Inbox.Actions.Reply(c.UserContext(), actorOf(c), idParam(c), in.Text)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"message_id": id})
	}
}

// resend sends a failed or uncertain message again, once however often
// it is asked: the answer names the one resend.
func (x *API) resend() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := x.Inbox.Actions.Resend(c.UserContext(), actorOf(c), idParam(c))
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"message_id": id})
	}
}

// bulkResend sends again the failed messages of a range of days (at most
// pipeline.BulkResendCap a call; call again for the rest), or with dry_run
// counts them.
func (x *API) bulkResend() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in struct {
			Since  string `json:"since"`
			Until  string `json:"until"`
			DryRun bool   `json:"dry_run"`
		}
		if err := readJSON(c, &in); err != nil {
			return err
		}
		since, until, err := dayBounds(in.Since, in.Until)
		if err != nil {
			return err
		}
		r, err := x.Inbox.Actions.BulkResend(c.UserContext(), actorOf(c), since, until, in.DryRun)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"found": r.Found, "resent": r.Resent, "refused": r.Refused, "more": r.More})
	}
}

// override applies a staff command to a conversation (the service decides
// whether the caller may: Pipeline.Override).
func (x *API) override() fiber.Handler {
	return func(c *fiber.Ctx) error {
		var o engine.Override
		if err := readJSON(c, &o); err != nil {
			return err
		}
		o.Node, o.Var, o.Flow = strings.TrimSpace(o.Node), strings.TrimSpace(o.Var), strings.TrimSpace(o.Flow)
		if err := x.Inbox.Actions.Override(c.UserContext(), actorOf(c), idParam(c), o); err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

type auditOut struct {
	Seq         int64          `json:"seq"`
	At          time.Time      `json:"at"`
	ActorID     *string        `json:"actor_id"`
	ActorEmail  string         `json:"actor_email"`
	ActorRole   string         `json:"actor_role"`
	Action      string         `json:"action"`
	SubjectType string         `json:"subject_type"`
	SubjectID   string         `json:"subject_id"`
	RequestID   string         `json:"request_id"`
	Details     map[string]any `json:"details"`
}

// audit reads the audit log, newest first, filtered as the console's page
// is (actor email, action or group ending in ".", subject type and id,
// days); the reading is itself audited.
func (x *API) audit(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		after, limit, err := pageOf(c)
		if err != nil {
			return err
		}
		q, err := auditQueryOf(c)
		if err != nil {
			return err
		}
		q.SubjectType, q.SubjectID = strings.TrimSpace(c.Query("subject_type")), strings.TrimSpace(c.Query("subject_id"))
		q.Before, q.Limit = after, limit
		if err := a.audit(c, "audit.read", "audit", "", map[string]any{"actor_fp": a.fingerprint(q.ActorEmail), "action": q.Action}); err != nil {
			return err
		}
		entries, err := x.Admin.Audit.List(c.UserContext(), q)
		if err != nil {
			return err
		}
		out := make([]auditOut, len(entries))
		var last int64
		for i, e := range entries {
			out[i] = auditOut{Seq: e.Seq, At: e.At.UTC(), ActorEmail: e.ActorEmail, ActorRole: string(e.ActorRole), Action: e.Action,
				SubjectType: e.SubjectType, SubjectID: e.SubjectID, RequestID: e.RequestID, Details: e.Details}
			if e.ActorID != "" {
				out[i].ActorID = &entries[i].ActorID
			}
			if out[i].Details == nil {
				out[i].Details = map[string]any{}
			}
			last = e.Seq
		}
		return c.JSON(fiber.Map{"entries": out, "next": cursor(len(entries), limit, last)})
	}
}

// verifyAudit checks the whole hash chain of the audit log.
func (x *API) verifyAudit(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := a.audit(c, "audit.read", "audit", "", map[string]any{"verify": true}); err != nil {
			return err
		}
		n, err := x.Admin.Audit.Verify(c.UserContext())
		switch {
		case models.ErrorCode(err) == models.EINTERNAL:
			return c.JSON(fiber.Map{"intact": false, "entries": n, "problem": models.ErrorMessage(err)})
		case err != nil:
			return err
		}
		return c.JSON(fiber.Map{"intact": true, "entries": n, "problem": ""})
	}
}
