// Package store is Parley's Postgres access: one pgx pool shared by GORM,
// goose and (later) the job queue, and one store type per aggregate. Stores
// map database errors to model error codes.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// DB is the one connection pool of a Parley process, seen three ways.
type DB struct {
	Pool *pgxpool.Pool // native pgx, for the queue and bulk work
	SQL  *sql.DB       // database/sql over the same pool, for goose
	Gorm *gorm.DB      // for stores

	idsMu sync.Mutex
	ids   map[string]*idAllocator // by table: see allocator
}

// allocator is the process's one id allocator of table: every store that
// writes the table (the Ingestor and MessageStore both write messages)
// takes its ids from the same blocks.
func (db *DB) allocator(table string) *idAllocator {
	db.idsMu.Lock()
	defer db.idsMu.Unlock()
	if db.ids == nil {
		db.ids = map[string]*idAllocator{}
	}
	a := db.ids[table]
	if a == nil {
		a = newIDAllocator(table)
		db.ids[table] = a
	}
	return a
}

// Options tune the pool.
type Options struct {
	// MaxConns is the pool's size: at least one connection per queue
	// worker and committer that may hold one at once, plus room for HTTP
	// requests (default 10, or pool_max_conns in the DSN when larger).
	MaxConns int
}

// Open connects to the database at dsn. It does not fail when the database
// is down: the pool connects lazily, and readiness reports the outage.
func Open(ctx context.Context, dsn string, o Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	if o.MaxConns <= 0 {
		o.MaxConns = 10
	}
	if cfg.MaxConns < int32(o.MaxConns) {
		cfg.MaxConns = int32(o.MaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	gdb, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{
		SkipDefaultTransaction: true,
		DisableAutomaticPing:   true, // a database down at start is for /readyz to report
		Logger:                 logger.Discard,
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open gorm: %w", err)
	}
	return &DB{Pool: pool, SQL: sqlDB, Gorm: gdb}, nil
}

// Close closes the pool after the connections in use are returned.
func (db *DB) Close() {
	_ = db.SQL.Close()
	db.Pool.Close()
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	return db.Pool.Ping(ctx)
}
