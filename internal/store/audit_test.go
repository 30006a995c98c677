package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Two audit stores are two instances: each reserves its own blocks of ids,
// so their entries interleave out of id order. The chain must still be one.
func TestAuditStore_ManyAppendsFromTwoInstancesFormOneChain(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	instances := []*store.AuditStore{store.NewAuditStore(f.db, f.crypto), store.NewAuditStore(f.db, f.crypto)}
	const each = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for n, a := range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				err := f.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
					return a.Append(ctx, tx, &models.AuditEvent{Action: "test.append", SubjectType: "instance", SubjectID: fmt.Sprint(n),
						Details: map[string]any{"i": i}})
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append: %v", err)
	}
	var outOfOrder int
	if err := f.db.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT id < lag(id) OVER (ORDER BY seq) AS back FROM audit_events) x WHERE back`).Scan(&outOfOrder); err != nil {
		t.Fatal(err)
	}
	if outOfOrder == 0 {
		t.Log("ids happened to follow the chain order; the test still checks the chain")
	}
	checked, err := instances[0].Verify(ctx)
	if err != nil || checked != 2*each {
		t.Fatalf("Verify = %d, %v; want %d, nil", checked, err, 2*each)
	}
}

// An entry appended with no transaction of the caller's (a read of a
// broadcast) takes its place in the chain under the chain's lock like any
// other: appended beside one another they never claim the same place
// (the lock taken outside a transaction ended with its own statement, and
// a broadcast round appending at the same time failed on the duplicate).
func TestAuditStore_AppendsWithoutATransactionFormOneChain(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := store.NewAuditStore(f.db, f.crypto)
	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for n := range writers {
		wg.Go(func() {
			for i := range each {
				if err := a.Append(ctx, nil, &models.AuditEvent{Action: "test.read", SubjectType: "writer", SubjectID: fmt.Sprint(n),
					Details: map[string]any{"i": i}}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append: %v", err)
	}
	checked, err := a.Verify(ctx)
	if err != nil || checked != writers*each {
		t.Fatalf("Verify = %d, %v; want %d, nil", checked, err, writers*each)
	}
}

func TestAuditStore_VerifyFindsATamperedChain(t *testing.T) {
	tests := []struct {
		label  string
		tamper string
		want   string
	}{
		{"an entry removed", `DELETE FROM audit_events WHERE seq = 3`, "entry 3 is missing"},
		{"an entry edited", `UPDATE audit_events SET subject_id = 'someone-else' WHERE seq = 4`, "entry 4: its contents do not match"},
		{"an address edited", `UPDATE audit_events SET ip = '10.9.9.9' WHERE seq = 5`, "entry 5: its contents do not match"},
		{"a role edited", `UPDATE audit_events SET actor_role = 'admin' WHERE seq = 2`, "entry 2: its contents do not match"},
		{"entries reordered", `UPDATE audit_events SET seq = -seq WHERE seq IN (2, 5); UPDATE audit_events SET seq = CASE seq WHEN -2 THEN 5 ELSE 2 END WHERE seq < 0`, "entry 2: it does not link"},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			a := store.NewAuditStore(f.db, f.crypto)
			for i := range 6 {
				if err := f.db.Gorm.Transaction(func(tx *gorm.DB) error {
					return a.Append(ctx, tx, &models.AuditEvent{Action: "test.append", SubjectType: "n", SubjectID: fmt.Sprint(i),
						ActorRole: models.RoleAgent, RequestID: fmt.Sprintf("req-%d", i), IP: "192.0.2.7"})
				}); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := a.Verify(ctx); err != nil || n != 6 {
				t.Fatalf("before tampering: Verify = %d, %v", n, err)
			}
			// Only someone who can switch the append-only trigger off can do this.
			conn, err := f.db.Pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, tt.tamper); err != nil {
				t.Fatal(err)
			}
			_, _ = conn.Exec(ctx, `RESET session_replication_role`)
			_, err = a.Verify(ctx)
			if err == nil || !strings.Contains(models.ErrorMessage(err)+err.Error(), tt.want) {
				t.Fatalf("Verify after tampering = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestAuditStore_TriggerRefusesChangesButReencryption(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := store.NewAuditStore(f.db, f.crypto)
	if err := f.db.Gorm.Transaction(func(tx *gorm.DB) error {
		return a.Append(ctx, tx, &models.AuditEvent{Action: "test.append"})
	}); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{`UPDATE audit_events SET seq = 7`, `UPDATE audit_events SET action = 'x'`, `DELETE FROM audit_events`} {
		if _, err := f.db.Pool.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only refusal", sql, err)
		}
	}
	if _, err := f.db.Pool.Exec(ctx, `UPDATE audit_events SET details_enc = details_enc`); err != nil {
		t.Errorf("re-encrypting details refused: %v", err)
	}
}
