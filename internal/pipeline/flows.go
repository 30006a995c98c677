package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Flows is the Responder that runs conversations through the engine. Each
// conversation is pinned to the flow version it started on; a version
// whose file has since changed is read back from the database.
type Flows struct {
	lib           *engine.Library
	conversations *store.ConversationStore
	mu            sync.Mutex // guards lib's pinned versions
	now           func() time.Time
	region        string // phone answers without a country code are from here
	// Zone is the deployment's time zone (PARLEY_TIME_ZONE), where
	// schedule nodes read times when their flow names none (nil: UTC).
	Zone *time.Location
	// Idle is how long a conversation may wait for the contact before a
	// new message starts afresh instead (three days unless set).
	Idle time.Duration
	// Window is WhatsApp's customer-service window: past it a flow's
	// sends go as the templates its nodes name (24 hours).
	Window    time.Duration
	messages  *store.MessageStore
	templates *store.TemplateStore
	contacts  *store.ContactStore
}

// DefaultIdle is how long an unanswered conversation stays open.
const DefaultIdle = 72 * time.Hour

// NewFlows returns the engine responder over the flows of lib.
func NewFlows(lib *engine.Library, db *store.DB, c store.Crypto) *Flows {
	return &Flows{lib: lib, conversations: store.NewConversationStore(db, c), now: time.Now, region: c.Phones.Region(), Idle: DefaultIdle,
		Window: 24 * time.Hour, messages: store.NewMessageStore(db, c), templates: store.NewTemplateStore(db),
		contacts: store.NewContactStore(db, c)}
}

// Respond implements Responder.
func (f *Flows) Respond(ctx context.Context, tx *gorm.DB, contact *models.Contact, in *models.Message) (*Outcome, error) {
	return f.respond(ctx, tx, f.store(), contact, in)
}

func (f *Flows) respond(ctx context.Context, tx *gorm.DB, k keeper, contact *models.Contact, in *models.Message) (*Outcome, error) {
	conv, err := k.open(ctx, tx, contact.ID)
	if err != nil {
		return nil, err
	}
	if conv != nil && conv.Status == models.ConversationActive && f.now().Sub(conv.UpdatedAt) > f.Idle {
		// Expired while waiting: close it; this message starts afresh.
		conv.Status, conv.Error, conv.Pending = models.ConversationEnded, "expired after waiting "+f.Idle.String(), nil
		conv.WaitSeq++
		if err := k.save(ctx, tx, conv); err != nil {
			return nil, err
		}
		conv = nil
	}
	return f.step(ctx, tx, k, contact, conv, inputOf(in, f.now()), via{provider: in.Provider, wrote: in.CreatedAt})
}

// inputOf is an inbound message as the engine reads it: its text, or
// what its voice note said; whether it came with an attachment, its
// first photo, and a voice note that could not be heard.
func inputOf(in *models.Message, now time.Time) engine.Input {
	input := engine.Input{Kind: engine.InputMessage, Text: in.Body, Now: now}
	if h := in.Heard; h != nil {
		input.Media, input.ImageID, input.Unheard = h.Media, h.ImageID, h.Unheard
		if strings.TrimSpace(input.Text) == "" {
			input.Text = h.Transcript
		}
		input.Language, _, _ = strings.Cut(strings.ToLower(h.Language), "-") // hi-IN: hi
	}
	return input
}

// PendingAI implements Thinker.
func (f *Flows) PendingAI(ctx context.Context, a AIArgs) (*engine.AIRequest, error) {
	conv, err := f.conversations.Read(ctx, a.ConversationID)
	if err != nil {
		if models.ErrorCode(err) == models.ENOTFOUND {
			return nil, nil
		}
		return nil, err
	}
	if conv.WaitSeq != a.Seq || conv.Pending == nil {
		return nil, nil
	}
	return pendingOf(conv)
}

// AIAnswered implements Thinker.
func (f *Flows) AIAnswered(ctx context.Context, tx *gorm.DB, contact *models.Contact, a AIArgs, res engine.AIResult) (*Outcome, error) {
	conv, err := f.conversations.Get(ctx, tx, a.ConversationID)
	if err != nil {
		if models.ErrorCode(err) == models.ENOTFOUND {
			return nil, nil
		}
		return nil, err
	}
	if conv.WaitSeq != a.Seq || conv.Pending == nil {
		return nil, nil // answered already, or staff moved the conversation on
	}
	return f.step(ctx, tx, f.store(), contact, conv, engine.Input{Kind: engine.InputAI, AI: &res, Now: f.now()}, via{provider: a.Provider})
}

func pendingOf(conv *models.Conversation) (*engine.AIRequest, error) {
	if conv.Pending == nil {
		return nil, nil
	}
	var req engine.AIRequest
	if err := json.Unmarshal(conv.Pending, &req); err != nil {
		return nil, models.Wrap(err, models.EINTERNAL, "A conversation's pending AI request is unreadable.")
	}
	return &req, nil
}

// Stale implements Waiter: a conversation's wait_seq only grows, so a wait
// of an earlier one, or of a conversation erased, stays stale.
func (f *Flows) Stale(ctx context.Context, w WaitArgs) (bool, error) {
	seq, err := f.conversations.WaitSeq(ctx, w.ConversationID)
	if models.ErrorCode(err) == models.ENOTFOUND {
		return true, nil
	}
	return err == nil && seq != w.Seq, err
}

// Timeout implements Waiter.
func (f *Flows) Timeout(ctx context.Context, tx *gorm.DB, contact *models.Contact, w WaitArgs) (*Outcome, error) {
	conv, err := f.conversations.Get(ctx, tx, w.ConversationID)
	if err != nil {
		if models.ErrorCode(err) == models.ENOTFOUND {
			return nil, nil
		}
		return nil, err
	}
	if conv.WaitSeq != w.Seq || conv.Status != models.ConversationActive {
		return nil, nil // the conversation moved on since this wait was set
	}
	if engine.InputKind(w.Input) == engine.InputRemind {
		if conv.RemindedSeq == w.Seq+1 {
			return nil, nil // reminded already: this job ran before
		}
		conv.RemindedSeq = w.Seq + 1 // saved with the step
	}
	return f.step(ctx, tx, f.store(), contact, conv, engine.Input{Kind: engine.InputKind(w.Input), Now: f.now()}, via{provider: w.Provider})
}

func (f *Flows) step(ctx context.Context, tx *gorm.DB, k keeper, contact *models.Contact, conv *models.Conversation, in engine.Input, v via) (*Outcome, error) {
	flow, err := f.flowFor(ctx, tx, conv)
	if err != nil {
		return nil, err
	}
	st := engine.State{OptedOut: contact.OptedOut, Language: contact.Language}
	if conv != nil {
		if st, err = stateOf(conv, contact); err != nil {
			return nil, err
		}
	}
	in.Region, in.Zone = f.region, f.Zone
	next, actions, err := engine.Step(flow, st, in)
	if errors.Is(err, engine.ErrAwaitingAI) {
		return &Outcome{Defer: true}, nil // taken up once the AI layer has answered
	}
	if err != nil {
		return nil, err
	}
	return f.save(ctx, tx, k, contact, conv, flow, st, next, actions, v)
}

// stateOf is the engine's view of a stored conversation.
func stateOf(conv *models.Conversation, contact *models.Contact) (engine.State, error) {
	pending, err := pendingOf(conv)
	return engine.State{
		FlowID: conv.FlowID, FlowVersion: conv.FlowVersion, Node: conv.Node, Status: engine.Status(conv.Status),
		Retries: conv.Retries, Language: conv.Language, Vars: conv.Variables, OptedOut: contact.OptedOut, Pending: pending, Error: conv.Error,
	}, err
}

// Override applies a staff command to a conversation (locked in tx by the
// caller) and returns the outcome and the states before and after.
func (f *Flows) Override(ctx context.Context, tx *gorm.DB, contact *models.Contact, conv *models.Conversation, o engine.Override) (out *Outcome, before, after engine.State, err error) {
	flow, err := f.flowFor(ctx, tx, conv)
	if err != nil {
		return nil, before, after, err
	}
	if o.Kind == engine.OverrideStartFlow {
		if flow = f.lib.Current(o.Flow); flow == nil {
			return nil, before, after, models.Errorf(models.EINVALID, "There is no flow %q.", o.Flow)
		}
		if err := f.conversations.PinFlow(ctx, tx, flow.ID, flow.Version, flow.File, flow.Source); err != nil {
			return nil, before, after, err
		}
	}
	if before, err = stateOf(conv, contact); err != nil {
		return nil, before, after, err
	}
	o.Now, o.Region = f.now(), f.region
	after, actions, err := engine.ApplyOverride(flow, before, o)
	if err != nil {
		return nil, before, after, err
	}
	// A staff command's replies are checked against the window by the
	// send job, which refuses them with its reason (no provider here).
	out, err = f.save(ctx, tx, f.store(), contact, conv, flow, before, after, actions, via{})
	return out, before, after, err
}

// save keeps the conversation's new state and turns the engine's actions
// into an outcome for the pipeline.
func (f *Flows) save(ctx context.Context, tx *gorm.DB, k keeper, contact *models.Contact, conv *models.Conversation, flow *engine.Flow, st, next engine.State, actions []engine.Action, v via) (*Outcome, error) {
	out := &Outcome{}
	var sends []engine.Action
	for _, a := range actions {
		if a.Kind == engine.ActionSend {
			sends = append(sends, a)
		}
	}
	w, err := f.window(ctx, tx, contact, v, next.Node, sends)
	if err != nil {
		return nil, err
	}
	out.Replies, out.ReplyTemplates = w.texts, w.templates
	if w.handoff != "" {
		// Nothing this step would send can go: a person takes over, told
		// why, and the waits and requests the step set are dropped.
		next.Status, next.Error, next.Pending = engine.StatusHandoff, w.handoff, nil
		actions = slices.DeleteFunc(slices.Clone(actions), func(a engine.Action) bool {
			return a.Kind == engine.ActionScheduleWait || a.Kind == engine.ActionAI || a.Kind == engine.ActionEnd
		})
	}
	var drop bool
	out.Schedules, drop = schedulesOf(actions)
	out.DropSchedules = drop && conv != nil // a new conversation planned nothing before
	moved := next.Node != st.Node || next.Status != st.Status || (next.Pending == nil) != (st.Pending == nil)
	for _, a := range actions {
		switch a.Kind {
		case engine.ActionOptOut:
			out.OptOut = true
		case engine.ActionOptIn:
			out.OptIn = true
		case engine.ActionCancelWaits, engine.ActionScheduleWait:
			moved = true
		}
	}
	if next.Node == "" {
		return out, nil // no conversation yet (STOP before any), nothing to keep
	}
	if conv == nil { // a new conversation, pinned to this version
		if err := f.conversations.PinFlow(ctx, tx, flow.ID, flow.Version, flow.File, flow.Source); err != nil {
			return nil, err
		}
		conv = &models.Conversation{ContactID: contact.ID}
	}
	if next.FlowID != "" {
		conv.FlowID, conv.FlowVersion = next.FlowID, next.FlowVersion
	}
	conv.Node, conv.Retries, conv.Language, conv.Error, conv.Variables = next.Node, next.Retries, next.Language, next.Error, next.Vars
	conv.Status = models.ConversationStatus(next.Status)
	if next.Status != st.Status {
		out.Became = conv.Status
	}
	conv.Visit(next.Entered) // the path, kept by the same write as the state
	if next.Status == engine.StatusHandoff && st.Status != engine.StatusHandoff {
		now := f.now().UTC()
		conv.HandoffAt = &now
	}
	conv.Pending = nil
	if next.Pending != nil {
		pending, err := json.Marshal(next.Pending)
		if err != nil {
			return nil, models.Wrap(err, models.EINTERNAL, "The AI request cannot be stored.")
		}
		conv.Pending = pending
	}
	if moved {
		conv.WaitSeq++
	}
	if err := f.keepName(ctx, tx, contact, st, next); err != nil {
		return nil, err
	}
	if err := k.save(ctx, tx, conv); err != nil {
		return nil, err
	}
	id := conv.ID
	out.ConversationID = &id
	for _, a := range actions {
		if a.Kind == engine.ActionScheduleWait {
			out.Waits = append(out.Waits, WaitArgs{ContactID: contact.ID, ConversationID: conv.ID, Input: string(a.Input), Seq: conv.WaitSeq})
			out.WaitAfter = append(out.WaitAfter, a.After)
		}
		if a.Kind == engine.ActionAI {
			out.AI = &AIArgs{ContactID: contact.ID, ConversationID: conv.ID, Seq: conv.WaitSeq}
		}
	}
	return out, nil
}

// ErrFlowUnreadable is in the chain of the error of a conversation whose
// pinned flow version no longer parses: processing hands it to a person,
// and the console shows it without the bot's controls.
var ErrFlowUnreadable = errors.New("a pinned flow version no longer parses")

// nameVar is the variable a flow keeps the person's name in.
const nameVar = "name"

// keepName makes the name the person gave the flow (its name variable,
// newly set or changed) the contact's, sealed as the platform's profile
// name is: the console then shows it instead of their number. A statement
// more only on the turn the name is given.
func (f *Flows) keepName(ctx context.Context, tx *gorm.DB, contact *models.Contact, st, next engine.State) error {
	name := strings.TrimSpace(next.Vars[nameVar])
	if name == "" || name == strings.TrimSpace(st.Vars[nameVar]) || name == contact.Name {
		return nil
	}
	if err := f.contacts.SetName(ctx, tx, contact.ID, name); err != nil {
		return err
	}
	contact.Name = name
	return nil
}

// flowFor returns the flow a conversation is pinned to, or the default
// flow for a new one.
func (f *Flows) flowFor(ctx context.Context, tx *gorm.DB, conv *models.Conversation) (*engine.Flow, error) {
	if conv == nil {
		return f.lib.Default(), nil
	}
	f.mu.Lock()
	flow := f.lib.Version(conv.FlowID, conv.FlowVersion)
	f.mu.Unlock()
	if flow != nil {
		return flow, nil
	}
	file, source, err := f.conversations.FlowSource(ctx, tx, conv.FlowID, conv.FlowVersion)
	if err != nil {
		if models.ErrorCode(err) == models.ENOTFOUND {
			if cur := f.lib.Current(conv.FlowID); cur != nil {
				return cur, nil
			}
			return f.lib.Default(), nil
		}
		return nil, err
	}
	flow, err = engine.Parse(file, source)
	if err != nil {
		return nil, models.Wrap(fmt.Errorf("%w: %w", ErrFlowUnreadable, err), models.EINTERNAL, "A pinned flow version no longer parses.")
	}
	f.mu.Lock()
	f.lib.Pin(flow)
	f.mu.Unlock()
	return flow, nil
}
