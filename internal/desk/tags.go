package desk

import (
	"context"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// Tags lists a conversation's tags. Tags are not personal: the read is
// not audited.
func (s *Service) Tags(ctx context.Context, actor models.Actor, conversationID int64) ([]string, error) {
	if err := may(actor, auth.ReadConversations); err != nil {
		return nil, err
	}
	return s.TagStore.Of(ctx, conversationID)
}

// KnownTags lists the tags in use, most used first, for suggestions.
func (s *Service) KnownTags(ctx context.Context, actor models.Actor) ([]string, error) {
	if err := may(actor, auth.ReadConversations); err != nil {
		return nil, err
	}
	return s.TagStore.Known(ctx, 50)
}

// AddTag puts a tag on a conversation (EINVALID: not a tag, or the
// conversation has models.MaxTags; ENOTFOUND: no such conversation). It
// returns the tag as kept (normalised). Adding one it carries already
// changes nothing and is not audited again.
func (s *Service) AddTag(ctx context.Context, actor models.Actor, conversationID int64, tag string) (string, error) {
	if err := may(actor, auth.TagConversations); err != nil {
		return "", err
	}
	tag, err := models.CleanTag(tag)
	if err != nil {
		return "", err
	}
	e := event(actor, "conversation.tag", "conversation", conversationID, map[string]any{"tag": tag})
	err = s.Audit.Within(ctx, e, func(tx *gorm.DB) error {
		added, err := s.TagStore.Add(ctx, tx, conversationID, tag, actor.ID)
		if err == nil && !added {
			return errUnchanged
		}
		return err
	})
	if err == errUnchanged {
		err = nil
	}
	return tag, err
}

// RemoveTag takes a tag off a conversation; removing one it does not
// carry changes nothing and is not audited.
func (s *Service) RemoveTag(ctx context.Context, actor models.Actor, conversationID int64, tag string) error {
	if err := may(actor, auth.TagConversations); err != nil {
		return err
	}
	tag, err := models.CleanTag(tag)
	if err != nil {
		return err
	}
	e := event(actor, "conversation.untag", "conversation", conversationID, map[string]any{"tag": tag})
	err = s.Audit.Within(ctx, e, func(tx *gorm.DB) error {
		removed, err := s.TagStore.Remove(ctx, tx, conversationID, tag)
		if err == nil && !removed {
			return errUnchanged
		}
		return err
	})
	if err == errUnchanged {
		return nil
	}
	return err
}

// errUnchanged rolls back an audit entry for a change that did not
// happen.
var errUnchanged = models.Errorf(models.ECONFLICT, "Nothing to change.")
