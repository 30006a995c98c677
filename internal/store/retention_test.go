package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
	"github.com/parley-chat/parley/models"
)

// retained is a person's data in every personal column Parley has: a
// named contact, a message with a profile name, its words and an
// attachment (reference, bytes, transcript), a conversation with variables
// and a pending AI request, and an event carrying the number and words.
type retained struct {
	contact      *models.Contact
	message      int64
	media        int64
	conversation int64
}

func (f *fixture) retained(t *testing.T, address, name, body string, conv models.ConversationStatus) *retained {
	t.Helper()
	ctx := context.Background()
	r := &retained{contact: f.contact(t, address, name)}
	m := storetest.Inbound(t, f.db, f.crypto, r.contact, body)
	m.ProfileName = name
	r.message = m.ID
	// As ingest seals it (Insert keeps no profile name).
	if _, err := f.db.Pool.Exec(ctx, `UPDATE messages SET profile_name_enc = $2 WHERE id = $1`, m.ID,
		f.crypto.Ring.EncryptString(name, crypt.Ref{Table: "messages", Column: "profile_name_enc", ID: m.ID})); err != nil {
		t.Fatal(err)
	}
	if err := f.messages.IndexWords(ctx, nil, m); err != nil {
		t.Fatal(err)
	}
	media := store.NewMediaStore(f.db, f.crypto)
	var err error
	if r.media, err = media.Add(ctx, nil, m.ID, 0, "https://api.twilio.com/media/"+body, "audio/ogg"); err != nil {
		t.Fatal(err)
	}
	if err := media.Save(ctx, r.media, "audio/ogg", []byte("voice of "+body)); err != nil {
		t.Fatal(err)
	}
	if err := media.Understand(ctx, r.media, "transcript "+body, "en"); err != nil {
		t.Fatal(err)
	}
	c := &models.Conversation{ContactID: r.contact.ID, FlowID: "clinic", FlowVersion: "v1", Node: "ask_age", Status: conv,
		Variables: map[string]string{"name": name}, Pending: []byte(`{"text":"` + body + `"}`)}
	if err := store.NewConversationStore(f.db, f.crypto).Save(ctx, nil, c); err != nil {
		t.Fatal(err)
	}
	r.conversation = c.ID
	if _, err := f.db.Pool.Exec(ctx, `INSERT INTO river_job (kind, args, state, max_attempts, queue, priority, finalized_at)
		VALUES ('event', jsonb_build_object('id', 'evt_' || $1::bigint, 'data', jsonb_build_object('contact_id', $1::bigint, 'phone', $2::text, 'body', $3::text)),
		'discarded', 20, 'default', 1, now())`, r.contact.ID, r.contact.Address, body); err != nil {
		t.Fatal(err)
	}
	return r
}

// age moves everything of r back by d, as if it had happened then.
func (f *fixture) age(t *testing.T, r *retained, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`UPDATE contacts SET created_at = created_at - $2::interval, updated_at = updated_at - $2::interval WHERE id = $1`,
		`UPDATE messages SET created_at = created_at - $2::interval WHERE contact_id = $1`,
		`UPDATE conversations SET started_at = started_at - $2::interval, updated_at = updated_at - $2::interval,
			ended_at = CASE WHEN status IN ('ended', 'error') THEN now() - $2::interval END WHERE contact_id = $1`,
		`UPDATE river_job SET created_at = created_at - $2::interval WHERE (args->'data'->>'contact_id')::bigint = $1`,
	} {
		if _, err := f.db.Pool.Exec(ctx, q, r.contact.ID, d.String()); err != nil {
			t.Fatal(err)
		}
	}
}

// A retention pass clears every personal column past the cut, as direct
// queries and a full pg_dump show, and leaves newer data whole. The one
// exception is documented: a conversation still open keeps the variables
// it goes on with.
func TestRetention_ClearsEveryPersonalColumnPastTheCut(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := f.retained(t, "whatsapp:+919876543210", "Asha Verma", "kneesurgery", models.ConversationEnded)
	open := f.retained(t, "+919812345678", "Meera Iyer", "insulinrefill", models.ConversationHandoff)
	fresh := f.retained(t, "+14155550100", "Ravi Kumar", "prescription", models.ConversationEnded)
	const days = 40 * 24 * time.Hour
	f.age(t, old, days)
	f.age(t, open, days)
	staff, err := store.NewStaffStore(f.db).Create(ctx, "", "nurse@example.org", models.RoleAgent, "")
	if err != nil {
		t.Fatal(err)
	}
	sessions := store.NewSessionStore(f.db, f.crypto)
	for _, s := range []struct{ token, age string }{{"revoked", "0"}, {"idle", "40 days"}, {"too-old", "13 hours"}, {"live", "0"}} {
		name, err := sessions.Create(ctx, staff.ID, "access-"+s.token, "refresh-"+s.token, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		se, _ := sessions.Lookup(ctx, name)
		if _, err := f.db.Pool.Exec(ctx, `UPDATE staff_sessions SET created_at = now() - $2::interval, last_seen_at = now() - $2::interval,
			revoked_at = CASE WHEN $3 THEN now() END WHERE id = $1`, se.ID, s.age, s.token == "revoked"); err != nil {
			t.Fatal(err)
		}
	}
	sealed := sealedOf(t, f, old.contact.ID)
	if len(sealed) < 8 {
		t.Fatalf("only %d stored values of the old contact: the test would prove little", len(sealed))
	}

	n, err := store.NewRetentionStore(f.db).Purge(ctx, store.Cut{Before: time.Now().Add(-30 * 24 * time.Hour), SessionMaxAge: 12 * time.Hour}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Cleared{Messages: 2, Attachments: 2, Conversations: 1, Names: 2, Sessions: 3, Events: 2}); n != want {
		t.Errorf("cleared %+v, want %+v", n, want)
	}
	for _, tt := range []struct {
		what string
		sql  string
		want int
	}{
		{"names", `SELECT count(*) FROM contacts WHERE id = ANY($1) AND name_enc IS NOT NULL`, 0},
		{"name words", `SELECT count(*) FROM contact_words WHERE contact_id = ANY($1)`, 0},
		{"bodies and profile names", `SELECT count(*) FROM messages WHERE contact_id = ANY($1) AND (body_enc IS NOT NULL OR profile_name_enc IS NOT NULL)`, 0},
		{"message words", `SELECT count(*) FROM message_words w JOIN messages m ON m.id = w.message_id WHERE m.contact_id = ANY($1)`, 0},
		{"attachments", `SELECT count(*) FROM media d JOIN messages m ON m.id = d.message_id WHERE m.contact_id = ANY($1)`, 0},
		{"ended conversations' variables", `SELECT count(*) FROM conversations WHERE contact_id = ANY($1) AND status = 'ended'
			AND (variables_enc IS NOT NULL OR pending_enc IS NOT NULL)`, 0},
		{"an open conversation's variables", `SELECT count(*) FROM conversations WHERE contact_id = ANY($1) AND status <> 'ended' AND variables_enc IS NOT NULL`, 1},
		{"events", `SELECT count(*) FROM river_job WHERE kind = 'event' AND (args->'data'->>'contact_id')::bigint = ANY($1)`, 0},
		{"the messages themselves", `SELECT count(*) FROM messages WHERE contact_id = ANY($1)`, 2},
	} {
		if got := f.count(t, tt.sql, []int64{old.contact.ID, open.contact.ID}); got != tt.want {
			t.Errorf("%s of the old contacts: %d, want %d", tt.what, got, tt.want)
		}
	}
	var tokens []string
	rows, _ := f.db.Pool.Query(ctx, `SELECT id, access_token_enc FROM staff_sessions`)
	for rows.Next() {
		var id int64
		var enc []byte
		_ = rows.Scan(&id, &enc)
		tokens = append(tokens, string(enc))
	}
	rows.Close()
	if len(tokens) != 1 {
		t.Errorf("%d sessions left, want the live one", len(tokens))
	}
	dump := pgDump(t, f)
	for _, h := range sealed {
		if strings.Contains(dump, h) {
			t.Errorf("the dump still holds a sealed value of the old contact (%.16s…)", h)
		}
	}
	if !strings.Contains(dump, "prescription") {
		t.Fatal("the dump lacks the newer contact's event: the test would prove nothing of the queue")
	}
	for _, s := range []string{"kneesurgery", "9876543210", "insulinrefill", "9812345678"} {
		if strings.Contains(dump, s) {
			t.Errorf("the dump holds %q", s)
		}
	}
	exp, err := f.contacts.Export(ctx, fresh.contact.ID)
	if err != nil || exp.Contact.Name != "Ravi Kumar" || len(exp.Messages) != 1 || exp.Messages[0].Body != "prescription" ||
		len(exp.Attachments) != 1 || exp.Conversations[0].Variables["name"] != "Ravi Kumar" {
		t.Fatalf("the newer contact after retention: %+v %v", exp, err)
	}
	if f.count(t, `SELECT count(*) FROM messages WHERE contact_id = $1 AND profile_name_enc IS NOT NULL`, fresh.contact.ID) != 1 {
		t.Error("the newer message lost its profile name")
	}
}

// sealedOf is every sealed value and blind index of a contact's, hex as
// pg_dump writes bytea, and its word index rows.
func sealedOf(t *testing.T, f *fixture, contact int64) []string {
	t.Helper()
	var out []string
	rows, err := f.db.Pool.Query(context.Background(), `SELECT encode(v, 'hex') FROM (
			SELECT name_enc AS v FROM contacts WHERE id = $1
			UNION ALL SELECT body_enc FROM messages WHERE contact_id = $1 UNION ALL SELECT profile_name_enc FROM messages WHERE contact_id = $1
			UNION ALL SELECT d.data_enc FROM media d JOIN messages m ON m.id = d.message_id WHERE m.contact_id = $1
			UNION ALL SELECT d.ref_enc FROM media d JOIN messages m ON m.id = d.message_id WHERE m.contact_id = $1
			UNION ALL SELECT d.text_enc FROM media d JOIN messages m ON m.id = d.message_id WHERE m.contact_id = $1
			UNION ALL SELECT variables_enc FROM conversations WHERE contact_id = $1
			UNION ALL SELECT pending_enc FROM conversations WHERE contact_id = $1
			UNION ALL SELECT access_token_enc FROM staff_sessions WHERE revoked_at IS NOT NULL) x WHERE v IS NOT NULL
		UNION ALL SELECT '(' || bidx || ', ' || contact_id || ')' FROM contact_words WHERE contact_id = $1
		UNION ALL SELECT '(' || w.bidx || ', ' || w.message_id || ')' FROM message_words w JOIN messages m ON m.id = w.message_id WHERE m.contact_id = $1`, contact)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

func (f *fixture) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := f.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A backlog of attachments is cleared in batches: one statement removes
// at most a batch (so none can outlast a deadline however large the
// backlog), and each batch goes on where the last stopped.
func TestRetention_ClearsABacklogInBoundedBatches(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.contact(t, "+919876543210", "")
	m := f.message(t, c, "many photos")
	if _, err := f.db.Pool.Exec(ctx, `INSERT INTO media (message_id, position, ref_enc) SELECT $1, p, '\x00' FROM generate_series(1, 10000) p`, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Pool.Exec(ctx, `UPDATE messages SET created_at = now() - interval '40 days' WHERE id = $1`, m.ID); err != nil {
		t.Fatal(err)
	}
	retention := store.NewRetentionStore(f.db)
	cut := store.Cut{Before: time.Now().Add(-30 * 24 * time.Hour)}
	pass := retention.Pass(cut, 1000)
	n, done, err := pass.Batch(ctx)
	if err != nil || done || n.Attachments != 1000 {
		t.Fatalf("one batch cleared %+v (done %v, %v), want 1000 attachments and more to do", n, done, err)
	}
	if left := f.count(t, `SELECT count(*) FROM media`); left != 9000 {
		t.Fatalf("%d attachments left after one batch, want 9000", left)
	}
	var rest int64
	for batches := 1; !done; batches++ {
		if batches > 10 {
			t.Fatal("the batches do not end")
		}
		if n, done, err = pass.Batch(ctx); err != nil || n.Attachments > 1000 {
			t.Fatalf("batch %d: %+v %v", batches, n, err)
		}
		rest += n.Attachments
	}
	if rest != 9000 {
		t.Fatalf("the batches after the first cleared %d attachments, want 9000", rest)
	}
	if left := f.count(t, `SELECT count(*) FROM media`); left != 0 {
		t.Fatalf("%d attachments left", left)
	}
}
