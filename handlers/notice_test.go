package handlers_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// nextWaiting reads the stream past its idle comments to the next count it
// announces.
func nextWaiting(t *testing.T, s *stream) string {
	t.Helper()
	for {
		ev := s.next(t)
		if ev == ": idle" {
			continue
		}
		parts := strings.Split(ev, "|")
		if len(parts) != 3 || parts[1] != "event: waiting" || parts[0] != "id: "+strings.TrimPrefix(parts[2], "data: ") {
			t.Fatalf("not a count: %q", ev)
		}
		return strings.TrimPrefix(parts[2], "data: ")
	}
}

// Every console page of a member who works hand-offs follows how many
// conversations wait for a person: the stream says the count when it
// connects, then each change in the order it happened — a hand-off
// arriving, taken, another arriving, resumed (the bot answers again).
// Viewers, who do no hand-off work, are refused it, and the anonymous
// sent to sign in.
func TestNotice_WaitingCountFollowsHandoffs(t *testing.T) {
	site := newConsoleSite(t, nil)
	ctx := context.Background()
	viewer, agent := site.as(t, models.RoleViewer), site.as(t, models.RoleAgent)
	if resp, _ := (&browser{site: site}).do(t, "GET", "/handoffs/waiting/events", nil, nil); resp.StatusCode != 303 {
		t.Fatalf("anonymous: %d, want 303 to sign in", resp.StatusCode)
	}
	for _, path := range []string{"/handoffs/waiting", "/handoffs/waiting/events"} {
		if resp, _ := viewer.do(t, "GET", path, nil, nil); resp.StatusCode != 403 {
			t.Errorf("a viewer's %s: %d, want 403", path, resp.StatusCode)
		}
	}
	_, page := agent.do(t, "GET", "/", nil, nil)
	if !strings.Contains(page, `data-waiting-events="/handoffs/waiting/events"`) || !strings.Contains(page, `data-testid="handoff-count"`) {
		t.Fatalf("the agent's page does not follow the count:\n%s", page)
	}
	if _, page := viewer.do(t, "GET", "/", nil, nil); strings.Contains(page, "data-waiting-events") || strings.Contains(page, "notice.js") {
		t.Fatal("a viewer's page follows the count")
	}
	csrf := csrfRE.FindStringSubmatch(page)

	contacts := store.NewContactStore(site.db, site.crypto)
	handoff := func(number string) int64 {
		t.Helper()
		contact, _, err := contacts.FindOrCreate(ctx, number)
		if err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := site.db.Pool.QueryRow(ctx, `INSERT INTO conversations (contact_id, flow_id, flow_version, node, status, handoff_at)
			VALUES ($1, 'clinic', 'v1', 'handoff', 'handoff', now()) RETURNING id`, contact.ID).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// A hand-off another member holds already waits for nobody.
	held := handoff("+14155550101")
	if _, err := site.db.Pool.Exec(ctx, `UPDATE conversations SET assigned_to = (SELECT id FROM staff_users WHERE email = 'viewer@example.org') WHERE id = $1`, held); err != nil {
		t.Fatal(err)
	}

	s := openStream(t, agent, "/handoffs/waiting/events", "")
	if n := nextWaiting(t, s); n != "0" {
		t.Fatalf("at first: %s waiting, want 0", n)
	}
	first := handoff("+14155550102")
	if n := nextWaiting(t, s); n != "1" {
		t.Fatalf("after a hand-off: %s, want 1", n)
	}
	if resp, _ := agent.do(t, "POST", "/conversations/"+itoa(first)+"/take", url.Values{"_csrf": {csrf[1]}}, nil); resp.StatusCode != 303 {
		t.Fatalf("take: %d", resp.StatusCode)
	}
	if n := nextWaiting(t, s); n != "0" {
		t.Fatalf("after the take: %s, want 0", n)
	}
	second := handoff("+14155550103")
	if n := nextWaiting(t, s); n != "1" {
		t.Fatalf("after a second hand-off: %s, want 1", n)
	}
	if resp, _ := agent.do(t, "GET", "/handoffs/waiting", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("the count as JSON: %d", resp.StatusCode)
	} else if _, body := agent.do(t, "GET", "/handoffs/waiting", nil, nil); strings.TrimSpace(body) != `{"waiting":1}` {
		t.Fatalf("the count as JSON: %s", body)
	}
	if resp, _ := agent.do(t, "POST", "/conversations/"+itoa(second)+"/override", url.Values{"_csrf": {csrf[1]}, "kind": {"resume"}}, nil); resp.StatusCode != 303 {
		t.Fatalf("resume: %d", resp.StatusCode)
	}
	if n := nextWaiting(t, s); n != "0" {
		t.Fatalf("after the resume: %s, want 0", n)
	}
}
