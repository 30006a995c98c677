package handlers_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// seed stores a conversation: a named WhatsApp contact writing and being
// answered, and an SMS contact.
func (site *consoleSite) seed(t *testing.T) (asha, ravi *models.Contact) {
	t.Helper()
	ctx := context.Background()
	contacts, messages := store.NewContactStore(site.db, site.crypto), store.NewMessageStore(site.db, site.crypto)
	var err error
	if asha, _, err = contacts.FindOrCreate(ctx, nil, "whatsapp:+919876543210"); err != nil {
		t.Fatal(err)
	}
	if err := contacts.SetName(ctx, nil, asha.ID, "Asha Verma"); err != nil {
		t.Fatal(err)
	}
	if ravi, _, err = contacts.FindOrCreate(ctx, nil, "+14155550100"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*models.Message{
		{ContactID: asha.ID, Direction: models.Inbound, Channel: models.ChannelWhatsApp, Body: "I need an appointment for my knee", Status: models.StatusProcessed},
		{ContactID: asha.ID, Direction: models.Outbound, Channel: models.ChannelWhatsApp, Body: "What is your name?", Status: models.StatusDelivered},
		{ContactID: ravi.ID, Direction: models.Inbound, Channel: models.ChannelSMS, Body: "refill my prescription please", Status: models.StatusProcessed},
	} {
		m.Provider = "test"
		if _, err := messages.Insert(ctx, nil, m); err != nil {
			t.Fatal(err)
		}
		if err := messages.IndexWords(ctx, nil, m); err != nil {
			t.Fatal(err)
		}
	}
	return asha, ravi
}

func (site *consoleSite) as(t *testing.T, role models.Role) *browser {
	t.Helper()
	email := string(role) + "@example.org"
	hash, _ := auth.HashPassword("a long enough password")
	if _, err := site.staff.Create(context.Background(), "", email, role, hash); err != nil {
		t.Fatal(err)
	}
	b := &browser{site: site}
	if resp := b.signIn(t, email, "a long enough password", "/"); resp.StatusCode != 303 {
		t.Fatalf("sign-in as %s: %d", role, resp.StatusCode)
	}
	return b
}

func TestInbox_SearchesByPhoneNameAndWords(t *testing.T) {
	site := newConsoleSite(t, nil)
	site.seed(t)
	agent := site.as(t, models.RoleAgent)
	tests := []struct {
		label, q string
		want     []string // bodies found
	}{
		{"everything, newest first", "", []string{"refill my prescription please", "What is your name?", "I need an appointment for my knee"}},
		{"a number as people type it", "098765 43210", []string{"What is your name?", "I need an appointment for my knee"}},
		{"a name word", "verma", []string{"What is your name?", "I need an appointment for my knee"}},
		{"message words", "Prescription", []string{"refill my prescription please"}},
		{"nothing", "zebra", nil},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			// The live search's fragment, as HTMX asks for it.
			resp, page := agent.do(t, "GET", "/inbox/results?"+url.Values{"q": {tt.q}}.Encode(), nil, map[string]string{"HX-Request": "true"})
			if resp.StatusCode != 200 || strings.Contains(page, "<html") {
				t.Fatalf("%d, a whole page: %v", resp.StatusCode, strings.Contains(page, "<html"))
			}
			var got []string
			for _, part := range strings.Split(page, `data-testid="hit"`)[1:] {
				for _, w := range []string{"refill my prescription please", "What is your name?", "I need an appointment for my knee"} {
					if strings.Contains(part, w) {
						got = append(got, w)
					}
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("found %q, want %q", got, tt.want)
			}
			if len(tt.want) == 0 && !strings.Contains(page, `data-testid="no-results"`) {
				t.Fatal("no word for an empty result")
			}
		})
	}
}

// Viewers see numbers masked; every read is audited, the search's words
// sealed.
func TestInbox_ViewersSeeMaskedNumbersAndReadsAreAudited(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	viewer, agent := site.as(t, models.RoleViewer), site.as(t, models.RoleAgent)
	_, page := viewer.do(t, "GET", "/?q=knee", nil, nil)
	if !strings.Contains(page, "+••••••••3210") || strings.Contains(page, "9876543210") {
		t.Fatalf("a viewer's inbox shows the number: %s", page)
	}
	resp, page := viewer.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "Asha Verma") || strings.Contains(page, "9876543210") ||
		!strings.Contains(page, `data-testid="message-in"`) || !strings.Contains(page, `data-testid="message-out"`) {
		t.Fatalf("a viewer's contact page: %d\n%s", resp.StatusCode, page)
	}
	if _, page := agent.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil); !strings.Contains(page, "+919876543210") {
		t.Fatal("an agent does not see the number")
	}
	if resp, _ := agent.do(t, "GET", "/contacts/987654", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("a contact that is not there: %d", resp.StatusCode)
	}
	var actions string
	var plain int
	_ = site.db.Pool.QueryRow(context.Background(), `SELECT string_agg(action || ':' || actor_role, ',' ORDER BY seq),
		count(*) FILTER (WHERE position('knee'::bytea in coalesce(details_enc, ''::bytea)) > 0) FROM audit_events WHERE action NOT LIKE 'staff.%'`).Scan(&actions, &plain)
	want := "messages.search:viewer,contact.view:viewer,contact.view:agent,contact.view:agent"
	if actions != want || plain != 0 {
		t.Fatalf("audited %q (the search's words in the clear: %d), want %q", actions, plain, want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
