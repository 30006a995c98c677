package handlers_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
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

// The API gives a contact's messages in the order the conversation
// happened, latest first, and pages them by that order: here the person's
// three messages took lower ids than the three answers (as two writers'
// blocks of ids do), and their places interleave.
func TestAPI_MessagesInTheOrderTheyHappened(t *testing.T) {
	site := newConsoleSite(t, nil)
	doc := loadAPIDoc(t, site.base)
	_, ravi := site.seed(t)
	ctx := context.Background()
	var ins []*models.Message
	for _, said := range []string{"one", "two", "three"} {
		ins = append(ins, storetest.Inbound(t, site.db, site.crypto, ravi, said))
	}
	var outs []*models.Message
	for _, m := range ins {
		outs = append(outs, &models.Message{ContactID: ravi.ID, Channel: ravi.Channel, Provider: "test", Body: "answer to " + m.Body, Status: models.StatusSent})
	}
	if err := store.NewMessageStore(site.db, site.crypto).InsertReplies(ctx, nil, outs); err != nil {
		t.Fatal(err)
	}
	// Each answer's place is just after its message.
	for i, m := range ins {
		if _, err := site.db.Pool.Exec(ctx, `UPDATE messages SET seq = (SELECT seq FROM messages WHERE id = $1) + 1 WHERE id = $2`, m.ID, outs[i].ID); err != nil {
			t.Fatal(err)
		}
	}
	agent := site.api(t, models.RoleAgent, doc)
	var got []string
	for after, pages := "", 0; pages < 10; pages++ {
		var page struct {
			Messages []struct{ Body string }
			Next     string
		}
		agent.get(t, "/api/v1/contacts/"+itoa(ravi.ID)+"/messages?limit=2&after="+after, &page)
		for _, m := range page.Messages {
			got = append(got, m.Body)
		}
		if after = page.Next; after == "" {
			break
		}
	}
	want := []string{"answer to three", "three", "answer to two", "two", "answer to one", "one", "refill my prescription please"}
	if !slices.Equal(got, want) {
		t.Fatalf("pages of two gave\n%q\nwant\n%q", got, want)
	}
	// A cursor as the API handed them out when it paged by id (a bare
	// message id) is refused, not read as a seq.
	for _, old := range []string{itoa(outs[2].ID), itoa(ins[1].ID)} {
		if status, raw := agent.call(t, "GET", "/api/v1/contacts/"+itoa(ravi.ID)+"/messages?limit=2&after="+old, nil); status != 400 || errCode(raw) != "invalid" {
			t.Errorf("an id cursor %s: %d %s, want 400 invalid", old, status, raw)
		}
	}
}
