package store_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/store"
)

// beforeKeyed migrates f's database down to just before the keyed chain
// (00026), as a release before it left it, and returns the migrator.
func beforeKeyed(t *testing.T, f *fixture) *store.Migrator {
	t.Helper()
	m, err := store.NewMigrator(f.db.SQL)
	if err != nil {
		t.Fatal(err)
	}
	for undone := ""; !strings.Contains(undone, "00026"); {
		if undone, err = m.Down(context.Background()); err != nil || undone == "" {
			t.Fatalf("down to before the keyed chain: %q, %v", undone, err)
		}
	}
	return m
}

// previousRelease appends as Parley did before migration 00026, and as its
// binary still does while a release's migration runs ahead of it: under
// the chain's lock, plain SHA-256, the columns it knew.
func previousRelease(ctx context.Context, f *fixture, subject string) error {
	tx, err := f.db.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7212002)`); err != nil {
		return err
	}
	var seq int64
	var prev []byte
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0), (SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1) FROM audit_events`).Scan(&seq, &prev); err != nil {
		return err
	}
	id, at := 5_000_000+seq, time.Now().UTC().Truncate(time.Microsecond)
	sealed := f.crypto.Ring.Encrypt([]byte("null"), crypt.Ref{Table: "audit_events", Column: "details_enc", ID: id})
	if _, err := tx.Exec(ctx, `INSERT INTO audit_events (id, seq, at, actor_id, actor_role, action, subject_type, subject_id, request_id, ip, details_enc, prev_hash, hash)
		VALUES ($1, $2, $3, NULL, '', 'test.append', 'n', $4, '', '', $5, $6, $7)`,
		id, seq+1, at, subject, sealed, prev, plainHash(prev, at, "test.append", "n", subject, []byte("null"))); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// A release runs its migration while the previous release still serves:
// the old binary's appends after the migration must not break the chain.
// They are plain up to the new binary's first append, which marks the
// boundary with the key; after it the database refuses them.
func TestAuditStore_APreviousReleaseAppendingAcrossTheMigrationBreaksNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := beforeKeyed(t, f)
	for i := range 2 {
		if err := previousRelease(ctx, f, "before-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	// The old revision still serves: the migration ran ahead of it.
	if err := previousRelease(ctx, f, "after-migration"); err != nil {
		t.Fatalf("the previous release appending after the migration, before the new one: %v", err)
	}
	a := store.NewAuditStore(f.db, f.crypto)
	// Until the new revision appends, nothing binds the plain entries: verify
	// cannot tell that from a log rewritten without the key, and says both.
	if _, err := a.Verify(ctx); err == nil || !strings.Contains(err.Error(), "no Parley from migration 00026 on has appended yet") {
		t.Fatalf("Verify before the new release appended = %v, want it not keyed yet", err)
	}
	appendN(t, f, a, 2)
	if n, err := a.Verify(ctx); err != nil || n != 6 {
		t.Fatalf("Verify after the rollout = %d, %v; want 3 plain entries, the boundary and 2 keyed", n, err)
	}
	// Now the new revision has appended: a straggling old one is refused,
	// not allowed to put a plain entry above keyed ones.
	if err := previousRelease(ctx, f, "straggler"); err == nil || !strings.Contains(err.Error(), "audit_events is keyed") {
		t.Fatalf("the previous release appending after the new one = %v, want it refused", err)
	}
	appendN(t, f, a, 1)
	if n, err := a.Verify(ctx); err != nil || n != 7 {
		t.Fatalf("Verify after a straggler was refused = %d, %v; want 7", n, err)
	}
}

// rechainPlain rewrites the whole log as a consistent plain SHA-256 chain,
// as someone who owns the tables but holds no key can; drop (if given)
// names entries to cut first, the rest renumbered to close the gap, and
// change (if given) is SQL run on the log before it is rehashed.
func rechainPlain(t *testing.T, f *fixture, drop, change string) {
	t.Helper()
	ctx := context.Background()
	if drop != "" {
		asReplica(t, f, `DELETE FROM audit_events WHERE `+drop)
		asReplica(t, f, `UPDATE audit_events a SET seq = n.rn FROM (SELECT id, row_number() OVER (ORDER BY seq) AS rn FROM audit_events) n WHERE a.id = n.id`)
	}
	if change != "" {
		asReplica(t, f, change)
	}
	var top int64
	if err := f.db.Pool.QueryRow(ctx, `SELECT max(seq) FROM audit_events`).Scan(&top); err != nil {
		t.Fatal(err)
	}
	// Where the boundary was a row, it goes to the top with the rest.
	asReplica(t, f, `DO $$ BEGIN IF to_regclass('audit_chain') IS NOT NULL THEN UPDATE audit_chain SET keyed_after = `+strconv.FormatInt(top, 10)+`; END IF; END $$`)
	var prev []byte
	for seq := int64(1); seq <= top; seq++ {
		var id int64
		var at time.Time
		var action, subjectType, subject string
		var sealed []byte
		if err := f.db.Pool.QueryRow(ctx, `SELECT id, at, action, subject_type, subject_id, details_enc FROM audit_events WHERE seq = $1`, seq).
			Scan(&id, &at, &action, &subjectType, &subject, &sealed); err != nil {
			t.Fatal(err)
		}
		details, err := f.crypto.Ring.Decrypt(sealed, crypt.Ref{Table: "audit_events", Column: "details_enc", ID: id})
		if err != nil {
			t.Fatal(err)
		}
		h := plainHash(prev, at, action, subjectType, subject, details)
		asReplica(t, f, `UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE seq = $3`, prev, h, seq)
		prev = h
	}
}

// Someone who owns the tables moves the boundary between plain and keyed
// entries to the top and rewrites everything as plain SHA-256: plain
// verify, without a checkpoint, must fail.
func TestAuditStore_AMovedBoundaryFailsVerify(t *testing.T) {
	ctx := context.Background()
	upgraded := func(t *testing.T) (*fixture, *store.AuditStore) {
		f := newFixture(t)
		m := beforeKeyed(t, f)
		for i := range 3 {
			if err := previousRelease(ctx, f, strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		a := store.NewAuditStore(f.db, f.crypto)
		appendN(t, f, a, 3)
		if _, err := a.Verify(ctx); err != nil {
			t.Fatal(err)
		}
		return f, a
	}
	for _, tt := range []struct {
		name, drop, change string
		fresh              bool
		want               string
	}{
		{name: "an upgraded log, the boundary's entry cut", drop: `action = 'audit.keyed'`, want: "entry 1: its contents do not match"},
		{name: "an upgraded log, the boundary's entry made an ordinary one", change: `UPDATE audit_events SET action = 'test.append' WHERE action = 'audit.keyed'`,
			want: "entry 1: its contents do not match"},
		{name: "an upgraded log, the boundary's entry kept, plain", want: "entry 4: its contents do not match"},
		{name: "an upgraded log, the boundary's entry moved to the top", change: `UPDATE audit_events SET action = CASE WHEN seq = 7 THEN 'audit.keyed' ELSE 'test.append' END
			WHERE seq = 7 OR action = 'audit.keyed'`, want: "entry 7: its contents do not match"},
		{name: "a log keyed from its start", fresh: true, want: "entry 1: its contents do not match"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var f *fixture
			var a *store.AuditStore
			if tt.fresh {
				f = newFixture(t)
				a = store.NewAuditStore(f.db, f.crypto)
				appendN(t, f, a, 4)
			} else {
				f, a = upgraded(t)
			}
			rechainPlain(t, f, tt.drop, tt.change)
			if _, err := a.Verify(ctx); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify of a log rewritten plain = %v, want %q", err, tt.want)
			}
		})
	}
}

// Verification says how many entries are plain, and a checkpoint carries
// it: a checkpoint kept from before the boundary moved no longer holds.
func TestAuditStore_CheckSaysHowManyEntriesAreUnkeyed(t *testing.T) {
	ctx := context.Background()
	fresh := newFixture(t)
	a := store.NewAuditStore(fresh.db, fresh.crypto)
	appendN(t, fresh, a, 2)
	if got, err := a.Check(ctx); err != nil || got != (store.ChainState{Entries: 2}) {
		t.Fatalf("Check of a log keyed from its start = %+v, %v", got, err)
	}

	f := newFixture(t)
	m := beforeKeyed(t, f)
	for i := range 3 {
		if err := previousRelease(ctx, f, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	a = store.NewAuditStore(f.db, f.crypto)
	appendN(t, f, a, 2)
	if got, err := a.Check(ctx); err != nil || got != (store.ChainState{Entries: 6, Unkeyed: 3}) {
		t.Fatalf("Check of an upgraded log = %+v, %v; want 6 entries, 3 unkeyed", got, err)
	}
	marker, err := a.List(ctx, store.AuditQuery{Action: store.KeyedAction})
	if err != nil || len(marker) != 1 || marker[0].Seq != 4 || marker[0].Details["unkeyed"] != float64(3) {
		t.Fatalf("the boundary's entry = %+v, %v; want one at 4 saying 3", marker, err)
	}
	cp, err := a.Checkpoint(ctx)
	if err != nil || cp.Unkeyed != 3 || !strings.HasSuffix(cp.String(), ":3") {
		t.Fatalf("Checkpoint = %v, %v; want it to carry the 3 unkeyed", cp, err)
	}
	if parsed, err := store.ParseCheckpoint(cp.String()); err != nil || parsed.String() != cp.String() {
		t.Fatalf("ParseCheckpoint(%q) = %v, %v", cp, parsed, err)
	}
	for _, bad := range []string{strings.TrimSuffix(cp.String(), ":3"), strings.TrimSuffix(cp.String(), "3") + "6", strings.TrimSuffix(cp.String(), "3") + "-1"} {
		if _, err := store.ParseCheckpoint(bad); err == nil {
			t.Errorf("ParseCheckpoint(%q) took it", bad)
		}
	}
	if got, err := a.VerifyFrom(ctx, cp); err != nil || got.Unkeyed != 3 {
		t.Fatalf("VerifyFrom = %+v, %v", got, err)
	}
	moved := cp
	moved.Unkeyed = 2
	if _, err := a.VerifyFrom(ctx, moved); err == nil || !strings.Contains(err.Error(), "the boundary moved") {
		t.Fatalf("VerifyFrom a checkpoint with another boundary = %v, want it refused", err)
	}
}
