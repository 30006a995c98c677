package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// writeIn stores inbound messages as a webhook does, through one ingestor
// (as a process has one).
func (f *fixture) writeIn(t *testing.T, in *store.Ingestor, items ...store.IngestItem) []store.IngestResult {
	t.Helper()
	var results []store.IngestResult
	err := pgx.BeginFunc(context.Background(), f.db.Pool, func(tx pgx.Tx) error {
		var err error
		results, err = in.Write(context.Background(), tx, items)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return results
}

// timeline is the contact's messages as the console reads them, oldest
// first, paged by size.
func (f *fixture) timeline(t *testing.T, contactID int64, size int) []string {
	t.Helper()
	var bodies []string
	var before int64
	for {
		page, err := f.messages.ForContact(context.Background(), contactID, before, size)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			bodies = append(bodies, m.Body)
		}
		if len(page) < size {
			break
		}
		before = page[len(page)-1].Seq
	}
	slices.Reverse(bodies)
	return bodies
}

// A conversation of several turns reads in the order it happened, on every
// page: not the person's messages first and the replies after (their ids
// come from different blocks).
func TestMessageStore_ForContact_TurnsInTheOrderTheyHappened(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in := store.NewIngestor(f.db, f.crypto)
	var want []string
	var contactID int64
	for turn, said := range []string{"hi", "Asha", "34", "knee", "thanks"} {
		r := f.writeIn(t, in, item("SM"+said, "+919876543210", said))
		contactID = r[0].ContactID
		replies := []*models.Message{{ContactID: contactID, Channel: models.ChannelSMS, Provider: "twilio", Body: "reply to " + said, Status: models.StatusQueued}}
		if turn == 4 {
			replies = append(replies, &models.Message{ContactID: contactID, Channel: models.ChannelSMS, Provider: "twilio", Body: "goodbye", Status: models.StatusQueued})
		}
		if err := f.messages.InsertReplies(ctx, nil, replies); err != nil {
			t.Fatal(err)
		}
		want = append(want, said)
		for _, r := range replies {
			want = append(want, r.Body)
		}
	}
	for _, size := range []int{50, 4} {
		if got := f.timeline(t, contactID, size); !slices.Equal(got, want) {
			t.Errorf("pages of %d read\n%q\nwant\n%q", size, got, want)
		}
	}
	// The contact's export reads the same way, oldest first.
	exp, err := f.contacts.Export(ctx, contactID)
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, m := range exp.Messages {
		exported = append(exported, m.Body)
	}
	if !slices.Equal(exported, want) {
		t.Errorf("the export reads\n%q\nwant\n%q", exported, want)
	}
}

// The messages of one write are placed by the platform's time where it
// gave one, then by arrival, whatever their ids and provider ids.
func TestIngestor_PlacesAWriteByProviderTimeThenArrival(t *testing.T) {
	f := newFixture(t)
	in := store.NewIngestor(f.db, f.crypto)
	at := func(s int) *time.Time { t := time.Date(2026, 12, 7, 4, 0, s, 0, time.UTC); return &t }
	second, first := item("wamid.A", "whatsapp:+919876543210", "second"), item("wamid.B", "whatsapp:+919876543210", "first")
	second.Provider, first.Provider = "meta", "meta"
	second.ProviderTime, first.ProviderTime = at(2), at(1)
	r := f.writeIn(t, in, item("SM9", "+14155550100", "one"), second, item("SM1", "+14155550100", "two"), first, item("SM5", "+14155550100", "three"))
	if got := f.timeline(t, r[1].ContactID, 50); !slices.Equal(got, []string{"first", "second"}) {
		t.Errorf("WhatsApp contact read %q; want by the platform's time", got)
	}
	if got := f.timeline(t, r[0].ContactID, 50); !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Errorf("SMS contact read %q; want by arrival", got)
	}
}

// Messages stored before they carried their place are placed in the order
// they were written, and the first written after goes after them.
func TestMigration_PlacesExistingMessagesInTheOrderWritten(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m, err := store.NewMigrator(f.db.SQL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Down(ctx); err != nil { // before 00025
		t.Fatal(err)
	}
	// Five turns as the two allocators wrote them: the person's messages
	// 1-5, the replies 65-70, each written a second after what it answers.
	if _, err := f.db.Pool.Exec(ctx, `INSERT INTO contacts (id, channel, address_enc, address_bidx) VALUES (1, 'sms', '\x00', '\x00')`); err != nil {
		t.Fatal(err)
	}
	var want []int64
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for turn := range 5 {
		in, out := int64(turn+1), int64(65+turn)
		want = append(want, in, out)
		at := t0.Add(time.Duration(turn) * time.Minute)
		if _, err := f.db.Pool.Exec(ctx, `INSERT INTO messages (id, contact_id, direction, channel, provider, status, created_at)
			VALUES ($1, 1, 'in', 'sms', 'twilio', 'processed', $3), ($2, 1, 'out', 'sms', 'twilio', 'delivered', $3::timestamptz + interval '1 second')`,
			in, out, at); err != nil {
			t.Fatal(err)
		}
	}
	// The last turn's second reply, written with the first.
	if _, err := f.db.Pool.Exec(ctx, `INSERT INTO messages (id, contact_id, direction, channel, provider, status, created_at)
		SELECT 70, 1, 'out', 'sms', 'twilio', 'delivered', created_at FROM messages WHERE id = 69`); err != nil {
		t.Fatal(err)
	}
	want = append(want, 70)
	if _, err := f.db.Pool.Exec(ctx, `SELECT setval(pg_get_serial_sequence('messages', 'id'), 1000)`); err != nil { // as the allocators would have
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	after := &models.Message{ContactID: 1, Channel: models.ChannelSMS, Provider: "twilio", Body: "written after", Status: models.StatusQueued}
	if err := f.messages.InsertReplies(ctx, nil, []*models.Message{after}); err != nil {
		t.Fatal(err)
	}
	want = append(want, after.ID)
	page, err := f.messages.ForContact(ctx, 1, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, m := range slices.Backward(page) {
		got = append(got, m.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ids in the order read: %v; want %v", got, want)
	}
}

// A contact's replies leave in the order they were placed, whichever
// instance wrote them and whatever its clock said: the one written first
// holds up the next even when its instance's clock ran ahead.
func TestMessageStore_LockOutbound_EarlierByPlaceNotClock(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "+14155550100", "")
	ctx := context.Background()
	first := &models.Message{ContactID: c.ID, Channel: c.Channel, Provider: "twilio", Body: "one", Status: models.StatusQueued}
	second := &models.Message{ContactID: c.ID, Channel: c.Channel, Provider: "twilio", Body: "two", Status: models.StatusQueued}
	for _, m := range []*models.Message{first, second} {
		if err := f.messages.InsertReplies(ctx, nil, []*models.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	// The first one's instance stamped it a second ahead of the other's.
	if _, err := f.db.Pool.Exec(ctx, `UPDATE messages SET created_at = created_at + interval '1 second' WHERE id = $1`, first.ID); err != nil {
		t.Fatal(err)
	}
	if st, err := f.messages.LockOutbound(ctx, nil, second.ID, 5*time.Minute, nil); err != nil || !st.Waiting {
		t.Fatalf("the second reply: %+v, %v; want it waiting for the first", st, err)
	}
	if st, err := f.messages.LockOutbound(ctx, nil, first.ID, 5*time.Minute, nil); err != nil || st.Waiting {
		t.Fatalf("the first reply: %+v, %v; want it free to leave", st, err)
	}
}

// Two instances (two pools, each with its own blocks of ids) writing for
// one contact: what one writes after the other's write committed is placed
// after it, and writes at the same moment never share a place.
func TestMessageStore_TwoInstancesPlaceOneContactsMessages(t *testing.T) {
	dsn := pgtest.DSN(t)
	var instances [2]*fixture
	for i := range instances {
		db, err := store.Open(context.Background(), dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		c := newCrypto(t)
		if i > 0 {
			c = instances[0].crypto
		}
		instances[i] = &fixture{db: db, crypto: c, contacts: store.NewContactStore(db, c), messages: store.NewMessageStore(db, c)}
	}
	a, b := instances[0], instances[1]
	ctx := context.Background()
	// The person writes through one, the answers come from the other.
	in := store.NewIngestor(a.db, a.crypto)
	var want []string
	var contactID int64
	for turn := range 4 {
		said := fmt.Sprintf("message %d", turn)
		contactID = a.writeIn(t, in, item(fmt.Sprintf("SM%d", turn), "+919876543210", said))[0].ContactID
		answer := &models.Message{ContactID: contactID, Channel: models.ChannelSMS, Provider: "twilio", Body: "answer to " + said, Status: models.StatusQueued}
		if err := b.messages.InsertReplies(ctx, nil, []*models.Message{answer}); err != nil {
			t.Fatal(err)
		}
		want = append(want, said, answer.Body)
	}
	if got := a.timeline(t, contactID, 50); !slices.Equal(got, want) {
		t.Errorf("read\n%q\nwant\n%q", got, want)
	}
	// Both answer at once, many times over.
	var wg sync.WaitGroup
	for _, inst := range instances {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					m := &models.Message{ContactID: contactID, Channel: models.ChannelSMS, Provider: "twilio", Body: "at once", Status: models.StatusQueued}
					if err := inst.messages.InsertReplies(ctx, nil, []*models.Message{m, {ContactID: contactID, Channel: models.ChannelSMS, Provider: "twilio", Body: "at once", Status: models.StatusQueued}}); err != nil {
						t.Error(err)
					}
				}
			}()
		}
	}
	wg.Wait()
	var n, places int
	if err := a.db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT seq) FROM messages WHERE contact_id = $1`, contactID).Scan(&n, &places); err != nil {
		t.Fatal(err)
	}
	if n != 8+2*4*5*2 || places != n {
		t.Fatalf("%d messages in %d places; want %d, each in its own", n, places, 8+2*4*5*2)
	}
}
