package store

import (
	"context"

	"github.com/parley-chat/parley/models"
)

// Readiness checks that the database answers and holds every migration.
type Readiness struct {
	db       *DB
	migrator *Migrator
}

// NewReadiness returns a readiness check over db.
func NewReadiness(db *DB) (*Readiness, error) {
	m, err := NewMigrator(db.SQL)
	if err != nil {
		return nil, err
	}
	return &Readiness{db: db, migrator: m}, nil
}

// Ready returns nil when the instance can serve; otherwise EUNAVAILABLE
// saying whether the database is unreachable or behind.
func (r *Readiness) Ready(ctx context.Context) error {
	if err := r.db.Ping(ctx); err != nil {
		return models.Wrap(err, models.EUNAVAILABLE, "Database unreachable.")
	}
	current, err := r.migrator.Current(ctx)
	if err != nil {
		return models.Wrap(err, models.EUNAVAILABLE, "Database migration state unknown.")
	}
	if !current {
		return models.Errorf(models.EUNAVAILABLE, "Database migrations pending: run `parley migrate up`.")
	}
	return nil
}
