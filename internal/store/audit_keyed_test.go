package store_test

import (
	"context"
	"crypto/sha256"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// appendN writes n entries (no details) to the log.
func appendN(t *testing.T, f *fixture, a *store.AuditStore, n int) {
	t.Helper()
	for i := range n {
		if err := a.Record(context.Background(), &models.AuditEvent{Action: "test.append", SubjectType: "n", SubjectID: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// asReplica runs sql with the append-only triggers off, as only someone
// who owns the database can.
func asReplica(t *testing.T, f *fixture, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := f.db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, `RESET session_replication_role`) }()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
}

func TestAuditStore_TruncateIsRefused(t *testing.T) {
	f := newFixture(t)
	a := store.NewAuditStore(f.db, f.crypto)
	appendN(t, f, a, 2)
	for _, sql := range []string{`TRUNCATE audit_events`, `UPDATE audit_events SET keyed = false`} {
		if _, err := f.db.Pool.Exec(context.Background(), sql); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only refusal", sql, err)
		}
	}
	if n, err := a.Verify(context.Background()); err != nil || n != 2 {
		t.Fatalf("Verify = %d, %v; want the 2 entries intact", n, err)
	}
}

// plainHash is how the chain was hashed before it was keyed: anyone who
// can write the table can compute it.
func plainHash(prev []byte, at time.Time, action, subjectType, subjectID string, details []byte) []byte {
	h := sha256.New()
	for _, part := range [][]byte{prev, []byte(at.UTC().Format(time.RFC3339Nano)), nil, []byte(action), []byte(subjectType), []byte(subjectID), details} {
		h.Write([]byte(strconv.Itoa(len(part)) + ":"))
		h.Write(part)
	}
	return h.Sum(nil)
}

// Someone who can write the table but holds no key edits an entry and
// recomputes every hash after it, consistently: the chain must not verify.
func TestAuditStore_ARewrittenChainFailsVerify(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := store.NewAuditStore(f.db, f.crypto)
	appendN(t, f, a, 4)
	rows, err := f.db.Pool.Query(ctx, `SELECT seq, at, action, subject_type, subject_id FROM audit_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		seq                          int64
		at                           time.Time
		action, subjectType, subject string
	}
	var all []entry
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.seq, &e.at, &e.action, &e.subjectType, &e.subject); err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	rows.Close()
	all[1].subject = "someone-else"
	var prev []byte
	for _, e := range all {
		h := plainHash(prev, e.at, e.action, e.subjectType, e.subject, []byte("null"))
		asReplica(t, f, `UPDATE audit_events SET subject_id = $1, prev_hash = $2, hash = $3 WHERE seq = $4`, e.subject, prev, h, e.seq)
		prev = h
	}
	_, err = a.Verify(ctx)
	if err == nil || !strings.Contains(err.Error(), "entry 1: its contents do not match") {
		t.Fatalf("Verify of a chain rewritten without the key = %v, want it broken at entry 1", err)
	}
}

func TestAuditStore_CheckpointHoldsTheChainToIt(t *testing.T) {
	ctx := context.Background()
	t.Run("a cut tail", func(t *testing.T) {
		f := newFixture(t)
		a := store.NewAuditStore(f.db, f.crypto)
		appendN(t, f, a, 6)
		cp, err := a.Checkpoint(ctx)
		if err != nil || cp.Seq != 6 {
			t.Fatalf("Checkpoint = %v, %v; want the head at 6", cp, err)
		}
		parsed, err := store.ParseCheckpoint(cp.String())
		if err != nil || parsed.String() != cp.String() {
			t.Fatalf("ParseCheckpoint(%q) = %v, %v", cp, parsed, err)
		}
		asReplica(t, f, `DELETE FROM audit_events WHERE seq > 4`)
		if n, err := a.Verify(ctx); err != nil || n != 4 {
			t.Fatalf("Verify without the checkpoint = %d, %v: a cut tail is expected to pass it", n, err)
		}
		if _, err := a.VerifyFrom(ctx, parsed); err == nil || !strings.Contains(err.Error(), "ends at entry 4, before the checkpoint at 6") {
			t.Fatalf("VerifyFrom after a cut = %v, want the cut named", err)
		}
	})
	t.Run("a change before it, re-chained with the key", func(t *testing.T) {
		f := newFixture(t)
		a := store.NewAuditStore(f.db, f.crypto)
		appendN(t, f, a, 6)
		cp, err := a.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, f, a, 2) // entries after the checkpoint are fine
		if got, err := a.VerifyFrom(ctx, cp); err != nil || got.Entries != 8 {
			t.Fatalf("VerifyFrom of an intact log = %+v, %v", got, err)
		}
		// The whole log replaced by a consistent one written through the
		// store itself (by someone holding the key).
		asReplica(t, f, `DELETE FROM audit_events`)
		for i := range 8 {
			if err := a.Record(ctx, &models.AuditEvent{Action: "test.append", SubjectType: "n", SubjectID: "forged-" + strconv.Itoa(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Verify(ctx); err != nil {
			t.Fatalf("Verify of the forged log = %v: it is consistent, only the checkpoint can tell", err)
		}
		if _, err := a.VerifyFrom(ctx, cp); err == nil || !strings.Contains(err.Error(), "does not match the checkpoint: entry 6's MAC") {
			t.Fatalf("VerifyFrom of a forged log = %v, want the checkpoint's MAC not found", err)
		}
	})
}

func TestAuditStore_ReadsAreRecordedOncePerWindow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	staff := store.NewStaffStore(f.db)
	ann, err := staff.Create(ctx, "", "ann@example.org", models.RoleAgent, "")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := staff.Create(ctx, "", "bob@example.org", models.RoleAgent, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	a := store.NewAuditStore(f.db, f.crypto)
	a.Now = func() time.Time { return now }
	// A second instance sees the first's entry: the database decides.
	other := store.NewAuditStore(f.db, f.crypto)
	other.Now = a.Now
	read := func(s *store.AuditStore, who *models.StaffUser, contact string) {
		t.Helper()
		if err := s.Record(ctx, &models.AuditEvent{ActorID: who.ID, ActorRole: who.Role, Action: "contact.view", SubjectType: "contact", SubjectID: contact}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(who *models.StaffUser, contact string) int {
		t.Helper()
		entries, err := a.List(ctx, store.AuditQuery{ActorEmail: who.Email, Action: "contact.view", SubjectID: contact, Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	read(a, ann, "7")
	now = now.Add(5 * time.Second)
	read(other, ann, "7")
	now = now.Add(4 * time.Minute)
	read(a, ann, "7")
	if n := count(ann, "7"); n != 1 {
		t.Fatalf("reads within the window: %d entries, want 1", n)
	}
	read(a, ann, "8") // another subject
	read(a, bob, "7") // another member
	if count(ann, "8") != 1 || count(bob, "7") != 1 {
		t.Fatalf("another subject or member: %d, %d entries; want 1 each", count(ann, "8"), count(bob, "7"))
	}
	now = now.Add(store.ReadWindow)
	read(a, ann, "7")
	if n := count(ann, "7"); n != 2 {
		t.Fatalf("a read after the window: %d entries, want 2", n)
	}
	// Other actions are not reads: each is recorded.
	for range 2 {
		if err := a.Record(ctx, &models.AuditEvent{ActorID: ann.ID, Action: "contact.reveal_phone", SubjectType: "contact", SubjectID: "7"}); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := a.List(ctx, store.AuditQuery{Action: "contact.reveal_phone"}); len(entries) != 2 {
		t.Fatalf("reveals: %d entries, want 2", len(entries))
	}
	if n, err := a.Verify(ctx); err != nil || n != 6 {
		t.Fatalf("Verify = %d, %v; want 6", n, err)
	}
}

// Failed sign-ins come from anyone: they are counted outside the chain,
// bounded, without the chain's lock and without the typed email.
func TestAuditStore_SignInFailuresAreBoundedAndUnchained(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := store.NewAuditStore(f.db, f.crypto)
	// Within one window of counting, whatever the wall clock: failures
	// astride a window's end count in more rows.
	at := time.Now().Truncate(store.SignInWindow).Add(store.SignInWindow / 2)
	a.Now = func() time.Time { return at }
	appendN(t, f, a, 1)
	// Another transaction holds the chain's lock for as long as the test runs.
	holder, err := f.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(ctx) }()
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_xact_lock(7212002)`); err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("x", 200<<10) + "@example.org"
	// A bound, not a timing: were the lock taken, this would fail on it.
	bounded, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i := range 20 {
		if err := a.SignInFailed(bounded, huge, "console", "192.0.2.7", i >= 10); err != nil {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if err := a.SignInFailed(bounded, "Ann@Example.org", "console", strings.Repeat("9", 500), false); err != nil {
		t.Fatal(err)
	}
	_ = holder.Rollback(ctx)
	var rows, biggest, events int
	if err := f.db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(max(pg_column_size(f.*)), 0) FROM sign_in_failures f`).Scan(&rows, &biggest); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if rows != 2 || biggest > 300 || events != 1 {
		t.Fatalf("21 failures: %d rows (want 2), the biggest %d bytes (want ≤ 300), %d chain entries (want 1)", rows, biggest, events)
	}
	got, err := a.SignInFailures(ctx, time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var hugeRow *store.SignInFailure
	for i := range got {
		if got[i].EmailFingerprint == a.Fingerprint(huge) {
			hugeRow = &got[i]
		}
	}
	if hugeRow == nil || hugeRow.Attempts != 20 || hugeRow.Throttled != 10 {
		t.Fatalf("the huge email's window = %+v, want 20 attempts, 10 throttled", hugeRow)
	}
	var leaked bool
	if err := f.db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sign_in_failures f WHERE f::text ILIKE '%example.org%' OR f::text ILIKE '%xxxx%')`).Scan(&leaked); err != nil || leaked {
		t.Fatalf("the typed email is kept: %v, %v", leaked, err)
	}
}

// What an audited change does and its entry commit together or not at all.
func TestAuditStore_WithinRollsTheChangeBackWhenTheEntryFails(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	staff := store.NewStaffStore(f.db)
	a := store.NewAuditStore(f.db, f.crypto)
	if _, err := f.db.Pool.Exec(ctx, `CREATE FUNCTION refuse_test() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit refused for the test'; END; $$;
		CREATE TRIGGER refuse_test BEFORE INSERT ON audit_events FOR EACH ROW WHEN (NEW.action = 'staff.create') EXECUTE FUNCTION refuse_test();`); err != nil {
		t.Fatal(err)
	}
	err := a.Within(ctx, &models.AuditEvent{Action: "staff.create", SubjectType: "staff"}, func(tx *gorm.DB) error {
		_, err := staff.CreateIn(ctx, tx, "", "cat@example.org", models.RoleAgent, "")
		return err
	})
	if err == nil {
		t.Fatal("Within succeeded though its entry was refused")
	}
	if _, _, err := staff.ByEmail(ctx, "cat@example.org"); models.ErrorCode(err) != models.ENOTFOUND {
		t.Fatalf("the staff member was made though the audit failed: %v", err)
	}
}

// A log written before the chain was keyed keeps verifying after the
// upgrade: its entries as SHA-256, the ones after as HMAC; and the first
// keyed entry links to the last plain one, so the old part is covered.
func TestAuditStore_EntriesBeforeTheKeyStillVerify(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m, err := store.NewMigrator(f.db.SQL)
	if err != nil {
		t.Fatal(err)
	}
	// Down past the later migrations to just before the keyed chain.
	for undone := ""; !strings.Contains(undone, "00026"); {
		if undone, err = m.Down(ctx); err != nil || undone == "" {
			t.Fatalf("down to before the keyed chain: %q, %v", undone, err)
		}
	}
	// Three entries as the store wrote them before: plain SHA-256.
	var prev []byte
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 3 {
		id, seq := int64(1_000_001+i), int64(i+1)
		sealed := f.crypto.Ring.Encrypt([]byte("null"), crypt.Ref{Table: "audit_events", Column: "details_enc", ID: id})
		h := plainHash(prev, at, "legacy", "n", strconv.Itoa(i), []byte("null"))
		if _, err := f.db.Pool.Exec(ctx, `INSERT INTO audit_events (id, seq, at, action, subject_type, subject_id, details_enc, prev_hash, hash)
			VALUES ($1, $2, $3, 'legacy', 'n', $4, $5, $6, $7)`, id, seq, at, strconv.Itoa(i), sealed, prev, h); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	a := store.NewAuditStore(f.db, f.crypto)
	appendN(t, f, a, 2)
	if n, err := a.Verify(ctx); err != nil || n != 6 {
		t.Fatalf("Verify across the upgrade = %d, %v; want 3 plain, the boundary and 2 keyed", n, err)
	}
	// The old part rewritten consistently in its own (plain) hash: the
	// first keyed entry no longer links to it.
	prev = nil
	for i := range 3 {
		subject := strconv.Itoa(i)
		if i == 1 {
			subject = "someone-else"
		}
		h := plainHash(prev, at, "legacy", "n", subject, []byte("null"))
		asReplica(t, f, `UPDATE audit_events SET subject_id = $1, prev_hash = $2, hash = $3 WHERE seq = $4`, subject, prev, h, i+1)
		prev = h
	}
	if _, err := a.Verify(ctx); err == nil || !strings.Contains(err.Error(), "entry 4: it does not link") {
		t.Fatalf("Verify after the old part was rewritten = %v, want the first keyed entry's link broken", err)
	}
}

// Someone trying a list of addresses grows no table: past a bound the
// emails of a window are counted together, and old windows go.
func TestAuditStore_SignInFailuresOfManyEmailsAreCountedTogether(t *testing.T) {
	defer store.SetSignInWindowRows(3)()
	f := newFixture(t)
	ctx := context.Background()
	a := store.NewAuditStore(f.db, f.crypto)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	a.Now = func() time.Time { return now }
	for i := range 10 {
		if err := a.SignInFailed(ctx, "user"+strconv.Itoa(i)+"@example.org", "console", "192.0.2.7", false); err != nil {
			t.Fatal(err)
		}
	}
	// One of the first three again: still counted on its own row.
	if err := a.SignInFailed(ctx, "user1@example.org", "console", "192.0.2.7", false); err != nil {
		t.Fatal(err)
	}
	got, err := a.SignInFailures(ctx, time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	attempts := map[string]int{}
	for _, r := range got {
		attempts[r.EmailFingerprint] = r.Attempts
	}
	if len(got) != 4 || attempts[a.Fingerprint("user1@example.org")] != 2 || attempts[strings.Repeat("00", 8)] != 7 {
		t.Fatalf("10 emails over a bound of 3: %+v; want 3 rows of their own (user1 twice) and one of the other 7", attempts)
	}
	now = now.Add(store.SignInKeep + time.Hour)
	if err := a.SignInFailed(ctx, "later@example.org", "api", "192.0.2.7", false); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.SignInFailures(ctx, time.Time{}, 100); len(got) != 1 {
		t.Fatalf("after the keep: %d rows, want only the new one", len(got))
	}
}
