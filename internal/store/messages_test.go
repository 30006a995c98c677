package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

func TestMessageStore_Get_SwappedCiphertextIsAnErrorNotGarbage(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "+919876543210", "")
	a, b := f.message(t, c, "first secret"), f.message(t, c, "second secret")
	// An attacker with database access copies b's body over a's.
	if err := f.db.Gorm.Exec("UPDATE messages SET body_enc = (SELECT body_enc FROM messages WHERE id = ?) WHERE id = ?", b.ID, a.ID).Error; err != nil {
		t.Fatal(err)
	}
	got, err := f.messages.Get(context.Background(), a.ID)
	if !errors.Is(err, crypt.ErrTampered) || models.ErrorCode(err) != models.EINTERNAL {
		t.Fatalf("Get of a swapped body = %+v, %v; want EINTERNAL wrapping ErrTampered", got, err)
	}
}

func TestMessageStore_InsertReplies_SealedIndexedInOrder(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "+14155550100", "")
	ctx := context.Background()
	replies := []*models.Message{
		{ContactID: c.ID, Channel: c.Channel, Provider: "twilio", Body: "Your appointment is on Monday", Status: models.StatusQueued},
		{ContactID: c.ID, Channel: c.Channel, Provider: "twilio", Body: "Reply CANCEL to move it", Status: models.StatusQueued},
	}
	if err := f.messages.InsertReplies(ctx, nil, replies); err != nil {
		t.Fatal(err)
	}
	if replies[0].ID == 0 || replies[1].ID <= replies[0].ID {
		t.Fatalf("ids %d, %d: want both set, in order", replies[0].ID, replies[1].ID)
	}
	for _, r := range replies {
		got, err := f.messages.Get(ctx, r.ID)
		if err != nil || got.Body != r.Body || got.Direction != models.Outbound {
			t.Fatalf("Get(%d) = %+v, %v", r.ID, got, err)
		}
	}
	page, err := f.messages.Search(ctx, models.MessageSearch{Text: "monday appointment"})
	if err != nil || len(page.Hits) != 1 || page.Hits[0].Message.ID != replies[0].ID {
		t.Fatalf("search = %+v, %v; want the first reply", page, err)
	}
}

// LockOutbound says whether an earlier message to the contact must leave
// first, and whether that one waits out a retry.
func TestMessageStore_LockOutboundSeesEarlierUnsent(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "+14155550100", "")
	ctx := context.Background()
	first := &models.Message{ContactID: c.ID, Channel: c.Channel, Provider: "twilio", Body: "one", Status: models.StatusQueued}
	if err := f.messages.InsertReplies(ctx, nil, []*models.Message{first}); err != nil {
		t.Fatal(err)
	}
	second := &models.Message{ContactID: c.ID, Channel: c.Channel, Provider: "twilio", Body: "two", Status: models.StatusQueued}
	if err := f.messages.InsertReplies(ctx, nil, []*models.Message{second}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		set               string // how the first message stands
		waiting, retrying bool
	}{
		{"queued", `status = 'queued'`, true, false},
		{"being sent", `status = 'sending', attempts = 1, attempted_at = now()`, true, false},
		{"waiting out a retry", `status = 'queued', attempts = 2`, true, true},
		{"interrupted a while ago", `status = 'sending', attempts = 1, attempted_at = now() - interval '4 minutes'`, true, false},
		{"interrupted long ago", `status = 'sending', attempts = 1, attempted_at = now() - interval '6 minutes'`, false, false},
		{"sent", `status = 'sent'`, false, false},
		{"failed", `status = 'failed'`, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.db.Pool.Exec(ctx, `UPDATE messages SET `+tt.set+` WHERE id = $1`, first.ID); err != nil {
				t.Fatal(err)
			}
			st, err := f.messages.LockOutbound(ctx, nil, second.ID, 5*time.Minute, nil)
			if err != nil || st.Waiting != tt.waiting || st.Retrying != tt.retrying {
				t.Fatalf("LockOutbound = %+v, %v; want waiting %v, retrying %v", st, err, tt.waiting, tt.retrying)
			}
		})
	}
	// The first message is never held up by the second.
	if _, err := f.db.Pool.Exec(ctx, `UPDATE messages SET status = 'queued', attempts = 0`); err != nil {
		t.Fatal(err)
	}
	if st, err := f.messages.LockOutbound(ctx, nil, first.ID, 5*time.Minute, nil); err != nil || st.Waiting {
		t.Fatalf("the first message waits (%+v, %v)", st, err)
	}
}

// A job reserves its replies' slots under the rate cap at once: the
// next taker waits for all of them, and a reservation whose last slot
// lies beyond the taker's time is refused whole.
func TestSendSlots_TakeReservesSeveral(t *testing.T) {
	db := pgtest.Open(t)
	slots := store.NewSendSlots(db)
	ctx := context.Background()
	const rate = 10 // a slot each 100 ms
	if wait, ok, err := slots.Take(ctx, "twilio", rate, 1, time.Second, 4); err != nil || !ok || wait > 50*time.Millisecond {
		t.Fatalf("first four slots: wait %v, reserved %v, %v; want now", wait, ok, err)
	}
	wait, ok, err := slots.Take(ctx, "twilio", rate, 1, time.Second, 1)
	if err != nil || !ok || wait < 300*time.Millisecond || wait > 400*time.Millisecond {
		t.Fatalf("the next slot: wait %v, reserved %v, %v; want about 400ms, after the four", wait, ok, err)
	}
	// Ten more would end 1.4 s from now: beyond a second, none is taken.
	if wait, ok, err := slots.Take(ctx, "twilio", rate, 1, time.Second, 10); err != nil || ok || wait < 400*time.Millisecond {
		t.Fatalf("ten beyond the limit: wait %v, reserved %v, %v; want refused, free in about 500ms", wait, ok, err)
	}
	if wait, ok, err := slots.Take(ctx, "twilio", rate, 1, time.Second, 1); err != nil || !ok || wait < 400*time.Millisecond || wait > 500*time.Millisecond {
		t.Fatalf("after the refusal: wait %v, reserved %v, %v; want about 500ms (the refusal took nothing)", wait, ok, err)
	}
}

// The live view's fingerprint sees a message written after the others
// even when its id is the lowest (ids are reserved in blocks, one block
// per instance), and its status moving, past the 200 highest ids.
func TestMessageStore_Fingerprint_NotByIDOrder(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "+14155550100", "")
	ctx := context.Background()
	for range 201 {
		f.message(t, c, "earlier")
	}
	before, err := f.messages.Fingerprint(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	late := f.message(t, c, "written last, from an earlier block of ids")
	if err := f.db.Gorm.Exec(`UPDATE messages SET id = (SELECT min(id) - 64 FROM messages) WHERE id = ?`, late.ID).Error; err != nil {
		t.Fatal(err)
	}
	added, err := f.messages.Fingerprint(ctx, c.ID)
	if err != nil || added == before {
		t.Fatalf("a message with a low id written last: fingerprint %q, as before (%v)", added, err)
	}
	if err := f.db.Gorm.Exec(`UPDATE messages SET status = 'processed' WHERE id = (SELECT min(id) FROM messages)`).Error; err != nil {
		t.Fatal(err)
	}
	if moved, err := f.messages.Fingerprint(ctx, c.ID); err != nil || moved == added {
		t.Fatalf("its status moved: fingerprint %q, as before (%v)", moved, err)
	}
}

// A message that commits after a later one (its write took its place in
// the sequence first) still moves the live view's fingerprint, past 200
// messages whose statuses read alike before and after; and so does a late
// commit that lands as an older message is removed (the count stays).
func TestMessageStore_Fingerprint_SeesALateCommitWithALowerSeq(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "+14155550100", "")
	ctx := context.Background()
	reply := func(body string) *models.Message {
		return &models.Message{ContactID: c.ID, Channel: c.Channel, Provider: "twilio", Body: body, Status: models.StatusQueued}
	}
	var earlier []*models.Message
	for range 201 {
		earlier = append(earlier, reply("earlier"))
	}
	if err := f.messages.InsertReplies(ctx, nil, earlier); err != nil {
		t.Fatal(err)
	}
	// late takes its place, then waits to commit while next is written.
	late := f.db.Gorm.WithContext(ctx).Begin()
	defer late.Rollback()
	if err := f.messages.InsertReplies(ctx, late, []*models.Message{reply("decided first, committed last")}); err != nil {
		t.Fatal(err)
	}
	if err := f.messages.InsertReplies(ctx, nil, []*models.Message{reply("decided second")}); err != nil {
		t.Fatal(err)
	}
	before, err := f.messages.Fingerprint(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := late.Commit().Error; err != nil {
		t.Fatal(err)
	}
	after, err := f.messages.Fingerprint(ctx, c.ID)
	if err != nil || after == before {
		t.Fatalf("a message committed late with a lower seq: fingerprint %q, as before (%v)", after, err)
	}

	// Again, while the oldest message is removed (retention, erasure of a
	// message): as many messages as before, the same statuses in order.
	late = f.db.Gorm.WithContext(ctx).Begin()
	defer late.Rollback()
	if err := f.messages.InsertReplies(ctx, late, []*models.Message{reply("decided first again")}); err != nil {
		t.Fatal(err)
	}
	if err := f.messages.InsertReplies(ctx, nil, []*models.Message{reply("decided second again")}); err != nil {
		t.Fatal(err)
	}
	before, err = f.messages.Fingerprint(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := late.Exec(`DELETE FROM messages WHERE id = ?`, earlier[0].ID).Error; err != nil {
		t.Fatal(err)
	}
	if err := late.Commit().Error; err != nil {
		t.Fatal(err)
	}
	if after, err = f.messages.Fingerprint(ctx, c.ID); err != nil || after == before {
		t.Fatalf("a late commit as the oldest message went: fingerprint %q, as before (%v)", after, err)
	}
}

// A message sent as a template keeps which template and its parameters,
// sealed: the parameters are personal.
func TestMessageStore_InsertReplies_TemplateSealedAndReadBack(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "+14155550100", "")
	ctx := context.Background()
	tpl := &models.TemplateRef{Name: "appointment_reminder", Language: "en", Params: map[string]string{"1": "Asha Verma", "2": "10:00"}}
	m := &models.Message{ContactID: c.ID, Channel: models.ChannelWhatsApp, Provider: "meta", Body: "Asha Verma, your appointment is at 10:00", Status: models.StatusQueued, Template: tpl}
	plain := &models.Message{ContactID: c.ID, Channel: models.ChannelWhatsApp, Provider: "meta", Body: "no template", Status: models.StatusQueued}
	if err := f.messages.InsertReplies(ctx, nil, []*models.Message{m, plain}); err != nil {
		t.Fatal(err)
	}
	got, err := f.messages.Get(ctx, m.ID)
	if err != nil || got.Template == nil || got.Template.Name != tpl.Name || got.Template.Language != "en" || got.Template.Params["1"] != "Asha Verma" {
		t.Fatalf("Get = %+v, %v; want the template back", got, err)
	}
	if got, err := f.messages.Get(ctx, plain.ID); err != nil || got.Template != nil {
		t.Fatalf("a plain message read back with template %+v, %v", got.Template, err)
	}
	var sealed int
	if err := f.db.Gorm.Raw(`SELECT count(*) FROM messages WHERE id = ? AND template_enc IS NOT NULL AND position('Asha'::bytea in template_enc) = 0`, m.ID).Scan(&sealed).Error; err != nil || sealed != 1 {
		t.Fatalf("template column sealed = %d, %v", sealed, err)
	}
}
