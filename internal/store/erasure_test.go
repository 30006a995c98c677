package store_test

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// An erasure removes everything of the person in one go, and a full
// pg_dump afterwards holds none of it in any form: no ciphertext, no blind
// index, no word, no queued job (events with the number and words
// included, delivered or not); only the audit entry that it happened,
// with counts.
func TestErase_LeavesNothingOfThePersonInAFullDump(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	asha := f.contact(t, "whatsapp:+919876543210", "Asha Verma")
	ravi := f.contact(t, "+14155550100", "Ravi Kumar")
	msgs := map[*models.Contact][]int64{}
	var media []int64
	for _, m := range []struct {
		c    *models.Contact
		body string
	}{{asha, "knee surgery Monday"}, {asha, "my card attached"}, {ravi, "prescription refill please"}} {
		msg := f.message(t, m.c, m.body)
		msgs[m.c] = append(msgs[m.c], msg.ID)
		if err := f.messages.IndexWords(ctx, nil, msg); err != nil {
			t.Fatal(err)
		}
		ms := store.NewMediaStore(f.db, f.crypto)
		id, err := ms.Add(ctx, nil, msg.ID, 0, "https://api.twilio.com/media/"+m.body[:4], "image/jpeg")
		if err != nil {
			t.Fatal(err)
		}
		if err := ms.Save(ctx, id, "image/jpeg", []byte("photo of "+m.body)); err != nil {
			t.Fatal(err)
		}
		media = append(media, id)
	}
	convs := store.NewConversationStore(f.db, f.crypto)
	for _, c := range []*models.Contact{asha, ravi} {
		if err := convs.Save(ctx, nil, &models.Conversation{ContactID: c.ID, FlowID: "clinic", FlowVersion: "v1", Node: "ask_age",
			Status: models.ConversationActive, Variables: map[string]string{"name": c.Name}}); err != nil {
			t.Fatal(err)
		}
	}
	q := queueOfBoth(t, f, asha, ravi, msgs[asha], msgs[ravi], media)
	// Every stored form of Asha's data, as pg_dump writes bytea: hex.
	var sealed []string
	rows, err := f.db.Pool.Query(ctx, `SELECT encode(v, 'hex') FROM (
			SELECT address_enc AS v FROM contacts WHERE id = $1 UNION ALL SELECT address_bidx FROM contacts WHERE id = $1
			UNION ALL SELECT name_enc FROM contacts WHERE id = $1
			UNION ALL SELECT body_enc FROM messages WHERE contact_id = $1
			UNION ALL SELECT d.data_enc FROM media d JOIN messages m ON m.id = d.message_id WHERE m.contact_id = $1
			UNION ALL SELECT d.ref_enc FROM media d JOIN messages m ON m.id = d.message_id WHERE m.contact_id = $1
			UNION ALL SELECT variables_enc FROM conversations WHERE contact_id = $1) x WHERE v IS NOT NULL`, asha.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, h)
	}
	rows.Close()
	// The word indexes: rows as pg_dump writes them, (bidx, owner).
	rows, err = f.db.Pool.Query(ctx, `SELECT '(' || bidx || ', ' || contact_id || ')' FROM contact_words WHERE contact_id = $1
		UNION ALL SELECT '(' || w.bidx || ', ' || w.message_id || ')' FROM message_words w JOIN messages m ON m.id = w.message_id WHERE m.contact_id = $1`, asha.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var row string
		if err := rows.Scan(&row); err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, row)
	}
	rows.Close()
	if len(sealed) < 14 {
		t.Fatalf("only %d stored values of Asha's found: the test would prove little", len(sealed))
	}
	var raviIndex string
	_ = f.db.Pool.QueryRow(ctx, `SELECT encode(address_bidx, 'hex') FROM contacts WHERE id = $1`, ravi.ID).Scan(&raviIndex)

	audit := store.NewAuditStore(f.db, f.crypto)
	n, err := f.contacts.Erase(ctx, asha.ID, &models.Actor{}, audit)
	if err != nil {
		t.Fatal(err)
	}
	if n != (store.Erased{Messages: 2, Attachments: 2, Conversations: 1, Jobs: int64(q.touched)}) {
		t.Errorf("erased %+v", n)
	}
	dump := pgDump(t, f)
	if !strings.Contains(dump, raviIndex) {
		t.Fatal("the dump lacks the contact who stays: the test would prove nothing")
	}
	for _, h := range sealed {
		if strings.Contains(dump, h) {
			t.Errorf("the dump still holds a value of the erased contact (%.16s…)", h)
		}
	}
	if !strings.Contains(dump, "+14155550100") || !strings.Contains(dump, "prescription") {
		t.Fatal("the dump lacks the queued event of the contact who stays: the test would prove nothing of the queue")
	}
	for _, s := range []string{"+919876543210", "9876543210", "Asha", "Verma", "knee", "surgery", "Monday", "card attached", hex.EncodeToString([]byte("Asha"))} {
		if strings.Contains(dump, s) {
			t.Errorf("the dump holds %q", s)
		}
	}
	q.check(t, f)
	entries, err := audit.List(ctx, store.AuditQuery{Action: "contact.erase"})
	if err != nil || len(entries) != 1 || entries[0].SubjectID != strconv.FormatInt(asha.ID, 10) || entries[0].Details["messages"] != float64(2) {
		t.Fatalf("the erasure's audit entry: %+v %v", entries, err)
	}
	if _, err := audit.Verify(ctx); err != nil {
		t.Fatalf("the audit chain after an erasure: %v", err)
	}
	if _, err := f.contacts.Erase(ctx, asha.ID, nil, audit); models.ErrorCode(err) != models.ENOTFOUND {
		t.Fatalf("erasing again: %v", err)
	}
	if exp, err := f.contacts.Export(ctx, ravi.ID); err != nil || len(exp.Messages) != 1 || exp.Messages[0].Body != "prescription refill please" ||
		len(exp.Conversations) != 1 || exp.Conversations[0].Variables["name"] != "Ravi Kumar" || len(exp.Attachments) != 1 || exp.Contact.Name != "Ravi Kumar" {
		t.Fatalf("export of the contact who stays: %+v %v", exp, err)
	}
}
