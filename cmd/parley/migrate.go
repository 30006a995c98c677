package main

import (
	"context"
	"fmt"
	"io"

	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/internal/store"
)

// cmdMigrate applies (up), rolls back one (down) or lists (status) the
// migrations.
func cmdMigrate(ctx context.Context, action string, getenv func(string) string, stdout io.Writer) error {
	_, db, err := openDatabase(ctx, getenv, config.Requirements{Database: true})
	if err != nil {
		return err
	}
	defer db.Close()
	m, err := store.NewMigrator(db.SQL)
	if err != nil {
		return err
	}
	switch action {
	case "up":
		var applied []string
		applied, err = m.Up(ctx)
		for _, f := range applied {
			fmt.Fprintf(stdout, "applied %s\n", f)
		}
		if err == nil && len(applied) == 0 {
			fmt.Fprintln(stdout, "no pending migrations")
		}
	case "down":
		var undone string
		if undone, err = m.Down(ctx); undone != "" {
			fmt.Fprintf(stdout, "rolled back %s\n", undone)
		}
	default:
		err = m.Status(ctx, stdout)
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", action, err)
	}
	return nil
}

// openDatabase loads the settings req needs and opens the database of an
// admin command; the caller closes it.
func openDatabase(ctx context.Context, getenv func(string) string, req config.Requirements) (*config.Config, *store.DB, error) {
	cfg, err := config.Load(getenv, req)
	if err != nil {
		return nil, nil, err
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{})
	return cfg, db, err
}

// openSealed opens the database of an admin command that reads or writes
// sealed values, with the key ring; the caller closes the database.
func openSealed(ctx context.Context, getenv func(string) string, stderr io.Writer) (*config.Config, *store.DB, store.Crypto, error) {
	cfg, db, err := openDatabase(ctx, getenv, config.Requirements{Database: true, Keys: true})
	if err != nil {
		return nil, nil, store.Crypto{}, err
	}
	c, err := newCrypto(cfg, newLogger(stderr, cfg.LogLevel))
	if err != nil {
		db.Close()
		return nil, nil, store.Crypto{}, err
	}
	return cfg, db, c, nil
}
