package pipeline

import (
	"context"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/models"
)

// registryCache reads a provider's templates from the registry once each
// (a broadcast's plan or round asks for the same few again and again).
type registryCache struct {
	reg      channel.Templates // nil: no registry
	provider string
	seen     map[string]*models.Template
}

// registry is the registry's view of provider's templates: nil (every
// template taken as approved, its text the name and parameters) when
// there is no registry or provider lists no templates into it (Siren, the
// simulator, Meta without a business account ID), so that its sends are
// left to the platform rather than refused for an empty registry.
func (p *Pipeline) registry(provider string) *registryCache {
	c := &registryCache{provider: provider}
	if p.templateSources[provider] != nil {
		c.reg = p.bcast.templates
	}
	return c
}

// Find is find as a channel.Templates, for channel.CheckTemplate: ENOTFOUND
// when the registry has none.
func (c *registryCache) Find(ctx context.Context, provider, name, language string) (*models.Template, error) {
	if provider != c.provider {
		return c.reg.Find(ctx, provider, name, language)
	}
	t, err := c.find(ctx, name, language)
	if err == nil && t == nil {
		err = models.Errorf(models.ENOTFOUND, "Template not found.")
	}
	return t, err
}

// find is the registry's template name in language, nil when it has none.
func (c *registryCache) find(ctx context.Context, name, language string) (*models.Template, error) {
	key := name + "\x00" + language
	if t, ok := c.seen[key]; ok {
		return t, nil
	}
	t, err := c.reg.Find(ctx, c.provider, name, language)
	if models.ErrorCode(err) == models.ENOTFOUND {
		t, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if c.seen == nil {
		c.seen = map[string]*models.Template{}
	}
	c.seen[key] = t
	return t, nil
}

// BroadcastRequest is a broadcast staff plan: what it sends, through
// which channel and provider, to whom (Audience's filter, or the lines of
// CSV), and when (SendAt; nil: as soon as it is confirmed).
type BroadcastRequest struct {
	Name     string
	Channel  models.Channel
	Provider string // "": the provider configured for Channel
	Message  models.BroadcastMessage
	Audience models.Audience
	// CSV, when not nil, is the audience: a header line naming the number
	// column (phone or number) and variables, then a line a recipient.
	CSV    io.Reader
	SendAt *time.Time
}

// BroadcastPlan is a planned broadcast (a draft) and whom it reaches.
type BroadcastPlan struct {
	Broadcast *models.Broadcast
	Progress  *models.BroadcastProgress
	// BadLines are the CSV's lines that could not be used, by number.
	BadLines []models.BadLine
}

// mayBroadcast refuses those whose role may not manage broadcasts.
func mayBroadcast(actor models.Actor) error {
	if !auth.Can(actor.Role, auth.Broadcast) {
		return models.Errorf(models.EFORBIDDEN, "Your role (%s) may not manage broadcasts.", actor.Role)
	}
	return nil
}

// providersFor are the providers a channel's broadcast goes through by
// default, the first configured one.
var providersFor = map[models.Channel][]string{
	models.ChannelWhatsApp:  {"meta", "twilio"},
	models.ChannelSMS:       {"twilio", "siren"},
	models.ChannelSimulator: {"simulator"},
}

// PlanBroadcast resolves the request's audience and writes the broadcast
// as a draft with a row for each recipient, included or excluded with the
// reason, in one transaction: what ConfirmBroadcast then sends. Audited
// (broadcast.create, with counts only). EINVALID for a request that cannot
// be sent or a CSV that cannot be read; EFORBIDDEN for a role that may not.
func (p *Pipeline) PlanBroadcast(ctx context.Context, actor models.Actor, req BroadcastRequest) (*BroadcastPlan, error) {
	if err := mayBroadcast(actor); err != nil {
		return nil, err
	}
	b, err := p.checkRequest(&req)
	if err != nil {
		return nil, err
	}
	switch {
	case req.CSV == nil && req.Audience.CSV:
		return nil, models.Errorf(models.EINVALID, "The audience is a CSV, but none was sent.")
	case req.CSV != nil && req.Audience.Filtered():
		return nil, models.Errorf(models.EINVALID, "The audience is a CSV or a filter, not both.")
	}
	b.CreatedBy = actor.ID
	var sheet *csvAudience
	if req.CSV != nil {
		if sheet, err = readAudienceCSV(req.CSV, p.bcast.phones); err != nil {
			return nil, err
		}
		b.Audience = models.Audience{CSV: true}
	}
	plan := &BroadcastPlan{Broadcast: b}
	err = p.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := p.bcast.store.Create(ctx, tx, b); err != nil {
			return err
		}
		counts := map[string]int{}
		if sheet != nil {
			plan.BadLines = sheet.bad
			err = p.planCSV(ctx, tx, b, sheet, counts)
		} else {
			err = p.planFilter(ctx, tx, b, counts)
		}
		if err != nil {
			return err
		}
		details := map[string]any{"channel": b.Channel, "provider": b.Provider, "csv": sheet != nil, "reached": counts[""]}
		for reason, n := range counts {
			if reason != "" {
				details["excluded_"+reason] = n
			}
		}
		if b.Message.Template != nil {
			details["template"] = b.Message.Template.Name
		}
		return p.audit.Append(ctx, tx, broadcastEvent(actor, "broadcast.create", b.ID, details))
	})
	if err != nil {
		return nil, err
	}
	if plan.Progress, err = p.bcast.store.Progress(ctx, b.ID); err != nil {
		return nil, err
	}
	return plan, nil
}

// checkRequest validates a request and returns its broadcast, unsaved.
func (p *Pipeline) checkRequest(req *BroadcastRequest) (*models.Broadcast, error) {
	name := strings.TrimSpace(req.Name)
	switch {
	case name == "":
		return nil, models.Errorf(models.EINVALID, "Give the broadcast a name.")
	case len(name) > 200:
		return nil, models.Errorf(models.EINVALID, "A broadcast's name may have at most 200 characters.")
	case req.Message.Template == nil && req.Message.FlowID == "":
		return nil, models.Errorf(models.EINVALID, "Choose a template to send or a flow to start.")
	case req.Message.Template != nil && (req.Message.Template.Name == "" || req.Message.Template.Language == ""):
		return nil, models.Errorf(models.EINVALID, "A template needs its name and language.")
	case req.Message.FlowID != "":
		flows, ok := p.responder.(*Flows)
		if !ok {
			return nil, models.Errorf(models.ENOTIMPLEMENTED, "Conversations are not run by flows on this instance.")
		}
		if flows.lib.Current(req.Message.FlowID) == nil {
			return nil, models.Errorf(models.EINVALID, "There is no flow %q.", req.Message.FlowID)
		}
	}
	ch := req.Channel
	if ch == "" {
		ch = models.ChannelWhatsApp
	}
	provider := req.Provider
	if provider == "" {
		for _, name := range providersFor[ch] {
			if p.senders[name] != nil {
				provider = name
				break
			}
		}
	}
	if _, ok := providersFor[ch]; !ok {
		return nil, models.Errorf(models.EINVALID, "Unknown channel %q: choose whatsapp or sms.", ch)
	}
	switch {
	case req.Provider != "" && !slices.Contains(providersFor[ch], provider):
		return nil, models.Errorf(models.EINVALID, "Provider %q does not send %s messages.", provider, ch)
	case req.Provider != "" && p.senders[provider] == nil:
		return nil, models.Errorf(models.EINVALID, "Provider %q is not configured here.", provider)
	case provider == "" || p.senders[provider] == nil:
		return nil, models.Errorf(models.EINVALID, "No provider is configured to send on %s.", ch)
	}
	return &models.Broadcast{Name: name, Status: models.BroadcastDraft, Channel: ch, Provider: provider,
		Message: req.Message, Audience: req.Audience, SendAt: req.SendAt}, nil
}

// ConfirmBroadcast starts a draft: now, or at its SendAt (scheduled).
// Audited (broadcast.confirm). ECONFLICT when it is not a draft.
func (p *Pipeline) ConfirmBroadcast(ctx context.Context, actor models.Actor, id int64) error {
	return p.changeBroadcast(ctx, actor, id, "broadcast.confirm", func(tx *gorm.DB, b *models.Broadcast) error {
		if b.Status != models.BroadcastDraft {
			return models.Errorf(models.ECONFLICT, "Only a draft can be confirmed; this broadcast is %s.", b.Status)
		}
		return p.runBroadcast(ctx, tx, b)
	})
}

// runBroadcast sets b running (scheduled, while its SendAt is ahead) and
// queues its driver for then, inside tx.
func (p *Pipeline) runBroadcast(ctx context.Context, tx *gorm.DB, b *models.Broadcast) error {
	status, at := models.BroadcastRunning, time.Time{}
	if b.SendAt != nil && b.SendAt.After(time.Now()) {
		status, at = models.BroadcastScheduled, *b.SendAt
	}
	if err := p.bcast.store.SetStatus(ctx, tx, b.ID, status); err != nil {
		return err
	}
	return p.enqueue(ctx, tx, BroadcastArgs{BroadcastID: b.ID}, &river.InsertOpts{ScheduledAt: at})
}

// PauseBroadcast stops a running or scheduled broadcast: nothing more is
// queued, and what is queued but not begun is taken back (a message being
// sent finishes; a flow broadcast's started conversations go on).
// Audited (broadcast.pause). ECONFLICT otherwise.
func (p *Pipeline) PauseBroadcast(ctx context.Context, actor models.Actor, id int64) error {
	return p.changeBroadcast(ctx, actor, id, "broadcast.pause", func(tx *gorm.DB, b *models.Broadcast) error {
		if b.Status != models.BroadcastRunning && b.Status != models.BroadcastScheduled {
			return models.Errorf(models.ECONFLICT, "Only a running or scheduled broadcast can be paused; this one is %s.", b.Status)
		}
		if err := p.unqueue(ctx, tx, b); err != nil {
			return err
		}
		return p.bcast.store.SetStatus(ctx, tx, id, models.BroadcastPaused)
	})
}

// ResumeBroadcast goes on with a paused broadcast where it stopped.
// Audited (broadcast.resume). ECONFLICT when it is not paused.
func (p *Pipeline) ResumeBroadcast(ctx context.Context, actor models.Actor, id int64) error {
	return p.changeBroadcast(ctx, actor, id, "broadcast.resume", func(tx *gorm.DB, b *models.Broadcast) error {
		if b.Status != models.BroadcastPaused {
			return models.Errorf(models.ECONFLICT, "Only a paused broadcast can be resumed; this one is %s.", b.Status)
		}
		return p.runBroadcast(ctx, tx, b)
	})
}

// CancelBroadcast ends a broadcast for good: whom it has not messaged yet
// it never will (messages queued but not begun are taken back); what was
// sent stays sent. Audited (broadcast.cancel). ECONFLICT when it is over.
func (p *Pipeline) CancelBroadcast(ctx context.Context, actor models.Actor, id int64) error {
	return p.changeBroadcast(ctx, actor, id, "broadcast.cancel", func(tx *gorm.DB, b *models.Broadcast) error {
		if b.Status == models.BroadcastCancelled || b.Status == models.BroadcastDone {
			return models.Errorf(models.ECONFLICT, "This broadcast is %s already.", b.Status)
		}
		if err := p.unqueue(ctx, tx, b); err != nil {
			return err
		}
		if err := p.bcast.store.Finish(ctx, tx, id); err != nil {
			return err
		}
		return p.bcast.store.SetStatus(ctx, tx, id, models.BroadcastCancelled)
	})
}

// unqueue takes back a template broadcast's messages queued and not
// begun. A flow broadcast's are left to go: each opens a conversation
// already started (its state saved, its reminders planned), which taking
// the message back would leave silent.
func (p *Pipeline) unqueue(ctx context.Context, tx *gorm.DB, b *models.Broadcast) error {
	if b.Message.FlowID != "" {
		return nil
	}
	_, err := p.bcast.store.Unqueue(ctx, tx, b.ID)
	return err
}

// changeBroadcast runs change with the broadcast locked (the driver waits
// for it, and sees the new status), and audits it as action.
func (p *Pipeline) changeBroadcast(ctx context.Context, actor models.Actor, id int64, action string, change func(tx *gorm.DB, b *models.Broadcast) error) error {
	if err := mayBroadcast(actor); err != nil {
		return err
	}
	return p.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		b, err := p.bcast.store.Get(ctx, tx, id, "update")
		if err != nil {
			return err
		}
		if err := change(tx, b); err != nil {
			return err
		}
		return p.audit.Append(ctx, tx, broadcastEvent(actor, action, id, map[string]any{"from": b.Status}))
	})
}

// Broadcast returns a broadcast and its progress. Its audience and
// message are decrypted (a filter's values, a template's parameters): the
// read is audited (broadcast.read).
func (p *Pipeline) Broadcast(ctx context.Context, actor models.Actor, id int64) (*models.Broadcast, *models.BroadcastProgress, error) {
	if err := mayBroadcast(actor); err != nil {
		return nil, nil, err
	}
	b, err := p.bcast.store.Get(ctx, nil, id, "")
	if err != nil {
		return nil, nil, err
	}
	if err := p.audit.Append(ctx, nil, broadcastEvent(actor, "broadcast.read", id, nil)); err != nil {
		return nil, nil, err
	}
	progress, err := p.bcast.store.Progress(ctx, id)
	return b, progress, err
}

// BroadcastProgress returns a broadcast's status and progress, decrypting
// nothing: what a page following it asks every few seconds.
func (p *Pipeline) BroadcastProgress(ctx context.Context, actor models.Actor, id int64) (models.BroadcastStatus, *models.BroadcastProgress, error) {
	if err := mayBroadcast(actor); err != nil {
		return "", nil, err
	}
	status, err := p.bcast.store.Status(ctx, id)
	if err != nil {
		return "", nil, err
	}
	progress, err := p.bcast.store.Progress(ctx, id)
	return status, progress, err
}

// Broadcasts returns the latest broadcasts, newest first, decrypted: the
// read is audited (broadcasts.list).
func (p *Pipeline) Broadcasts(ctx context.Context, actor models.Actor, limit int) ([]*models.Broadcast, error) {
	if err := mayBroadcast(actor); err != nil {
		return nil, err
	}
	list, err := p.bcast.store.List(ctx, limit)
	if err != nil {
		return nil, err
	}
	return list, p.audit.Append(ctx, nil, &models.AuditEvent{ActorID: actor.ID, ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP,
		Action: "broadcasts.list", SubjectType: "broadcasts", Details: map[string]any{"count": len(list)}})
}

// broadcastEvent is the audit entry of a broadcast action: counts and
// names, never a number or a variable's value.
func broadcastEvent(actor models.Actor, action string, id int64, details map[string]any) *models.AuditEvent {
	return &models.AuditEvent{ActorID: actor.ID, ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP,
		Action: action, SubjectType: "broadcast", SubjectID: strconv.FormatInt(id, 10), Details: details}
}
