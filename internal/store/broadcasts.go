package store

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// broadcastRow is a broadcasts row; what it sends and whom it picked are
// sealed (template parameters and variable values may be personal).
type broadcastRow struct {
	ID          int64 `gorm:"primaryKey"`
	Name        string
	Status      string
	Channel     string
	Provider    string
	Spec        []byte `gorm:"column:spec_enc;serializer:encrypted"`     // JSON of models.BroadcastMessage
	Audience    []byte `gorm:"column:audience_enc;serializer:encrypted"` // JSON of models.Audience
	SendAt      *time.Time
	CreatedBy   *string
	CreatedAt   time.Time
	ConfirmedAt *time.Time
	FinishedAt  *time.Time
}

func (broadcastRow) TableName() string { return "broadcasts" }

func (r *broadcastRow) model() (*models.Broadcast, error) {
	b := &models.Broadcast{ID: r.ID, Name: r.Name, Status: models.BroadcastStatus(r.Status), Channel: models.Channel(r.Channel),
		Provider: r.Provider, SendAt: r.SendAt, CreatedAt: r.CreatedAt, ConfirmedAt: r.ConfirmedAt, FinishedAt: r.FinishedAt}
	if r.CreatedBy != nil {
		b.CreatedBy = *r.CreatedBy
	}
	if err := json.Unmarshal(r.Spec, &b.Message); err != nil {
		return nil, models.Wrap(err, models.EINTERNAL, "Broadcast message is unreadable.")
	}
	if err := json.Unmarshal(r.Audience, &b.Audience); err != nil {
		return nil, models.Wrap(err, models.EINTERNAL, "Broadcast audience is unreadable.")
	}
	return b, nil
}

// BroadcastStore keeps broadcasts and their recipients.
type BroadcastStore struct {
	db     *DB
	crypto Crypto
}

// NewBroadcastStore returns the broadcast store.
func NewBroadcastStore(db *DB, c Crypto) *BroadcastStore {
	crypt.RegisterGORMSerializer()
	return &BroadcastStore{db: db, crypto: c}
}

// Create writes b (a draft) inside tx and sets its ID and CreatedAt.
func (s *BroadcastStore) Create(ctx context.Context, tx *gorm.DB, b *models.Broadcast) error {
	g := gormFor(ctx, s.db, s.crypto, tx)
	spec, err := json.Marshal(b.Message)
	if err != nil {
		return err
	}
	audience, err := json.Marshal(b.Audience)
	if err != nil {
		return err
	}
	// The ciphertexts are bound to the id: take it first.
	if err := g.Raw(`SELECT nextval(pg_get_serial_sequence('broadcasts', 'id'))`).Scan(&b.ID).Error; err != nil {
		return dbError(err, "Broadcast")
	}
	b.CreatedAt = time.Now().UTC()
	row := &broadcastRow{ID: b.ID, Name: b.Name, Status: string(b.Status), Channel: string(b.Channel), Provider: b.Provider,
		Spec: spec, Audience: audience, SendAt: b.SendAt, CreatedAt: b.CreatedAt}
	if b.CreatedBy != "" {
		row.CreatedBy = &b.CreatedBy
	}
	return dbError(g.Create(row).Error, "Broadcast")
}

// Get returns the broadcast; inside tx, locked FOR UPDATE when lock (the
// staff actions that change its status take turns with the driver, which
// holds it FOR SHARE while it queues).
func (s *BroadcastStore) Get(ctx context.Context, tx *gorm.DB, id int64, lock string) (*models.Broadcast, error) {
	g := gormFor(ctx, s.db, s.crypto, tx)
	q := `SELECT * FROM broadcasts WHERE id = ?`
	switch lock {
	case "update":
		q += ` FOR UPDATE`
	case "share":
		q += ` FOR SHARE`
	}
	var rows []broadcastRow
	if err := g.Raw(q, id).Scan(&rows).Error; err != nil {
		return nil, dbError(err, "Broadcast")
	}
	if len(rows) == 0 {
		return nil, models.Errorf(models.ENOTFOUND, "Broadcast not found.")
	}
	return rows[0].model()
}

// List returns the latest broadcasts, newest first, at most limit.
func (s *BroadcastStore) List(ctx context.Context, limit int) ([]*models.Broadcast, error) {
	var rows []broadcastRow
	if err := gormFor(ctx, s.db, s.crypto, nil).Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, dbError(err, "Broadcast")
	}
	out := make([]*models.Broadcast, 0, len(rows))
	for i := range rows {
		b, err := rows[i].model()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// SetStatus moves the broadcast to status inside tx, stamping when it was
// confirmed or finished.
func (s *BroadcastStore) SetStatus(ctx context.Context, tx *gorm.DB, id int64, status models.BroadcastStatus) error {
	q := `UPDATE broadcasts SET status = ?`
	switch status {
	case models.BroadcastScheduled, models.BroadcastRunning:
		q += `, confirmed_at = coalesce(confirmed_at, now())`
	case models.BroadcastDone, models.BroadcastCancelled:
		q += `, finished_at = now()`
	}
	return dbError(tx.WithContext(ctx).Exec(q+` WHERE id = ?`, string(status), id).Error, "Broadcast")
}

// Status returns the broadcast's status, reading nothing sealed.
func (s *BroadcastStore) Status(ctx context.Context, id int64) (models.BroadcastStatus, error) {
	var status string
	if err := s.db.Gorm.WithContext(ctx).Raw(`SELECT status FROM broadcasts WHERE id = ?`, id).Scan(&status).Error; err != nil {
		return "", dbError(err, "Broadcast")
	}
	if status == "" {
		return "", models.Errorf(models.ENOTFOUND, "Broadcast not found.")
	}
	return models.BroadcastStatus(status), nil
}
