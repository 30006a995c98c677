package pipeline

import (
	"context"
	"strconv"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/models"
)

// Override applies a staff command to a conversation: under the contact's
// lock, like any message, so a message and a command racing each other
// take turns and both are recorded. The audit log keeps who did what, with
// the state before and after. EFORBIDDEN when the actor's role may not
// give the command, or the conversation is a hand-off another member holds
// and the actor may not take it over (mayOverride).
func (p *Pipeline) Override(ctx context.Context, actor models.Actor, conversationID int64, o engine.Override) error {
	flows, ok := p.responder.(*Flows)
	if !ok {
		return models.Errorf(models.ENOTIMPLEMENTED, "Conversations are not run by flows on this instance.")
	}
	if err := mayCommand(actor, o.Kind); err != nil {
		return err
	}
	var contactID int64
	if err := p.db.Gorm.WithContext(ctx).Raw("SELECT contact_id FROM conversations WHERE id = ?", conversationID).Scan(&contactID).Error; err != nil {
		return err
	}
	if contactID == 0 {
		return models.Errorf(models.ENOTFOUND, "Conversation not found.")
	}
	return p.underContact(ctx, contactID, func(tx *gorm.DB, contact *models.Contact) error {
		from, err := p.mayOverride(ctx, tx, actor, conversationID)
		if err != nil {
			return err
		}
		conv, err := flows.conversations.Get(ctx, tx, conversationID)
		if err != nil {
			return err
		}
		out, before, after, err := flows.Override(ctx, tx, contact, conv, o)
		if err != nil {
			return err
		}
		// A hand-off stays its holder's while it waits for a person (paused
		// too); once the bot or the end has it, nobody holds it. Whoever
		// pauses the bot on a conversation nobody holds takes it: with the
		// bot stopped, somebody must answer the person.
		switch {
		case after.Status != engine.StatusHandoff && after.Status != engine.StatusPaused:
			err = p.convs.Release(ctx, tx, conversationID)
		case after.Status == engine.StatusPaused && actor.ID != "":
			err = p.convs.Hold(ctx, tx, conversationID, actor.ID)
		}
		if err != nil {
			return err
		}
		provider, err := p.lastProvider(ctx, tx, contact.ID)
		if err != nil {
			return err
		}
		if err := p.apply(ctx, tx, contact, provider, out); err != nil {
			return err
		}
		// Messages held back while the conversation waited on the AI layer
		// are taken up again.
		if before.Pending != nil {
			if err := p.enqueue(ctx, tx, ProcessArgs{ContactID: contact.ID}, nil); err != nil {
				return err
			}
		}
		details := map[string]any{"override": o, "before": summary(before), "after": summary(after)}
		if from != "" {
			details["from"] = from // a staff id, nothing personal: a take-over, as Take records one
		}
		return p.audit.Append(ctx, tx, &models.AuditEvent{
			ActorID: actor.ID, ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP, Action: "conversation.override", SubjectType: "conversation", SubjectID: strconv.FormatInt(conversationID, 10),
			Details: details,
		})
	})
}

// MayCommand says, writing nothing, whether the actor may give a command
// of kind to the conversation now: nil, or the EFORBIDDEN that Override
// would refuse with. The console asks it to offer pause and resume only to
// those who may.
func (p *Pipeline) MayCommand(ctx context.Context, actor models.Actor, conversationID int64, kind engine.OverrideKind) error {
	if err := mayCommand(actor, kind); err != nil {
		return err
	}
	_, err := p.mayOverride(ctx, nil, actor, conversationID)
	return err
}

// mayCommand says whether the actor's role may give a command of kind:
// pausing and resuming the bot is hand-off work (agents and up), the
// commands that move the conversation are overrides (supervisors and up).
func mayCommand(actor models.Actor, kind engine.OverrideKind) error {
	if kind == engine.OverridePause || kind == engine.OverrideResume {
		if !auth.Can(actor.Role, auth.HandoffWork) {
			return models.Errorf(models.EFORBIDDEN, "Your role (%s) may not pause or resume the bot.", actor.Role)
		}
		return nil
	}
	if !auth.Can(actor.Role, auth.Override) {
		return models.Errorf(models.EFORBIDDEN, "Your role (%s) may pause and resume the bot, not move the conversation.", actor.Role)
	}
	return nil
}

// mayOverride says whether the actor may command the conversation now: a
// hand-off another member holds is theirs (paused too, until the bot or
// the end has it: Override releases it then), and only those who may take
// it over command it, or an agent's "resume" (which ends the hand-off)
// would take it from its holder by another route than Take. Called with the
// contact locked in tx; Holder locks the row too, so a take waits for the
// command and the answer stands until it is applied (tx nil: a look,
// locking nothing). It returns the member the command is taken over from
// ("": nobody else holds it).
func (p *Pipeline) mayOverride(ctx context.Context, tx *gorm.DB, actor models.Actor, conversationID int64) (from string, err error) {
	status, holder, err := p.convs.Holder(ctx, tx, conversationID)
	if err != nil {
		return "", err
	}
	if (status != models.ConversationHandoff && status != models.ConversationPaused) || holder == "" || holder == actor.ID {
		return "", nil
	}
	if !auth.Can(actor.Role, auth.TakeOver) {
		return "", models.Errorf(models.EFORBIDDEN, "Another member holds this hand-off; they or a supervisor pause or resume it.")
	}
	return holder, nil
}

func summary(st engine.State) map[string]any {
	return map[string]any{"node": st.Node, "status": st.Status, "vars": st.Vars}
}

// lastProvider is the platform the contact last wrote through: replies
// caused by staff go out the same way.
func (p *Pipeline) lastProvider(ctx context.Context, tx *gorm.DB, contactID int64) (string, error) {
	var provider string
	err := tx.WithContext(ctx).Raw(`SELECT provider FROM messages WHERE contact_id = ? AND direction = 'in' ORDER BY seq DESC LIMIT 1`, contactID).Scan(&provider).Error
	return provider, err
}

// FlowOf returns the flow version a conversation is pinned to (its nodes
// are where staff may move it), and the ids of the flows staff may start.
func (p *Pipeline) FlowOf(ctx context.Context, conv *models.Conversation) (*engine.Flow, []string, error) {
	flows, ok := p.responder.(*Flows)
	if !ok {
		return nil, nil, models.Errorf(models.ENOTIMPLEMENTED, "Conversations are not run by flows on this instance.")
	}
	flow, err := flows.flowFor(ctx, nil, conv)
	if err != nil {
		return nil, nil, err
	}
	var ids []string
	for _, f := range flows.lib.Flows() {
		ids = append(ids, f.ID)
	}
	return flow, ids, nil
}

// Flows returns the flows this instance runs, current versions; none when
// conversations are not run by flows.
func (p *Pipeline) Flows() []*engine.Flow {
	if flows, ok := p.responder.(*Flows); ok {
		return flows.lib.Flows()
	}
	return nil
}
