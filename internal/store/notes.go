package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// noteRow is a contact_notes row; its body is sealed, bound to its id.
type noteRow struct {
	ID        int64 `gorm:"primaryKey"`
	ContactID int64
	AuthorID  *string
	Body      string `gorm:"column:body_enc;serializer:encrypted"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (noteRow) TableName() string { return "contact_notes" }

func (r *noteRow) model() *models.Note {
	n := &models.Note{ID: r.ID, ContactID: r.ContactID, Body: r.Body, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if r.AuthorID != nil {
		n.AuthorID = *r.AuthorID
	}
	return n
}

// NoteStore keeps staff's notes on contacts, sealed. Notes go with their
// contact: kept while it is, removed by its erasure (cascade), exported
// with it.
type NoteStore struct {
	db     *DB
	crypto Crypto
}

// NewNoteStore returns the note store.
func NewNoteStore(db *DB, c Crypto) *NoteStore {
	crypt.RegisterGORMSerializer()
	return &NoteStore{db: db, crypto: c}
}

// maxNotes bounds one contact's list; notes are written by hand, so a
// contact with more is unlikely, and the page stays bounded.
const maxNotes = 200

// ForContact lists a contact's notes, decrypted, oldest first (as they
// were written); ENOTFOUND when there is no such contact.
func (s *NoteStore) ForContact(ctx context.Context, contactID int64) ([]*models.Note, error) {
	var rows []noteRow
	err := gormFor(ctx, s.db, s.crypto, nil).Where("contact_id = ?", contactID).Order("created_at, id").Limit(maxNotes).Find(&rows).Error
	if err != nil {
		return nil, dbError(err, "Note")
	}
	if len(rows) == 0 {
		if err := exists(ctx, s.db, "contacts", contactID, "Contact"); err != nil {
			return nil, err
		}
	}
	out := make([]*models.Note, len(rows))
	for i := range rows {
		out[i] = rows[i].model()
	}
	return out, nil
}

// Get returns one note, decrypted (ENOTFOUND when there is none).
func (s *NoteStore) Get(ctx context.Context, tx *gorm.DB, id int64) (*models.Note, error) {
	var row noteRow
	if err := gormFor(ctx, s.db, s.crypto, tx).First(&row, id).Error; err != nil {
		return nil, dbError(err, "Note")
	}
	return row.model(), nil
}

// Add writes a note by author on contact in tx: ENOTFOUND when there is
// no such contact.
func (s *NoteStore) Add(ctx context.Context, tx *gorm.DB, contactID int64, author, body string) (*models.Note, error) {
	g := gormFor(ctx, s.db, s.crypto, tx)
	var id int64
	if err := g.Raw("SELECT nextval(pg_get_serial_sequence('contact_notes', 'id'))").Scan(&id).Error; err != nil {
		return nil, dbError(err, "Note")
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	row := noteRow{ID: id, ContactID: contactID, Body: body, CreatedAt: now, UpdatedAt: now}
	if author != "" {
		row.AuthorID = &author
	}
	if err := g.Create(&row).Error; err != nil {
		if isForeignKey(err) {
			return nil, models.Errorf(models.ENOTFOUND, "Contact not found.")
		}
		return nil, dbError(err, "Note")
	}
	return row.model(), nil
}

// Update replaces a note's text in tx.
func (s *NoteStore) Update(ctx context.Context, tx *gorm.DB, id int64, body string) (*models.Note, error) {
	g := gormFor(ctx, s.db, s.crypto, tx)
	row := noteRow{ID: id, Body: body, UpdatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	res := g.Model(&row).Select("body_enc", "updated_at").Updates(&row)
	if res.Error != nil {
		return nil, dbError(res.Error, "Note")
	}
	if res.RowsAffected == 0 {
		return nil, models.Errorf(models.ENOTFOUND, "Note not found.")
	}
	return s.Get(ctx, tx, id)
}

// Delete removes a note in tx.
func (s *NoteStore) Delete(ctx context.Context, tx *gorm.DB, id int64) error {
	res := gormFor(ctx, s.db, s.crypto, tx).Exec("DELETE FROM contact_notes WHERE id = ?", id)
	if res.Error != nil {
		return dbError(res.Error, "Note")
	}
	if res.RowsAffected == 0 {
		return models.Errorf(models.ENOTFOUND, "Note not found.")
	}
	return nil
}

// exists is ENOTFOUND (naming what) unless table has a row with id.
func exists(ctx context.Context, db *DB, table string, id int64, what string) error {
	var ok bool
	if err := db.Gorm.WithContext(ctx).Raw(`SELECT EXISTS (SELECT 1 FROM `+table+` WHERE id = ?)`, id).Scan(&ok).Error; err != nil {
		return dbError(err, what)
	}
	if !ok {
		return models.Errorf(models.ENOTFOUND, "%s not found.", what)
	}
	return nil
}
