package store

import (
	"context"
	"database/sql/driver"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/textnorm"
	"github.com/parley-chat/parley/models"
)

// contactRow is a contacts row. Address and name are sealed by the
// "encrypted" serializer; the id must be set before either.
type contactRow struct {
	ID             int64 `gorm:"primaryKey"`
	Channel        string
	Address        string  `gorm:"column:address_enc;serializer:encrypted"`
	AddressBidx    []byte  `gorm:"column:address_bidx"`
	AddressInvalid bool    `gorm:"column:address_invalid"`
	Name           *string `gorm:"column:name_enc;serializer:encrypted"`
	Language       string
	OptedOutAt     *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func (contactRow) TableName() string { return "contacts" }

func (r *contactRow) model() *models.Contact {
	c := &models.Contact{
		ID: r.ID, Channel: models.Channel(r.Channel), Address: r.Address, AddressInvalid: r.AddressInvalid,
		Language: r.Language, OptedOut: r.OptedOutAt != nil, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.Name != nil {
		c.Name = *r.Name
	}
	return c
}

// ContactStore keeps contacts, found by the blind index of their address.
type ContactStore struct {
	db     *DB
	crypto Crypto
}

// NewContactStore returns the contact store.
func NewContactStore(db *DB, c Crypto) *ContactStore {
	crypt.RegisterGORMSerializer()
	return &ContactStore{db: db, crypto: c}
}

// addressIndex is the exact blind index of an address: its E.164 number,
// or its raw text when it does not parse.
func (s *ContactStore) addressIndex(a phone.Address) []byte {
	return s.crypto.Index.Exact(crypt.DomainAddress, a.Number)
}

// FindOrCreate returns the contact at the channel address raw (whatsapp:+…,
// +91…), creating it if new; created tells which. An address that does not
// parse as a phone number is kept and flagged. It writes the contact as
// the Ingestor writes a webhook's, the one way contacts are written, in a
// transaction of its own: for a contact that has not written yet (tests,
// tools).
func (s *ContactStore) FindOrCreate(ctx context.Context, raw string) (c *models.Contact, created bool, err error) {
	addr := s.crypto.Phones.ParseAddress(raw)
	if addr.Number == "" {
		return nil, false, models.Errorf(models.EINVALID, "Contact address is empty.")
	}
	bidx := s.addressIndex(addr)
	k := contactKey{string(addr.Channel), string(bidx)}
	var tag pgconn.CommandTag
	err = pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		batch := &pgx.Batch{}
		if err := NewIngestor(s.db, s.crypto).queueContacts(ctx, tx, batch, map[contactKey]*pendingContact{k: {number: addr.Number, valid: addr.Valid}}); err != nil {
			return err
		}
		br := tx.SendBatch(ctx, batch)
		tag, err = br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return nil, false, dbError(err, "Contact")
	}
	found, err := s.findByIndex(gormFor(ctx, s.db, s.crypto, nil), addr.Channel, bidx, addr.Number)
	if err == nil && found == nil { // another address under the same truncated index
		err = models.Errorf(models.ECONFLICT, "Contact address collides with another; retry.")
	}
	return found, err == nil && tag.RowsAffected() == 1, err
}

func (s *ContactStore) findByIndex(g *gorm.DB, ch models.Channel, bidx []byte, number string) (*models.Contact, error) {
	var rows []contactRow
	if err := g.Where("channel = ? AND address_bidx = ?", string(ch), bidx).Find(&rows).Error; err != nil {
		return nil, dbError(err, "Contact")
	}
	for i := range rows {
		// The index is truncated: confirm on the decrypted address.
		if rows[i].Address == number {
			return rows[i].model(), nil
		}
	}
	return nil, nil
}

// Get returns the contact with this id.
func (s *ContactStore) Get(ctx context.Context, id int64) (*models.Contact, error) {
	var row contactRow
	if err := gormFor(ctx, s.db, s.crypto, nil).First(&row, id).Error; err != nil {
		return nil, dbError(err, "Contact")
	}
	return row.model(), nil
}

// SetName records the contact's name, sealed, and indexes its words.
func (s *ContactStore) SetName(ctx context.Context, tx *gorm.DB, id int64, name string) error {
	g := gormFor(ctx, s.db, s.crypto, tx)
	return g.Transaction(func(tx *gorm.DB) error {
		row := contactRow{ID: id, Name: &name}
		res := tx.Model(&row).Select("name_enc", "updated_at").Updates(&row)
		if res.Error != nil {
			return dbError(res.Error, "Contact")
		}
		if res.RowsAffected == 0 {
			return models.Errorf(models.ENOTFOUND, "Contact not found.")
		}
		if err := tx.Exec("DELETE FROM contact_words WHERE contact_id = ?", id).Error; err != nil {
			return dbError(err, "Contact")
		}
		return insertWords(tx, "contact_words", "contact_id", id, s.crypto.Index.Tokens(crypt.DomainName, name))
	})
}

// FindByPhone returns the contacts on any channel whose number is the one
// typed in query, in any format a person types it.
func (s *ContactStore) FindByPhone(ctx context.Context, query string) ([]*models.Contact, error) {
	number, err := s.crypto.Phones.Normalize(query)
	if err != nil {
		return nil, err
	}
	var rows []contactRow
	g := gormFor(ctx, s.db, s.crypto, nil)
	if err := g.Where("address_bidx = ?", s.crypto.Index.Exact(crypt.DomainAddress, number)).Order("id").Find(&rows).Error; err != nil {
		return nil, dbError(err, "Contact")
	}
	var out []*models.Contact
	for i := range rows {
		if rows[i].Address == number {
			out = append(out, rows[i].model())
		}
	}
	return out, nil
}

// insertWords adds the word index rows of one owner.
func insertWords(tx *gorm.DB, table, ownerColumn string, owner int64, tokens []int32) error {
	if len(tokens) == 0 {
		return nil
	}
	err := tx.Exec("INSERT INTO "+table+" (bidx, "+ownerColumn+") SELECT unnest(?::integer[]), ? ON CONFLICT DO NOTHING", intArray(tokens), owner).Error
	return dbError(err, "Word index")
}

// intArray passes a slice as one Postgres integer[] parameter; GORM would
// expand a plain slice into a list. pgx encodes it as a binary array
// (pgtype.ArrayGetter); its driver.Valuer, the text form, is what GORM
// sees and other drivers would use. Through the Valuer alone pgx formatted
// every array as text and parsed it back, a fifth of the answering path's
// allocations.
type intArray []int32

// Value implements driver.Valuer with the array's text form.
func (a intArray) Value() (driver.Value, error) { return arrayText(a), nil }

// Dimensions, Index and IndexType implement pgtype.ArrayGetter.
func (a intArray) Dimensions() []pgtype.ArrayDimension {
	return pgtype.FlatArray[int32](a).Dimensions()
}
func (a intArray) Index(i int) any { return a[i] }
func (a intArray) IndexType() any  { return int32(0) }

// bigintArray is intArray for bigint[].
type bigintArray []int64

// Value implements driver.Valuer with the array's text form.
func (a bigintArray) Value() (driver.Value, error) { return arrayText(a), nil }

// Dimensions, Index and IndexType implement pgtype.ArrayGetter.
func (a bigintArray) Dimensions() []pgtype.ArrayDimension {
	return pgtype.FlatArray[int64](a).Dimensions()
}
func (a bigintArray) Index(i int) any { return a[i] }
func (a bigintArray) IndexType() any  { return int64(0) }

// textArray is intArray for text[].
type textArray []string

// Dimensions, Index and IndexType implement pgtype.ArrayGetter.
func (a textArray) Dimensions() []pgtype.ArrayDimension {
	return pgtype.FlatArray[string](a).Dimensions()
}
func (a textArray) Index(i int) any { return a[i] }
func (a textArray) IndexType() any  { return "" }

// Value implements driver.Valuer with the array's text form, each element
// quoted.
func (a textArray) Value() (driver.Value, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range v {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String(), nil
}

func arrayText[T int32 | int64](a []T) string {
	b := make([]byte, 0, 2+len(a)*12)
	b = append(b, '{')
	for i, v := range a {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return string(append(b, '}'))
}

// queryWords are the normalised words of a search, with their tokens.
func queryTokens(ix *crypt.Indexer, d crypt.Domain, text string) ([]string, []int32) {
	words := textnorm.Words(text)
	tokens := make([]int32, len(words))
	for i, w := range words {
		tokens[i] = ix.Token(d, w)
	}
	return words, tokens
}
