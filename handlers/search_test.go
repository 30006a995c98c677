package handlers_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
	"github.com/parley-chat/parley/models"
)

// A number is found however it is typed (international with or without
// its +, spaced, or only its last four to six digits), and what is found
// is listed as conversations: one row a contact, however many of its
// messages matched, none listed again by "Older", and the failed-sends
// count counts conversations too. Two numbers share the last four digits
// here, so the six-digit search shows the filter after decryption at work.
func TestInbox_SearchByNumberListsConversations(t *testing.T) {
	site := newConsoleSite(t, nil)
	site.seed(t)
	ctx := context.Background()
	contacts := store.NewContactStore(site.db, site.crypto)
	gb, _, err := contacts.FindOrCreate(ctx, "+447700900117")
	if err != nil {
		t.Fatal(err)
	}
	us, _, err := contacts.FindOrCreate(ctx, "+12025550117")
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"first", "second", "third"} {
		storetest.Inbound(t, site.db, site.crypto, gb, body)
	}
	storetest.Inbound(t, site.db, site.crypto, us, "hello from dc")
	for range 2 {
		if _, err := site.db.Pool.Exec(ctx, `INSERT INTO messages (id, contact_id, direction, channel, provider, status, error_code)
			VALUES (nextval(pg_get_serial_sequence('messages', 'id')), $1, 'out', 'sms', 'test', 'failed', '21211')`, gb.ID); err != nil {
			t.Fatal(err)
		}
	}
	agent := site.as(t, models.RoleAgent)
	rows := func(q string) []string {
		t.Helper()
		resp, page := agent.do(t, "GET", "/inbox/results?"+url.Values{"q": {q}}.Encode(), nil, map[string]string{"HX-Request": "true"})
		if resp.StatusCode != 200 {
			t.Fatalf("%q: %d\n%s", q, resp.StatusCode, page)
		}
		var out []string
		for _, part := range strings.Split(page, `data-testid="hit"`)[1:] {
			switch {
			case strings.Contains(part, "+447700900117"):
				out = append(out, "gb")
			case strings.Contains(part, "+12025550117"):
				out = append(out, "us")
			default:
				out = append(out, "other")
			}
		}
		return out
	}
	for _, tt := range []struct {
		q    string
		want string
	}{
		{"+44 7700 900117", "gb"},
		{"447700900117", "gb"},
		{"00447700900117", "gb"},
		{"900117", "gb"},
		{"0117", "gb us"},
		{"7700 9001", ""},
	} {
		if got := strings.Join(rows(tt.q), " "); got != tt.want {
			t.Errorf("%q found %q, want %q", tt.q, got, tt.want)
		}
	}

	// Paged one conversation at a time through the API, each once.
	doc := loadAPIDoc(t, site.base)
	api := site.api(t, models.RoleAgent, doc)
	var seen []int64
	for after, pages := "", 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		var found struct {
			Conversations []apiHit
			Next          string
		}
		api.get(t, "/api/v1/conversations?limit=1&q=0117&after="+after, &found)
		for _, h := range found.Conversations {
			seen = append(seen, h.Contact.ID)
		}
		if found.Next == "" {
			break
		}
		after = found.Next
	}
	if len(seen) != 2 || seen[0] == seen[1] {
		t.Fatalf("pages listed %v, want each of the two contacts once", seen)
	}
	// The failed-sends count counts conversations.
	_, page := agent.do(t, "GET", "/", nil, nil)
	if !strings.Contains(page, `data-testid="count-failed"`) || !strings.Contains(strings.Split(page, `data-testid="count-failed"`)[1], `<span class="font-semibold">1</span>`) {
		t.Fatalf("two failed sends of one conversation should count 1:\n%s", page)
	}
}
