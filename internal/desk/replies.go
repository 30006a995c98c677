package desk

import (
	"context"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// SavedReplies lists the saved replies, to those who may reply or manage
// them.
func (s *Service) SavedReplies(ctx context.Context, actor models.Actor) ([]*models.SavedReply, error) {
	if !auth.Can(actor.Role, auth.Reply) && !auth.Can(actor.Role, auth.ManageReplies) {
		return nil, models.Errorf(models.EFORBIDDEN, "Your role may not do this.")
	}
	return s.ReplyStore.List(ctx)
}

// SavedReply returns one saved reply, as SavedReplies would.
func (s *Service) SavedReply(ctx context.Context, actor models.Actor, id int64) (*models.SavedReply, error) {
	if !auth.Can(actor.Role, auth.Reply) && !auth.Can(actor.Role, auth.ManageReplies) {
		return nil, models.Errorf(models.EFORBIDDEN, "Your role may not do this.")
	}
	return s.ReplyStore.Get(ctx, id)
}

// SaveReply adds r (r.ID 0) or replaces the one with its id (EINVALID,
// ECONFLICT: another has its title, ENOTFOUND). Audited with its id and
// title: the business's text, nothing personal.
func (s *Service) SaveReply(ctx context.Context, actor models.Actor, r *models.SavedReply) error {
	if err := may(actor, auth.ManageReplies); err != nil {
		return err
	}
	if err := r.Clean(); err != nil {
		return err
	}
	action := "saved_reply.edit"
	if r.ID == 0 {
		action = "saved_reply.add"
	}
	e := event(actor, action, "saved_reply", r.ID, map[string]any{"title": r.Title})
	return s.Audit.Within(ctx, e, func(tx *gorm.DB) error {
		if err := s.ReplyStore.Save(ctx, tx, r, actor.ID); err != nil {
			return err
		}
		e.SubjectID = formatID(r.ID)
		return nil
	})
}

// DeleteReply removes a saved reply (ENOTFOUND).
func (s *Service) DeleteReply(ctx context.Context, actor models.Actor, id int64) error {
	if err := may(actor, auth.ManageReplies); err != nil {
		return err
	}
	return s.Audit.Within(ctx, event(actor, "saved_reply.delete", "saved_reply", id, nil), func(tx *gorm.DB) error {
		return s.ReplyStore.Delete(ctx, tx, id)
	})
}

// Rendered is a saved reply filled for one contact: personal, shown to
// the one who asked and never stored.
type Rendered struct {
	Text    string   `json:"text"`
	Missing []string `json:"missing"` // variables left as {{name}}: the gap the sender must fill
}

// RenderReply fills saved reply id with contact's conversation variables
// (decrypted here, on the server; the contact's name stands for {{name}}
// when the flow has not saved one). Audited as a read of the contact's
// data (saved_reply.render, naming the reply). EFORBIDDEN for those who
// may not reply.
func (s *Service) RenderReply(ctx context.Context, actor models.Actor, contactID, id int64) (*Rendered, error) {
	if err := may(actor, auth.Reply); err != nil {
		return nil, err
	}
	r, err := s.ReplyStore.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	contact, err := s.Contacts.Get(ctx, contactID)
	if err != nil {
		return nil, err
	}
	if err := s.Audit.Record(ctx, event(actor, "saved_reply.render", "contact", contactID, map[string]any{"saved_reply_id": id})); err != nil {
		return nil, err
	}
	vars := map[string]string{}
	conv, err := s.Convs.Open(ctx, nil, contactID)
	if err != nil {
		return nil, err
	}
	if conv != nil {
		for k, v := range conv.Variables {
			vars[k] = v
		}
	}
	if vars["name"] == "" && contact.Name != "" {
		vars["name"] = contact.Name
	}
	text, missing := r.Render(vars)
	return &Rendered{Text: text, Missing: missing}, nil
}
