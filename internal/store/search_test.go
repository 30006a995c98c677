package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

func bodies(p *models.MessagePage) []string {
	out := make([]string, len(p.Hits))
	for i, h := range p.Hits {
		out[i] = h.Message.Body
	}
	return out
}

func TestMessageStore_Search(t *testing.T) {
	f := newFixture(t)
	asha := f.contact(t, "whatsapp:+919876543210", "Asha Verma")
	ravi := f.contact(t, "+919812345678", "Ravi Kumar")
	priya := f.contact(t, "+14155550100", "प्रिया शर्मा")
	f.message(t, asha, "I need an appointment on Monday")
	f.message(t, asha, "मुझे सोमवार को डॉक्टर से मिलना है")
	f.message(t, ravi, "Appointment cancelled, sorry")
	f.message(t, ravi, "வணக்கம், திங்கள் அன்று சந்திப்பு")
	f.message(t, priya, "Monday works for my appointment")

	tests := []struct {
		name string
		q    models.MessageSearch
		want []string
	}{
		{"one word, any case", models.MessageSearch{Text: "APPOINTMENT"}, []string{"Monday works for my appointment", "Appointment cancelled, sorry", "I need an appointment on Monday"}},
		{"all words must match", models.MessageSearch{Text: "monday appointment"}, []string{"Monday works for my appointment", "I need an appointment on Monday"}},
		{"a word nobody wrote", models.MessageSearch{Text: "appointment tuesday"}, nil},
		{"hindi word", models.MessageSearch{Text: "सोमवार"}, []string{"मुझे सोमवार को डॉक्टर से मिलना है"}},
		{"tamil word", models.MessageSearch{Text: "திங்கள்"}, []string{"வணக்கம், திங்கள் அன்று சந்திப்பு"}},
		{"phone typed with spaces", models.MessageSearch{Phone: "+91 98765 43210"}, []string{"मुझे सोमवार को डॉक्टर से मिलना है", "I need an appointment on Monday"}},
		{"phone with trunk zero", models.MessageSearch{Phone: "098123 45678"}, []string{"வணக்கம், திங்கள் அன்று சந்திப்பு", "Appointment cancelled, sorry"}},
		{"phone as whatsapp address", models.MessageSearch{Phone: "whatsapp:+919876543210", Text: "monday"}, []string{"I need an appointment on Monday"}},
		{"name word", models.MessageSearch{Name: "verma"}, []string{"मुझे सोमवार को डॉक्टर से मिलना है", "I need an appointment on Monday"}},
		{"hindi name word", models.MessageSearch{Name: "प्रिया"}, []string{"Monday works for my appointment"}},
		{"name and text", models.MessageSearch{Name: "ravi", Text: "appointment"}, []string{"Appointment cancelled, sorry"}},
		{"channel filter", models.MessageSearch{Text: "appointment", Channel: models.ChannelWhatsApp}, []string{"I need an appointment on Monday"}},
		{"status filter", models.MessageSearch{Text: "appointment", Status: models.StatusProcessed}, nil},
		{"date range excludes", models.MessageSearch{Text: "appointment", Until: time.Now().Add(-time.Hour)}, nil},
		{"date range includes", models.MessageSearch{Text: "appointment", Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)}, []string{"Monday works for my appointment", "Appointment cancelled, sorry", "I need an appointment on Monday"}},
		{"emoji-only text matches nothing", models.MessageSearch{Text: "🙏"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := f.messages.Search(context.Background(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			got := bodies(page)
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
			}
			for _, h := range page.Hits {
				if h.Contact == nil || h.Contact.ID != h.Message.ContactID {
					t.Fatalf("hit without its contact: %+v", h)
				}
			}
		})
	}
	if _, err := f.messages.Search(context.Background(), models.MessageSearch{Phone: "not a phone"}); models.ErrorCode(err) != models.EINVALID {
		t.Fatalf("bad phone: %v, want EINVALID", err)
	}
}

func TestMessageStore_Search_KeysetPagination(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "+919876543210", "")
	const n = 23
	for range n {
		f.message(t, c, "reminder for your visit")
	}
	f.message(t, c, "unrelated")
	seen := map[int64]bool{}
	q := models.MessageSearch{Text: "visit", Limit: 10}
	var pages []int
	for {
		page, err := f.messages.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(page.Hits))
		last := int64(1 << 62)
		for _, h := range page.Hits {
			if seen[h.Message.ID] {
				t.Fatalf("message %d on two pages", h.Message.ID)
			}
			if h.Message.ID >= last {
				t.Fatal("page not in descending id order")
			}
			seen[h.Message.ID], last = true, h.Message.ID
		}
		if page.Next == 0 {
			break
		}
		q.Before = page.Next
	}
	if len(seen) != n || len(pages) != 3 || pages[0] != 10 || pages[2] != 3 {
		t.Fatalf("pages %v covering %d messages, want [10 10 3] covering %d", pages, len(seen), n)
	}
}

func TestMessageStore_Search_IndexCollisionNeverShowsAWrongMessage(t *testing.T) {
	f := newFixture(t)
	c := f.contact(t, "+919876543210", "Asha")
	wrong := f.message(t, c, "nothing to see here")
	right := f.message(t, c, "see you on monday")
	// Make "monday" collide with the wrong message, as a truncated index can.
	token := f.crypto.Index.Token(crypt.DomainBody, "monday")
	if err := f.db.Gorm.Exec("INSERT INTO message_words (bidx, message_id) VALUES (?, ?)", token, wrong.ID).Error; err != nil {
		t.Fatal(err)
	}
	// And point a name word at a contact whose name is not that.
	other := f.contact(t, "+919812345678", "Ravi")
	f.message(t, other, "see you on monday")
	if err := f.db.Gorm.Exec("INSERT INTO contact_words (bidx, contact_id) VALUES (?, ?)", f.crypto.Index.Token(crypt.DomainName, "asha"), other.ID).Error; err != nil {
		t.Fatal(err)
	}

	page, err := f.messages.Search(context.Background(), models.MessageSearch{Text: "monday", Name: "asha", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Hits) != 1 || page.Hits[0].Message.ID != right.ID || page.Next != 0 {
		t.Fatalf("got %q (next %d), want only %q", bodies(page), page.Next, right.Body)
	}
}
