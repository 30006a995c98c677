package pgtest

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/parley-chat/parley/internal/pgcluster"
	"github.com/parley-chat/parley/internal/store"
)

// Dump is db's whole database as pg_dump writes it (plain SQL, one INSERT
// per row, bytea as hex): what a stolen backup would hold.
func Dump(t testing.TB, db *store.DB) string {
	t.Helper()
	ctx := context.Background()
	var name string
	if err := db.Pool.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	bin, err := pgcluster.FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	cfg := db.Pool.Config().ConnConfig
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "pg_dump"), "--no-owner", "--inserts",
		"-h", cfg.Host, "-p", strconv.Itoa(int(cfg.Port)), "-U", cfg.User, name)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, stderr.String())
	}
	return out.String()
}
