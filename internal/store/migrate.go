package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/parley-chat/parley/migrations"
)

// Migrator applies the embedded migrations with goose. A Postgres advisory
// lock keeps several instances starting together from racing.
type Migrator struct {
	provider *goose.Provider
}

// NewMigrator returns a Migrator for the embedded migrations over db.
func NewMigrator(db *sql.DB) (*Migrator, error) {
	return newMigrator(db, migrations.FS)
}

func newMigrator(db *sql.DB, fsys fs.FS) (*Migrator, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return &Migrator{provider: p}, nil
}

// Up applies every pending migration and returns the files applied.
func (m *Migrator) Up(ctx context.Context) ([]string, error) {
	results, err := m.provider.Up(ctx)
	applied := make([]string, 0, len(results))
	for _, r := range results {
		if r.Error == nil {
			applied = append(applied, r.Source.Path)
		}
	}
	return applied, err
}

// Down rolls back the newest applied migration and returns its file.
func (m *Migrator) Down(ctx context.Context) (string, error) {
	r, err := m.provider.Down(ctx)
	if err != nil || r == nil {
		return "", err
	}
	return r.Source.Path, nil
}

// Status writes one line per migration: applied (with when) or pending.
func (m *Migrator) Status(ctx context.Context, w io.Writer) error {
	statuses, err := m.provider.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range statuses {
		when := "pending"
		if s.State == goose.StateApplied {
			when = "applied " + s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
		}
		fmt.Fprintf(w, "%-40s %s\n", s.Source.Path, when)
	}
	return nil
}

// Current reports whether the database holds every migration this binary
// knows. A database migrated further by a newer release also counts, so a
// rolling deploy keeps old instances ready.
func (m *Migrator) Current(ctx context.Context) (bool, error) {
	current, target, err := m.provider.GetVersions(ctx)
	if err != nil {
		return false, err
	}
	return current >= target, nil
}

// MigrateUp applies every pending migration to the database at dsn and
// returns the files applied; it closes its connections before returning.
func MigrateUp(ctx context.Context, dsn string) ([]string, error) {
	db, err := Open(ctx, dsn, Options{})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	m, err := NewMigrator(db.SQL)
	if err != nil {
		return nil, err
	}
	return m.Up(ctx)
}
