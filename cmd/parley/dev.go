package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/internal/pgcluster"
	"github.com/parley-chat/parley/internal/store"
)

// devDatabase is the database `parley dev` keeps in its embedded cluster.
const devDatabase = "parley"

// devRegion is `parley dev`'s PARLEY_DEFAULT_REGION unless one is given.
const devRegion = "GB"

// cmdDev runs Parley for development: with no DATABASE_URL it starts an
// embedded PostgreSQL under ./.data (PARLEY_DATA_DIR), keeps development
// keys there, applies migrations and serves. Any setting given overrides.
func cmdDev(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	dataDir := getenv("PARLEY_DATA_DIR")
	if dataDir == "" {
		dataDir = ".data"
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	keys, err := loadDevKeys(filepath.Join(dataDir, "dev-keys.env"))
	if err != nil {
		return err
	}
	// The region is the UK's, where the simulator's test numbers are
	// (+44 7700 900…): typed as 07700 900…, they are found.
	defaults := map[string]string{"PARLEY_AUTH_MODE": "local", "PARLEY_DEFAULT_REGION": devRegion}
	for k, v := range keys {
		defaults[k] = v
	}

	var dbPort int
	if getenv("DATABASE_URL") == "" {
		cluster, err := pgcluster.New(filepath.Join(dataDir, "postgres"))
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "parley dev: starting embedded PostgreSQL in %s\n", cluster.DataDir)
		if err := cluster.Start(ctx); err != nil {
			return fmt.Errorf("start embedded PostgreSQL: %w", err)
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := cluster.Stop(stopCtx); err != nil {
				fmt.Fprintf(stderr, "parley dev: stop PostgreSQL: %v\n", err)
			} else {
				fmt.Fprintln(stderr, "parley dev: PostgreSQL stopped")
			}
		}()
		if err := ensureDatabase(ctx, cluster.DSN("postgres"), devDatabase); err != nil {
			return err
		}
		defaults["DATABASE_URL"] = cluster.DSN(devDatabase)
		dbPort = cluster.Port
		// For the other commands (parley keys status, make migrate) while
		// this one runs: the port may change between runs.
		dsnFile := filepath.Join(dataDir, "dev-database.env")
		// The region goes with it, so that a number typed to another
		// command (contacts export) reads as it does in the console.
		note := "# The embedded database of the running `parley dev`, and its region; rewritten at each start.\nDATABASE_URL=" + cluster.DSN(devDatabase) +
			"\nPARLEY_DEFAULT_REGION=" + overlay(getenv, defaults)("PARLEY_DEFAULT_REGION") + "\n"
		if err := os.WriteFile(dsnFile, []byte(note), 0o600); err != nil {
			return fmt.Errorf("save the database URL: %w", err)
		}
	}

	cfg, err := config.Load(overlay(getenv, defaults), config.Requirements{Database: true, Keys: true})
	if err != nil {
		return err
	}
	log := newLogger(stdout, cfg.LogLevel)
	if dbPort != 0 {
		log.Info("embedded PostgreSQL started", slog.Int("database_port", dbPort), slog.String("data_dir", filepath.Join(dataDir, "postgres")))
	}
	if err := migrateUp(ctx, cfg.DatabaseURL, log); err != nil {
		return err
	}
	if cfg.AuthMode == "local" {
		if err := ensureFirstAdmin(ctx, cfg, stderr); err != nil {
			return fmt.Errorf("make the first admin: %w", err)
		}
	}
	return serve(ctx, cfg, log, true, func(addr string) {
		fmt.Fprintf(stderr, "parley dev: console at %s (Ctrl-C stops)\n", consoleURL(addr))
	})
}

// lockDataDir takes the data folder for this process, so that a second
// `parley dev` on it is refused before it touches anything (it would stop
// the first one's PostgreSQL). The lock goes with the process, however it
// ends.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "dev.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		holder := ""
		if p := strings.TrimSpace(string(pid)); p != "" {
			holder = " (pid " + p + ")"
		}
		return nil, fmt.Errorf("another `parley dev`%s is already running on %s; stop it first, or give this one a folder of its own with PARLEY_DATA_DIR", holder, dir)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}

// overlay returns a getenv that prefers the environment and falls back to
// defaults.
func overlay(getenv func(string) string, defaults map[string]string) func(string) string {
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return defaults[k]
	}
}

func consoleURL(addr string) string {
	host, port, _ := strings.Cut(addr, "]:")
	if port == "" {
		host, port, _ = strings.Cut(addr, ":")
	}
	if host == "" || host == "[::" || host == "0.0.0.0" || host == "127.0.0.1" {
		host = "localhost"
	}
	return "http://" + host + ":" + port + "/"
}

func ensureDatabase(ctx context.Context, adminDSN, name string) error {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return fmt.Errorf("connect to embedded PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

func migrateUp(ctx context.Context, dsn string, log *slog.Logger) error {
	applied, err := store.MigrateUp(ctx, dsn)
	for _, f := range applied {
		log.Info("migration applied", slog.String("file", f))
	}
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// loadDevKeys reads the development keys kept at path, creating them on
// first use. They protect only development data.
func loadDevKeys(path string) (map[string]string, error) {
	keys := map[string]string{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		keys["PARLEY_ENCRYPTION_KEYS"] = newEncryptionKey()
		keys["PARLEY_BLIND_INDEX_KEY"] = newSecret()
		keys["PARLEY_SESSION_KEYS"] = newSessionKeyPair()
		var b strings.Builder
		b.WriteString("# Development keys made by `parley dev`. Never use them in production.\n")
		for _, k := range []string{"PARLEY_ENCRYPTION_KEYS", "PARLEY_BLIND_INDEX_KEY", "PARLEY_SESSION_KEYS"} {
			fmt.Fprintf(&b, "%s=%s\n", k, keys[k])
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			return nil, fmt.Errorf("save development keys: %w", err)
		}
		return keys, nil
	} else if err != nil {
		return nil, fmt.Errorf("read development keys: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = v
		}
	}
	return keys, sc.Err()
}
