package handlers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html"
	"sort"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// timeline is the contact's messages alone, fetched again when the event
// stream says they changed (a view, audited like the page).
func (in *Inbox) timeline(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := in.contactPropsOf(c, a, idParam(c), viewTimeline)
		if err != nil {
			return err
		}
		if back := c.Query("back"); back != "" { // the view that fetched it
			p.Back = safeNext(back)
		}
		return render(c, views.Timeline(p))
	}
}

// events streams "changed" (server-sent events) while the contact's
// messages change, so an open page follows the conversation live. It
// starts from the state the page was rendered with (its cursor, in the
// query as since), not from the state when it connects: a reply sent or a
// status changed in between is announced at once. Each announcement
// carries the state it saw as its id, which the browser hands back as
// Last-Event-ID when it reconnects. It sends nothing sealed, so it is not
// audited; what it triggers is.
func (in *Inbox) events() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := idParam(c)
		return in.streamChanges(c, func(ctx context.Context) (string, error) { return in.Messages.Fingerprint(ctx, id) })
	}
}

// streamChanges answers c with a stream of "changed" events, one each time
// fingerprint's answer moves, from the state the client last saw.
func (in *Inbox) streamChanges(c *fiber.Ctx, fingerprint func(ctx context.Context) (string, error)) error {
	pollEvery, streamFor := in.pace()
	seen := func(first string) string { return seenState(c, first) }
	return pollStream(c, pollEvery, streamFor, seen, fingerprint, announce)
}

// maxCursor bounds the state a client hands back; a fingerprint is far
// shorter, and anything longer is not one.
const maxCursor = 128

// seenState is the state of the messages the client last showed: the id
// of the last announcement it received (Last-Event-ID, on a reconnect),
// else the page's cursor (since), else now when it names none.
func seenState(c *fiber.Ctx, now string) string {
	seen := c.Get("Last-Event-ID")
	if seen == "" {
		seen = c.Query("since")
	}
	switch {
	case seen == "":
		return now
	case len(seen) > maxCursor:
		return "" // unknown: announce a change, and the page fetches what is there
	}
	return utils.CopyString(seen)
}

// announce writes one "changed" event carrying the state it saw.
func announce(w *bufio.Writer, state string) {
	fmt.Fprintf(w, "id: %s\nevent: changed\ndata: messages\n\n", state)
}

func (in *Inbox) contact(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, err := in.contactPropsOf(c, a, idParam(c), viewPage)
		if err != nil {
			return err
		}
		return render(c, views.Contact(p))
	}
}

// contactView is how much of a contact's page is read: a live refetch of
// the timeline renders only its messages, so it reads no more.
type contactView int

const (
	viewTimeline contactView = iota // the messages alone
	viewPane                        // and the live view's starting point (the simulator's pane)
	viewPage                        // and the reply box and the conversation's panel
)

// contactPropsOf reads contact id and their latest messages, after auditing
// the view, and as much else as view shows.
func (in *Inbox) contactPropsOf(c *fiber.Ctx, a *Access, id int64, view contactView) (views.ContactProps, error) {
	ctx := c.UserContext()
	before, _ := strconv.ParseInt(c.Query("before"), 10, 64)
	if err := a.audit(c, "contact.view", "contact", strconv.FormatInt(id, 10), nil); err != nil {
		return views.ContactProps{}, err
	}
	// The live view's starting point, taken before the messages are read:
	// a change in between is then announced once more, never missed.
	var cursor string
	if view >= viewPane {
		var err error
		if cursor, err = in.Messages.Fingerprint(ctx, id); err != nil {
			return views.ContactProps{}, err
		}
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
	p := views.ContactProps{Staff: badge(c), ID: id, Cursor: cursor, Channel: string(contact.Channel), Language: contact.Language, OptedOut: contact.OptedOut,
		CanResend: in.Actions != nil && auth.Can(role, auth.Resend),
		CanErase:  a != nil && a.Personal != nil && auth.Can(role, auth.EraseContacts)}
	if view == viewPage && in.Actions != nil && auth.Can(role, auth.Reply) {
		if p.CanReply, p.ReplyNote, err = in.mayReply(c, id); err != nil {
			return views.ContactProps{}, err
		}
	}
	p.Name, p.Phone = contactLabel(contact, mask)
	p.Named, p.Masked = contact.Name != "", mask
	attachments, err := in.attachmentsOf(ctx, msgs)
	if err != nil {
		return views.ContactProps{}, err
	}
	resent := map[int64]bool{} // failed messages sent again on this page
	for _, m := range msgs {
		if m.ResendOf != nil {
			resent[*m.ResendOf] = true
		}
	}
	for i := len(msgs) - 1; i >= 0; i-- { // oldest first
		row := messageRow(msgs[i], contact, mask)
		row.Resent = resent[msgs[i].ID]
		for _, a := range attachments[msgs[i].ID] {
			kind, _ := mediaKind(a.ContentType)
			row.Media = append(row.Media, views.MediaItem{ID: a.ID, Kind: kind, ContentType: a.ContentType, Ready: a.Fetched, Error: a.Error,
				Text: a.Text, Language: a.Language, Understanding: a.Understanding, NotUnderstood: a.UnderstandError})
		}
		p.Messages = append(p.Messages, row)
	}
	if view == viewPage && in.Convs != nil {
		conv, err := in.Convs.Open(ctx, nil, id)
		if err != nil {
			return views.ContactProps{}, err
		}
		if conv != nil {
			p.Conversation = conversationPanel(conv, role)
			// A hand-off nobody holds is taken where it is read, to reply.
			if !p.CanReply && conv.Status == models.ConversationHandoff && in.Actions != nil && auth.Can(role, auth.HandoffWork) {
				if _, holder, err := in.Convs.Holder(ctx, nil, conv.ID); err != nil {
					return views.ContactProps{}, err
				} else if holder == "" {
					p.TakeID = conv.ID
				}
			}
			// Pause and resume are offered to those the service would let:
			// not to an agent when a colleague holds the hand-off.
			if p.Conversation.CanPause && in.Actions != nil {
				switch err := in.Actions.MayCommand(ctx, actorOf(c), conv.ID, engine.OverrideResume); models.ErrorCode(err) {
				case "":
				case models.EFORBIDDEN:
					p.Conversation.CanPause = false
				default:
					return views.ContactProps{}, err
				}
			}
			timers, err := in.Convs.Timers(ctx, conv.ID)
			if err != nil {
				return views.ContactProps{}, err
			}
			for _, t := range timers {
				what := "Time-out"
				switch t.Input {
				case "remind":
					what = "Reminder"
				case "scheduled":
					what = "Planned message"
				}
				p.Conversation.Timers = append(p.Conversation.Timers, views.Timer{What: what, At: t.At.UTC().Format("2 Jan 15:04 UTC")})
			}
			if in.Actions != nil && (p.Conversation.CanOverride || p.Conversation.CanPause) {
				flow, startable, err := in.Actions.FlowOf(ctx, conv)
				switch {
				case errors.Is(err, pipeline.ErrFlowUnreadable):
					// Processing hands such a conversation to a person: the page
					// serves them, without the bot's controls, which would fail.
					p.Conversation.CanPause, p.Conversation.CanOverride = false, false
					p.Conversation.FlowUnreadable = true
				case err != nil:
					return views.ContactProps{}, err
				default:
					p.Conversation.ResumeEnds = engine.ResumeEnds(flow, conv.Node)
				}
				if p.Conversation.CanOverride {
					for id := range flow.Nodes {
						p.Conversation.Nodes = append(p.Conversation.Nodes, id)
					}
					sort.Strings(p.Conversation.Nodes)
					p.Conversation.Flows = startable
				}
			}
		}
	}
	if len(msgs) == inboxPage { // earlier places, not ids: see store/order.go
		p.Older = "/contacts/" + strconv.FormatInt(id, 10) + "?before=" + strconv.FormatInt(msgs[len(msgs)-1].Seq, 10)
	}
	return p, nil
}

// mayReply asks the staff actions whether the signed-in member may write
// to the contact now, and if not, why (for the page to say instead of
// offering a box that would refuse them).
func (in *Inbox) mayReply(c *fiber.Ctx, contactID int64) (bool, string, error) {
	err := in.Actions.MayReply(c.UserContext(), actorOf(c), contactID)
	switch models.ErrorCode(err) {
	case "":
		return true, "", nil
	case models.EFORBIDDEN:
		return false, models.ErrorMessage(err), nil
	}
	return false, "", err
}

// attachmentsOf lists the attachments of msgs by message (none when the
// console shows no media).
func (in *Inbox) attachmentsOf(ctx context.Context, msgs []*models.Message) (map[int64][]store.MediaInfo, error) {
	if in.Media == nil || len(msgs) == 0 {
		return map[int64][]store.MediaInfo{}, nil
	}
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return in.Media.ForMessages(ctx, ids)
}

// conversationPanel is a conversation's state as the console shows it, and
// what the role may do to it.
func conversationPanel(conv *models.Conversation, role models.Role) *views.ConversationPanel {
	cp := &views.ConversationPanel{ID: conv.ID, Flow: conv.FlowID, Version: conv.FlowVersion, Node: conv.Node, Status: string(conv.Status),
		Error: conv.Error, Language: conv.Language, CanPause: auth.Can(role, auth.HandoffWork), CanOverride: auth.Can(role, auth.Override)}
	if conv.ExpiresAt != nil {
		cp.Expires = conv.ExpiresAt.UTC().Format("2 Jan 15:04 UTC")
	}
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

// inlineTypes are the attachment types the console shows in the page;
// anything else is offered as a download, never rendered.
var inlineTypes = map[string]string{
	"image/jpeg": "image", "image/png": "image", "image/gif": "image", "image/webp": "image",
	"audio/ogg": "audio", "audio/mpeg": "audio", "audio/mp4": "audio", "audio/aac": "audio", "audio/amr": "audio", "audio/wav": "audio",
	"video/mp4": "video", "video/3gpp": "video",
}

// mediaKind is how the console shows an attachment: image, audio, video
// or file; and its type without parameters.
func mediaKind(contentType string) (kind, base string) {
	base, _, _ = strings.Cut(contentType, ";")
	base = strings.ToLower(strings.TrimSpace(base))
	if k, ok := inlineTypes[base]; ok {
		return k, base
	}
	return "file", base
}

// media serves one attachment, decrypted, to staff who may read the
// conversation (audited): images, audio and video of the known types
// inline, anything else as a download, never sniffed or run.
func (in *Inbox) media(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := idParam(c)
		if err := a.audit(c, "media.view", "media", strconv.FormatInt(id, 10), nil); err != nil {
			return err
		}
		m, err := in.Media.Get(c.UserContext(), id)
		if err != nil {
			return err
		}
		if m.Data == nil {
			return models.Errorf(models.ENOTFOUND, "This attachment has not been fetched from the platform yet.")
		}
		if kind, base := mediaKind(m.ContentType); kind == "file" {
			c.Set(fiber.HeaderContentType, "application/octet-stream")
			c.Set(fiber.HeaderContentDisposition, `attachment; filename="attachment-`+strconv.FormatInt(id, 10)+`"`)
		} else {
			c.Set(fiber.HeaderContentType, base)
			c.Set(fiber.HeaderContentDisposition, "inline")
		}
		c.Set(fiber.HeaderCacheControl, "private, no-store")
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; sandbox")
		return c.Send(m.Data)
	}
}

// erase removes everything of the contact, from the console; the erasure
// audits itself.
func (in *Inbox) erase(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := idParam(c)
		actor := actorOf(c)
		if _, err := a.Personal.Erase(c.UserContext(), id, &actor); err != nil {
			return err
		}
		return c.Redirect("/?done=erased", fiber.StatusSeeOther)
	}
}

// reveal shows a masked number whole, to a role that may see it so, and
// records that it did.
func (in *Inbox) reveal(a *Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := idParam(c)
		if err := a.audit(c, "contact.reveal_phone", "contact", strconv.FormatInt(id, 10), nil); err != nil {
			return err
		}
		contact, err := in.Contacts.Get(c.UserContext(), id)
		if err != nil {
			return err
		}
		c.Type("html", "utf-8")
		return c.SendString(html.EscapeString(contact.Address))
	}
}
