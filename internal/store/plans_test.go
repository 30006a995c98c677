package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
)

// genericPlan is the plan PostgreSQL caches for sql after a few runs (a
// generic plan, made without the parameters' values) on a database whose
// tables have never been analysed, as a fresh deployment's are until
// autovacuum's first pass: the plan every webhook then runs with, however
// large the tables grow meanwhile. args fill EXPLAIN EXECUTE.
func genericPlan(t *testing.T, db *store.DB, sql, args string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, s := range []string{"SET plan_cache_mode = force_generic_plan", "PREPARE planned AS " + sql} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s[:min(len(s), 60)], err)
		}
	}
	rows, err := conn.Query(ctx, "EXPLAIN EXECUTE planned("+args+")")
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Exec(ctx, "DEALLOCATE planned")
	_, _ = conn.Exec(ctx, "RESET plan_cache_mode")
	return strings.Join(plan, "\n")
}

// A write of messages finds its contacts through their unique indexes
// whatever the statistics say: the plan cached on a fresh database read
// every contact on each write (a hash join over a sequential scan), so
// ingest slowed as contacts were stored, a quarter lower after 20,000.
func TestIngest_PlanReadsNoTableWhole(t *testing.T) {
	db := pgtest.Open(t)
	plan := genericPlan(t, db, store.IngestMessagesSQL, `ARRAY[1]::bigint[], ARRAY['sms'], ARRAY['\x01'::bytea], ARRAY['twilio'], ARRAY['SM1'],
		ARRAY['\x02'::bytea], ARRAY[NULL::bytea], ARRAY[NULL::timestamptz], ARRAY[0]::bigint[], 'received', now(), ARRAY[0]::bigint[]`)
	if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Hash") {
		t.Errorf("the messages' write reads a table whole or hashes it:\n%s", plan)
	}
}
