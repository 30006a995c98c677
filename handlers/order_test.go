package handlers_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/models"
)

// A conversation in the inbox stands for its latest message in the order
// it happened, not for the one with the highest id: here Asha's question
// was written after Parley's answer by an instance whose ids are lower.
func TestInbox_AConversationShowsItsLatestMessage(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	if _, err := site.db.Pool.Exec(context.Background(), `UPDATE messages SET seq = (SELECT max(seq) + 1 FROM messages)
		WHERE contact_id = $1 AND direction = 'in'`, asha.ID); err != nil {
		t.Fatal(err)
	}
	agent := site.as(t, models.RoleAgent)
	resp, page := agent.do(t, "GET", "/inbox/results?"+url.Values{"q": {"098765 43210"}}.Encode(), nil, map[string]string{"HX-Request": "true"})
	hits := strings.Split(page, `data-testid="hit"`)[1:]
	if resp.StatusCode != 200 || len(hits) != 1 || !strings.Contains(hits[0], "I need an appointment for my knee") {
		t.Fatalf("%d, %d rows; want Asha's row to show her latest message:\n%s", resp.StatusCode, len(hits), page)
	}
}
