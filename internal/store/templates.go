package store

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parley-chat/parley/models"
)

type templateRow struct {
	ID             int64 `gorm:"primaryKey"`
	Provider       string
	PlatformID     string
	Name           string
	Language       string
	Category       string
	Body           string
	HeaderFormat   string
	HeaderText     string
	Buttons        []byte
	Status         string
	RejectedReason string
	SyncedAt       time.Time
}

func (templateRow) TableName() string { return "templates" }

func (r *templateRow) model() *models.Template {
	t := &models.Template{ID: r.ID, Provider: r.Provider, PlatformID: r.PlatformID, Name: r.Name, Language: r.Language,
		Category: r.Category, Body: r.Body, HeaderFormat: r.HeaderFormat, HeaderText: r.HeaderText,
		Status: models.TemplateStatus(r.Status), RejectedReason: r.RejectedReason, SyncedAt: r.SyncedAt}
	_ = json.Unmarshal(r.Buttons, &t.Buttons) // written by Sync from a []TemplateButton
	return t
}

// TemplateStore is the template registry: WhatsApp templates as the
// platforms list them. Templates are the business's text, not personal,
// so nothing here is sealed.
type TemplateStore struct{ db *DB }

// NewTemplateStore returns the template registry.
func NewTemplateStore(db *DB) *TemplateStore { return &TemplateStore{db: db} }

// SyncResult counts what a sync changed.
type SyncResult struct {
	Seen int // templates the platform listed
	Gone int // templates it no longer lists, marked gone now
}

// Sync records the templates a provider lists now, as of at: each is
// added or updated (by provider, name and language), and the provider's
// templates missing from the list are marked gone (kept: messages name
// them). One transaction, so a sync cut off half-way changes nothing.
func (s *TemplateStore) Sync(ctx context.Context, provider string, list []models.Template, at time.Time) (SyncResult, error) {
	// Postgres keeps microseconds: at as stored, so the rows written now
	// are not older than it.
	at = at.UTC().Truncate(time.Microsecond)
	list = lastOfEach(list)
	res := SyncResult{Seen: len(list)}
	err := s.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if len(list) > 0 {
			rows := make([]templateRow, len(list))
			for i, t := range list {
				buttons, err := json.Marshal(t.Buttons)
				if err != nil {
					return err
				}
				if t.Buttons == nil {
					buttons = []byte("[]")
				}
				rows[i] = templateRow{Provider: provider, PlatformID: t.PlatformID, Name: t.Name, Language: t.Language, Category: t.Category,
					Body: t.Body, HeaderFormat: t.HeaderFormat, HeaderText: t.HeaderText, Buttons: buttons, Status: string(t.Status),
					RejectedReason: t.RejectedReason, SyncedAt: at}
			}
			err := tx.Clauses(clause.OnConflict{
				Columns: []clause.Column{{Name: "provider"}, {Name: "name"}, {Name: "language"}},
				DoUpdates: clause.AssignmentColumns([]string{"platform_id", "category", "body", "header_format", "header_text", "buttons",
					"status", "rejected_reason", "synced_at"}),
			}).CreateInBatches(rows, 500).Error
			if err != nil {
				return err
			}
		}
		gone := tx.Exec(`UPDATE templates SET status = 'gone', synced_at = ? WHERE provider = ? AND synced_at < ? AND status <> 'gone'`, at, provider, at)
		res.Gone = int(gone.RowsAffected)
		return gone.Error
	})
	return res, dbError(err, "Template")
}

// List returns every template, by name, language and provider.
func (s *TemplateStore) List(ctx context.Context) ([]*models.Template, error) {
	var rows []templateRow
	if err := s.db.Gorm.WithContext(ctx).Order("name, language, provider").Find(&rows).Error; err != nil {
		return nil, dbError(err, "Template")
	}
	out := make([]*models.Template, len(rows))
	for i := range rows {
		out[i] = rows[i].model()
	}
	return out, nil
}

// Find returns a provider's template by name and language. ENOTFOUND when
// the registry has none.
func (s *TemplateStore) Find(ctx context.Context, provider, name, language string) (*models.Template, error) {
	var row templateRow
	err := s.db.Gorm.WithContext(ctx).Where("provider = ? AND name = ? AND language = ?", provider, name, language).Take(&row).Error
	if err != nil {
		return nil, dbError(err, "Template")
	}
	return row.model(), nil
}

// Synced reports whether any template was ever synced: a registry never
// synced cannot tell a missing template from one not yet read.
func (s *TemplateStore) Synced(ctx context.Context) (bool, error) {
	var n int64
	err := s.db.Gorm.WithContext(ctx).Raw(`SELECT count(*) FROM (SELECT 1 FROM templates LIMIT 1) t`).Scan(&n).Error
	return n > 0, dbError(err, "Template")
}

// lastOfEach keeps one template per name and language (the last listed):
// one statement cannot write a row twice.
func lastOfEach(list []models.Template) []models.Template {
	at := map[[2]string]int{}
	var out []models.Template
	for _, t := range list {
		k := [2]string{t.Name, t.Language}
		if i, ok := at[k]; ok {
			out[i] = t
			continue
		}
		at[k] = len(out)
		out = append(out, t)
	}
	return out
}
