package pgcluster

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestFindBinaries_MissingInstallSaysWhatToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	old := libGlob
	libGlob = filepath.Join(t.TempDir(), "*", "bin")
	t.Cleanup(func() { libGlob = old })

	_, err := FindBinaries()
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("FindBinaries() error = %v, want ErrNotInstalled", err)
	}
	if _, err := New(t.TempDir()); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("New() error = %v, want ErrNotInstalled", err)
	}
}

func TestCluster_RestartKeepsPortAndData(t *testing.T) {
	ctx := context.Background()
	c, err := New(filepath.Join(t.TempDir(), "pg"))
	if err != nil {
		t.Fatal(err)
	}
	c.Throwaway = true
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	mustExec(t, c.DSN("postgres"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	port := c.Port

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, c.DSN("postgres")); err == nil {
		t.Fatal("connected to a stopped cluster")
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Port != port {
		t.Errorf("port after restart = %d, want %d", c.Port, port)
	}
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("after restart: v=%d err=%v, want 42", v, err)
	}
}

func mustExec(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}
