package pipeline

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/models"
)

// StartRequest is a conversation Parley starts: a flow, the variables it
// starts with, and how to open it when the contact's WhatsApp window is
// closed.
type StartRequest struct {
	// Flow is the id of the flow to start (its current version).
	Flow string `json:"flow"`
	// Variables are the conversation's first variables (appointment_at,
	// doctor, …), kept encrypted like its answers.
	Variables map[string]string `json:"variables,omitempty"`
	// Template opens the conversation when WhatsApp's 24-hour window is
	// closed (always, for a contact who never wrote): the flow's opening
	// words go as this approved template. Without one such a start is
	// refused. Unused inside the window and on SMS.
	Template *models.TemplateRef `json:"template,omitempty"`
	// Replace ends a conversation the bot is running with the contact and
	// starts this one; without it such a start is refused.
	Replace bool `json:"replace,omitempty"`
	// Provider is the platform to write through (twilio, meta, siren);
	// "" is the one the contact last wrote through, else the first
	// configured for the channel.
	Provider string `json:"provider,omitempty"`
}

// StartResult is what a start did: ids only, so it can be kept and
// answered again to a retried request.
type StartResult struct {
	ContactID      int64 `json:"contact_id"`
	ConversationID int64 `json:"conversation_id"`
	// Messages are the ids of the messages queued, in order.
	Messages []int64 `json:"message_ids"`
	// Templated says the opening went as the request's template (the
	// window was closed).
	Templated bool `json:"templated"`
	// Replaced is the conversation this one ended, when it replaced one.
	Replaced int64 `json:"replaced_conversation_id,omitempty"`
	// NewContact says the contact was created for this start.
	NewContact bool `json:"new_contact"`
}

// Reasons a start is refused, as a person can act on them (ECONFLICT).
const (
	startOptedOut = "The contact opted out (STOP); Parley does not write to them until they send START."
	startHandoff  = "A person holds this contact's conversation (a hand-off or a paused bot); it is not taken over by a started one. Finish or resume it first."
	startRunning  = "The contact is in a running conversation (flow %s); send replace: true to end it and start this one."
	startWindow   = "More than 24 hours since the contact last wrote on WhatsApp (or they never have): only an approved template can open the conversation. Give an opening template."
)

// mayStart says whether the actor may start conversations: it is an
// override (DESIGN.md: "start a flow"), so supervisors and admins may.
// Agents may not: writing first to people, as the clinic, is outreach
// (templates the business pays for, consent), not hand-off work.
func mayStart(actor models.Actor) error {
	if !auth.Can(actor.Role, auth.Override) {
		return models.Errorf(models.EFORBIDDEN, "Your role (%s) may not start conversations; supervisors and admins may.", actor.Role)
	}
	return nil
}

// StartIn starts flow req.Flow for contact inside tx, whose caller holds
// the contact's row lock (underContact; a broadcast takes it per
// recipient in its own transaction): the conversation is created pinned
// to the flow's current version with req.Variables, its opening messages
// stored and their send queued in tx, and the start audited as actor's
// ("conversation.start": the flow, the contact and conversation by id,
// the variables' names; nothing personal). Nothing is written when it
// refuses. It refuses (ECONFLICT, the reason in the message) a contact who
// opted out, one whose conversation a person holds (hand-off, paused), one
// in a running conversation unless req.Replace, and a WhatsApp contact
// outside the 24-hour window when req.Template is nil; EINVALID for an
// unknown flow or provider, or variables the flow cannot keep. It checks
// no permission (StartConversation does, for staff and the API): a caller
// checks its own.
func (p *Pipeline) StartIn(ctx context.Context, tx *gorm.DB, actor models.Actor, contact *models.Contact, req StartRequest) (*StartResult, error) {
	var jobs runJobs
	res, err := p.startIn(ctx, tx, actor, contact, req, nil, &jobs)
	if err != nil {
		return nil, err
	}
	return res, p.flush(ctx, tx, &jobs)
}

// startIn is StartIn with the start's messages and jobs added to jobs, for
// the caller to write (flush), reading templates through reg (nil: the
// provider's registry afresh; a broadcast's round passes one for all).
func (p *Pipeline) startIn(ctx context.Context, tx *gorm.DB, actor models.Actor, contact *models.Contact, req StartRequest, reg *registryCache, jobs *runJobs) (*StartResult, error) {
	flows, ok := p.responder.(*Flows)
	if !ok {
		return nil, models.Errorf(models.ENOTIMPLEMENTED, "Conversations are not run by flows on this instance.")
	}
	flow := flows.lib.Current(req.Flow)
	if flow == nil {
		return nil, models.Errorf(models.EINVALID, "There is no flow %q.", req.Flow)
	}
	if contact.OptedOut {
		return nil, models.Errorf(models.ECONFLICT, startOptedOut)
	}
	res := &StartResult{ContactID: contact.ID}
	conv, err := p.convs.Open(ctx, tx, contact.ID)
	if err != nil {
		return nil, err
	}
	if conv != nil {
		switch {
		case conv.Status == models.ConversationHandoff || conv.Status == models.ConversationPaused:
			return nil, models.Errorf(models.ECONFLICT, startHandoff)
		case !req.Replace:
			return nil, models.Errorf(models.ECONFLICT, startRunning, conv.FlowID)
		}
	}
	provider, err := p.startProvider(ctx, tx, contact, req.Provider)
	if err != nil {
		return nil, err
	}
	code, _, err := p.refusal(ctx, tx, contact, contact.Channel, false)
	if err != nil {
		return nil, err
	}
	templated := code == codeWindow
	if templated && req.Template == nil {
		return nil, models.Errorf(models.ECONFLICT, startWindow)
	}
	var opening string // the template's text, from the registry
	if templated {
		if err := checkTemplate(req.Template); err != nil {
			return nil, err
		}
		if reg == nil || reg.provider != provider {
			reg = p.registry(provider)
		}
		if opening, err = templateText(ctx, reg, req.Template); err != nil {
			return nil, err
		}
	}
	next, actions, err := engine.Begin(flow, contact.Language, req.Variables, time.Now(), flows.Zone)
	if err != nil {
		return nil, err
	}
	if conv != nil { // replaced: it ends, and its waits go stale with it
		conv.Status, conv.Error, conv.Pending = models.ConversationEnded, "replaced by a conversation started by staff", nil
		conv.WaitSeq++
		if err := flows.conversations.Save(ctx, tx, conv); err != nil {
			return nil, err
		}
		if err := p.scheduled.CancelConversation(ctx, tx, conv.ID, scheduledReplaced); err != nil {
			return nil, err
		}
		res.Replaced = conv.ID
	}
	out, err := flows.save(ctx, tx, flows.store(), contact, nil, flow, engine.State{Language: contact.Language}, next, actions, via{}) // the window: decided above, by the start
	if err != nil {
		return nil, err
	}
	if templated {
		// Outside the window WhatsApp takes one template and nothing
		// else until the person answers: the template stands for the
		// flow's opening words, kept as its text.
		out.Template, res.Templated = req.Template, true
		out.Replies = []string{openingText(opening, out.Replies, req.Template)}
	}
	if err := p.applyTo(ctx, tx, contact, provider, out, jobs); err != nil {
		return nil, err
	}
	res.ConversationID, res.Messages = *out.ConversationID, append([]int64{}, out.Queued...)
	details := map[string]any{"flow": flow.ID, "flow_version": flow.Version, "conversation": res.ConversationID,
		"variables": varNames(req.Variables), "provider": provider, "messages": len(res.Messages)}
	if res.Templated {
		details["template"] = req.Template.Name // its parameters are personal
	}
	if res.Replaced != 0 {
		details["replaced"] = res.Replaced
	}
	err = p.audit.Append(ctx, tx, &models.AuditEvent{ActorID: actor.ID, ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP,
		Action: "conversation.start", SubjectType: "contact", SubjectID: strconv.FormatInt(contact.ID, 10), Details: details})
	return res, err
}

// startProvider is the platform a started conversation writes through:
// the one asked for, the one the contact last wrote through, or the
// first configured that serves the contact's channel (Meta: WhatsApp
// only), the platforms before any other.
func (p *Pipeline) startProvider(ctx context.Context, tx *gorm.DB, contact *models.Contact, asked string) (string, error) {
	serves := func(pr string) bool {
		return p.senders[pr] != nil && (pr != channel.Meta || contact.Channel == models.ChannelWhatsApp)
	}
	if asked != "" {
		if !serves(asked) {
			return "", models.Errorf(models.EINVALID, "Provider %q is not configured for %s here.", asked, contact.Channel)
		}
		return asked, nil
	}
	last, err := p.lastProvider(ctx, tx, contact.ID)
	if err != nil || (last != "" && serves(last)) {
		return last, err
	}
	configured := slices.Sorted(maps.Keys(p.senders)) // after the platforms, any other (the simulator)
	for _, pr := range append([]string{channel.Twilio, channel.Meta, channel.Siren}, configured...) {
		if serves(pr) {
			return pr, nil
		}
	}
	return "", models.Errorf(models.ENOTIMPLEMENTED, "No provider is configured to send %s messages.", contact.Channel)
}

// checkTemplate refuses a template reference that names nothing.
func checkTemplate(t *models.TemplateRef) error {
	if strings.TrimSpace(t.Name) == "" || strings.TrimSpace(t.Language) == "" {
		return models.Errorf(models.EINVALID, "An opening template needs its name and language.")
	}
	return nil
}

// templateText is ref's text as the person reads it, filled from reg's
// template: EINVALID, with the platform's kind of reason, when the
// registry lacks it, it is not approved or its parameters are not the
// template's. "" when the registry does not hold reg's provider's
// templates (Pipeline.registry).
func templateText(ctx context.Context, reg *registryCache, ref *models.TemplateRef) (string, error) {
	if reg.reg == nil {
		return "", nil
	}
	provider := reg.provider
	t, found, se := channel.CheckTemplate(ctx, reg, provider, ref)
	switch {
	case se != nil && se.Retryable:
		return "", se
	case se != nil:
		return "", models.Errorf(models.EINVALID, "%s", se.Reason)
	case !found:
		return "", models.Errorf(models.EINVALID, "%s", channel.MissingTemplate(provider, ref).Reason)
	}
	return t.Render(ref.Params)
}

// openingText is the text kept for an opening sent as a template: the
// registry's text when known, else the flow's opening words, or the
// template's name when the flow says nothing before it waits.
func openingText(registry string, replies []string, t *models.TemplateRef) string {
	if registry != "" {
		return registry
	}
	if len(replies) == 0 {
		return "(template " + t.Name + ")"
	}
	return strings.Join(replies, "\n\n")
}

// varNames are the names of vars, sorted: what the audit log keeps of
// them (their values are personal).
func varNames(vars map[string]string) []string {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	return slices.Clip(names)
}
