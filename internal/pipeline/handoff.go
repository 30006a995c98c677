package pipeline

import (
	"context"
	"strconv"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// Take gives a handed-off conversation to the actor. Nobody's, or theirs
// already: any member who works hand-offs takes it. Held by another
// member: a take-over, which only a supervisor or an admin may do
// (EFORBIDDEN otherwise), audited as one with the member it was taken
// from. ENOTFOUND when the conversation is not waiting for a person.
func (p *Pipeline) Take(ctx context.Context, actor models.Actor, conversationID int64) error {
	// The entry's action and details depend on whom the change takes the
	// conversation from: change fills them in before Within appends it.
	e := &models.AuditEvent{ActorID: actor.ID, ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP,
		Action: "conversation.take", SubjectType: "conversation", SubjectID: strconv.FormatInt(conversationID, 10)}
	return p.audit.Within(ctx, e, func(tx *gorm.DB) error {
		status, holder, err := p.convs.Holder(ctx, tx, conversationID)
		switch {
		case err != nil:
			return err
		case status != models.ConversationHandoff:
			return models.Errorf(models.ENOTFOUND, "This conversation is not waiting for a person.")
		case holder != "" && holder != actor.ID && !auth.Can(actor.Role, auth.TakeOver):
			return models.Errorf(models.EFORBIDDEN, "Another member holds this hand-off; taking it over is a supervisor's action.")
		}
		if holder != "" && holder != actor.ID {
			e.Action, e.Details = "conversation.take_over", map[string]any{"from": holder} // a staff id, nothing personal
		}
		return p.convs.Take(ctx, tx, conversationID, actor.ID)
	})
}

// MayReply says, writing nothing, whether the actor may write to the
// contact now: nil, or the EFORBIDDEN that Reply would refuse with. The
// console asks it to offer the reply box, or say why not.
func (p *Pipeline) MayReply(ctx context.Context, actor models.Actor, contactID int64) error {
	conv, err := p.convs.Open(ctx, nil, contactID)
	if err != nil {
		return err
	}
	return p.mayReply(ctx, nil, actor, conv)
}

// mayReply says whether the actor may write to a contact whose open
// conversation is conv (nil: none) now: agents reply to the hand-offs
// they hold, so a person never talks over the bot mid-flow or over a
// colleague; supervisors and admins reply anywhere. Reply calls it with
// the contact locked in tx, so the answer stands until the reply is
// queued.
func (p *Pipeline) mayReply(ctx context.Context, tx *gorm.DB, actor models.Actor, conv *models.Conversation) error {
	if auth.Can(actor.Role, auth.ReplyAnywhere) {
		return nil
	}
	switch {
	case conv == nil:
		return models.Errorf(models.EFORBIDDEN, "This contact has no open conversation; agents reply to hand-offs they have taken, supervisors anywhere.")
	case conv.Status != models.ConversationHandoff && conv.Status != models.ConversationPaused:
		return models.Errorf(models.EFORBIDDEN, "This contact is not handed off to a person, so the bot is answering them; agents reply to hand-offs they have taken (or where they paused the bot), supervisors anywhere.")
	}
	_, holder, err := p.convs.Holder(ctx, tx, conv.ID)
	switch {
	case err != nil:
		return err
	case holder == "" && conv.Status == models.ConversationPaused:
		return models.Errorf(models.EFORBIDDEN, "The bot is paused here and nobody holds the conversation; a supervisor replies, or resumes the bot.")
	case holder == "":
		return models.Errorf(models.EFORBIDDEN, "Take this hand-off before replying to it.")
	case holder != actor.ID:
		return models.Errorf(models.EFORBIDDEN, "Another member holds this conversation; they or a supervisor reply to it.")
	}
	return nil
}
