package pgtest_test

import (
	"context"
	"testing"

	"github.com/parley-chat/parley/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestOpen_GivesEachTestItsOwnMigratedDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.Open(t), pgtest.Open(t)

	var nameA, nameB string
	if err := a.Pool.QueryRow(ctx, "SELECT current_database()").Scan(&nameA); err != nil {
		t.Fatal(err)
	}
	if err := b.Pool.QueryRow(ctx, "SELECT current_database()").Scan(&nameB); err != nil {
		t.Fatal(err)
	}
	if nameA == nameB {
		t.Fatalf("two tests share database %q", nameA)
	}
	// Migrated: the core tables exist, and a write to one is unseen by the other.
	if _, err := a.Pool.Exec(ctx, `INSERT INTO staff_users (email, role) VALUES ('a@example.org', 'admin')`); err != nil {
		t.Fatalf("insert into migrated table: %v", err)
	}
	var n int
	if err := b.Pool.QueryRow(ctx, "SELECT count(*) FROM staff_users").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database b sees %d rows written to a", n)
	}
}
