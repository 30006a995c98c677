package pipeline

import (
	"context"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// keeper is where Flows reads and keeps conversations: the store itself,
// a statement each time, or a batch that reads and writes those of
// several contacts together.
type keeper interface {
	// open returns the contact's conversation that has not ended, or nil.
	open(ctx context.Context, tx *gorm.DB, contactID int64) (*models.Conversation, error)
	// save keeps c, setting its ID when it is new.
	save(ctx context.Context, tx *gorm.DB, c *models.Conversation) error
}

// storeKeeper reads and writes each conversation when asked.
type storeKeeper struct{ s *store.ConversationStore }

func (k storeKeeper) open(ctx context.Context, tx *gorm.DB, contactID int64) (*models.Conversation, error) {
	return k.s.Open(ctx, tx, contactID)
}

func (k storeKeeper) save(ctx context.Context, tx *gorm.DB, c *models.Conversation) error {
	return k.s.Save(ctx, tx, c)
}

func (f *Flows) store() keeper { return storeKeeper{f.conversations} }

// Batch implements Batcher: the contacts' open conversations are read
// with one statement, and what their messages change is kept in memory
// until Flush writes it with one or two.
func (f *Flows) Batch(ctx context.Context, tx *gorm.DB, contactIDs []int64) (BatchResponder, error) {
	open, err := f.conversations.OpenOf(ctx, tx, contactIDs)
	if err != nil {
		return nil, err
	}
	b := &flowsBatch{f: f, convs: make(map[int64]*models.Conversation, len(contactIDs)), staged: map[int64]bool{}}
	for _, id := range contactIDs {
		b.convs[id] = open[id] // nil: none yet, known
	}
	return b, nil
}

// flowsBatch is Flows for the messages of one processing transaction.
type flowsBatch struct {
	f *Flows
	// convs holds each contact's latest conversation, by contact: nil
	// when it has none, absent when the batch was not told of it.
	convs            map[int64]*models.Conversation
	created, changed []*models.Conversation // to be written by Flush
	staged           map[int64]bool         // the ids of those
}

// Respond implements Responder.
func (b *flowsBatch) Respond(ctx context.Context, tx *gorm.DB, contact *models.Contact, in *models.Message) (*Outcome, error) {
	return b.f.respond(ctx, tx, b, contact, in)
}

// Flush implements BatchResponder.
func (b *flowsBatch) Flush(ctx context.Context, tx *gorm.DB) error {
	if err := b.f.conversations.SaveAll(ctx, tx, b.created, b.changed); err != nil {
		return err
	}
	b.created, b.changed, b.staged = nil, nil, map[int64]bool{}
	return nil
}

func (b *flowsBatch) open(ctx context.Context, tx *gorm.DB, contactID int64) (*models.Conversation, error) {
	c, known := b.convs[contactID]
	if !known {
		return b.f.conversations.Open(ctx, tx, contactID)
	}
	if c == nil || c.Status == models.ConversationEnded || c.Status == models.ConversationError {
		return nil, nil
	}
	return c, nil
}

func (b *flowsBatch) save(ctx context.Context, tx *gorm.DB, c *models.Conversation) error {
	created, err := b.f.conversations.Stage(ctx, tx, c)
	if err != nil {
		return err
	}
	switch {
	case created:
		b.created = append(b.created, c)
	case !b.staged[c.ID]:
		b.changed = append(b.changed, c)
	}
	b.staged[c.ID] = true
	b.convs[c.ContactID] = c
	return nil
}
