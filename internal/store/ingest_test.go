package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

func (f *fixture) ingest(t *testing.T, items ...store.IngestItem) ([]store.IngestResult, error) {
	t.Helper()
	var results []store.IngestResult
	err := pgx.BeginFunc(context.Background(), f.db.Pool, func(tx pgx.Tx) error {
		var err error
		results, err = store.NewIngestor(f.db, f.crypto).Write(context.Background(), tx, items)
		return err
	})
	return results, err
}

func (f *fixture) countRows(t *testing.T, sql string) int {
	t.Helper()
	var n int
	if err := f.db.Pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func item(id, from, body string) store.IngestItem {
	return store.IngestItem{From: from, Provider: "twilio", ProviderMessageID: id, Body: body}
}

func TestIngestor_StoresOnceAndFindsContactsByTheirNumber(t *testing.T) {
	f := newFixture(t)
	known := f.contact(t, "+919876543210", "")
	named := item("SM3", "whatsapp:+14155550100", "hola")
	named.ProfileName = "Lucía Gómez"
	results, err := f.ingest(t, item("SM1", "+91 98765 43210", "hi"), item("SM2", "+14155550100", "first"), named, item("SM4", "+14155550100", "second"))
	if err != nil {
		t.Fatal(err)
	}
	if !results[0].Inserted || results[0].ContactID != known.ID {
		t.Fatalf("result %+v: want the message stored for the existing contact %d", results[0], known.ID)
	}
	if results[1].ContactID == 0 || results[1].ContactID != results[3].ContactID || results[2].ContactID == results[1].ContactID {
		t.Fatalf("results %+v: want one new SMS contact for SM2 and SM4, another for WhatsApp", results)
	}
	if n := f.countRows(t, `SELECT count(*) FROM contacts`); n != 3 {
		t.Fatalf("%d contacts, want 3", n)
	}
	wa, err := f.contacts.Get(context.Background(), results[2].ContactID)
	if err != nil || wa.Address != "+14155550100" {
		t.Fatalf("WhatsApp contact = %+v, %v", wa, err)
	}
	// The profile name stays with its message; processing names the contact.
	if m, err := f.messages.Get(context.Background(), results[2].MessageID); err != nil || m.ProfileName != "Lucía Gómez" {
		t.Fatalf("the named message = %+v, %v", m, err)
	}
	m, err := f.messages.Get(context.Background(), results[3].MessageID)
	if err != nil || m.Body != "second" || m.ContactID != results[1].ContactID {
		t.Fatalf("message = %+v, %v", m, err)
	}

	// A replay is acknowledged and stored nothing; a new one among replays is.
	again, err := f.ingest(t, item("SM1", "+919876543210", "hi"), item("SM5", "+919876543210", "new"))
	if err != nil || again[0].Inserted || !again[1].Inserted || again[1].ContactID != known.ID {
		t.Fatalf("replay = %+v, %v", again, err)
	}
	if n := f.countRows(t, `SELECT count(*) FROM messages`); n != 5 {
		t.Fatalf("%d messages, want 5", n)
	}
}

func TestIngestor_ConcurrentBatchesMakeOneContactPerNumber(t *testing.T) {
	f := newFixture(t)
	const batches = 12
	var wg sync.WaitGroup
	errs := make([]error, batches)
	for b := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var items []store.IngestItem
			for c := range 5 { // the same five numbers in every batch, in different orders
				n := (b + c) % 5
				items = append(items, item(fmt.Sprintf("SM%d-%d", b, n), fmt.Sprintf("+1415555010%d", n), "x"))
			}
			_, errs[b] = f.ingest(t, items...)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.countRows(t, `SELECT count(*) FROM contacts`); n != 5 {
		t.Fatalf("%d contacts, want 5", n)
	}
	if n := f.countRows(t, `SELECT count(DISTINCT contact_id) FROM messages`); n != 5 || f.countRows(t, `SELECT count(*) FROM messages`) != 5*batches {
		t.Fatalf("messages over %d contacts; want %d messages over 5", n, 5*batches)
	}
}

func TestIngestor_RefusesAMessageWhoseIndexMatchesAnotherNumber(t *testing.T) {
	f := newFixture(t)
	other := f.contact(t, "+14155550199", "")
	victim := f.contact(t, "+14155550100", "")
	// Make the other contact's row carry the victim's blind index, as a
	// collision of the truncated index would (the victim's row moves away).
	ctx := context.Background()
	if _, err := f.db.Pool.Exec(ctx, `UPDATE contacts SET address_bidx = 'moved' WHERE id = $1`, victim.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Pool.Exec(ctx, `UPDATE contacts SET address_bidx = $2 WHERE id = $1`, other.ID, f.crypto.Index.Exact(crypt.DomainAddress, "+14155550100")); err != nil {
		t.Fatal(err)
	}
	_, err := f.ingest(t, item("SM1", "+14155550100", "whose is this?"))
	if models.ErrorCode(err) != models.ECONFLICT {
		t.Fatalf("Write = %v, want ECONFLICT", err)
	}
	if n := f.countRows(t, `SELECT count(*) FROM messages`); n != 0 {
		t.Fatalf("%d messages stored under the wrong contact", n)
	}
}

// TestIngestor_NotHeldUpByTheContactsProcessing stores a message for a
// contact whose processing holds its row lock: the insert's foreign-key
// check must not wait for that transaction.
func TestIngestor_NotHeldUpByTheContactsProcessing(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "+14155550100", "")
	ctx := context.Background()
	err := f.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := f.contacts.LockContact(ctx, tx, c.ID); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return pgx.BeginFunc(wctx, f.db.Pool, func(ptx pgx.Tx) error {
			_, err := store.NewIngestor(f.db, f.crypto).Write(wctx, ptx, []store.IngestItem{item("SM1", "+14155550100", "while processing")})
			return err
		})
	})
	if err != nil {
		t.Fatalf("storing a message while its contact is locked for processing: %v", err)
	}
}

// TestIngestor_ABatchKeepsArrivalOrder: without a platform timestamp a
// contact's messages are processed in id order, so ids follow arrival
// order within a batch, whatever order the rows are written in.
func TestIngestor_ABatchKeepsArrivalOrder(t *testing.T) {
	f := newFixture(t)
	if _, err := f.ingest(t, item("SMzz", "+14155550100", "first"), item("SMaa", "+14155550100", "second"), item("SMmm", "+14155550100", "third")); err != nil {
		t.Fatal(err)
	}
	var contactID int64
	if err := f.db.Pool.QueryRow(context.Background(), `SELECT id FROM contacts`).Scan(&contactID); err != nil {
		t.Fatal(err)
	}
	msgs, err := f.messages.Unprocessed(context.Background(), nil, contactID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.Body)
	}
	if fmt.Sprint(got) != "[first second third]" {
		t.Fatalf("processing order %v, want arrival order", got)
	}
}

// Processing holds the contact's row lock for the length of its
// transaction; a webhook for that contact, profile name and all, must be
// stored meanwhile without waiting for it.
func TestIngestor_NeverWaitsOnAContactBeingProcessed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.contact(t, "whatsapp:+14155550100", "")
	lock, err := f.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	if _, err := lock.Exec(ctx, `SELECT 1 FROM contacts WHERE id = $1 FOR NO KEY UPDATE`, c.ID); err != nil {
		t.Fatal(err)
	}
	named := item("SM1", "whatsapp:+14155550100", "hola")
	named.ProfileName = "Lucía Gómez"
	// Without the fix this waits on the lock until the deadline.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tx, err := f.db.Pool.Begin(wctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	results, err := store.NewIngestor(f.db, f.crypto).Write(wctx, tx, []store.IngestItem{named})
	if err != nil {
		t.Fatalf("ingest while the contact is locked: %v", err)
	}
	if err := tx.Commit(wctx); err != nil {
		t.Fatal(err)
	}
	if !results[0].Inserted || results[0].ContactID != c.ID {
		t.Fatalf("result %+v", results[0])
	}
}
