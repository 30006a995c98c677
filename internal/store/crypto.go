package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/models"
)

// Crypto is what stores need to keep personal data private: the key ring
// that seals it, the indexer that makes it searchable, and the phone
// normaliser that makes addresses comparable.
type Crypto struct {
	Ring   *crypt.KeyRing
	Index  *crypt.Indexer
	Phones phone.Normalizer
}

// gormFor returns tx (or the pool when tx is nil) bound to ctx, with the
// key ring the encrypted serializer needs.
func gormFor(ctx context.Context, db *DB, c Crypto, tx *gorm.DB) *gorm.DB {
	if tx == nil {
		tx = db.Gorm
	}
	return tx.WithContext(crypt.WithKeyRing(ctx, c.Ring))
}

// dbError maps database errors to model error codes.
func dbError(err error, what string) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return models.Errorf(models.ENOTFOUND, "%s not found.", what)
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		return models.Wrap(err, models.ECONFLICT, what+" already exists.")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case models.ErrorCode(err) != models.EINTERNAL:
		return err
	case isConnectionError(err):
		return models.Wrap(err, models.EUNAVAILABLE, "Database unavailable.")
	}
	return models.Wrap(err, models.EINTERNAL, "Database error.")
}

func isConnectionError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exceptions; 57P0x: shutdown.
		return pgErr.Code[:2] == "08" || pgErr.Code[:4] == "57P0"
	}
	var connErr *pgconn.ConnectError
	return errors.As(err, &connErr) || pgconn.SafeToRetry(err)
}

// isForeignKey reports whether err is a foreign-key violation: the row
// referred to is not there (or has just been erased).
func isForeignKey(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}
