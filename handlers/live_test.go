package handlers_test

import (
	"bufio"
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
	"github.com/parley-chat/parley/models"
)

var sseConnect = regexp.MustCompile(`sse-connect="([^"]+)"`)

// stream is an open live view: its events, one at a time.
type stream struct {
	lines *bufio.Scanner
	close func()
}

// openStream connects to a page's live view at path as b, handing back
// lastID as a reconnecting browser does ("": a first connection). Reads
// are bounded by a deadline, so a stream that never says anything fails
// the test instead of hanging it.
func openStream(t *testing.T, b *browser, path, lastID string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", b.site.base+path, nil)
	req.Header.Set("Cookie", "parley_session="+b.cookie)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{lines: bufio.NewScanner(resp.Body), close: func() { cancel(); resp.Body.Close() }}
	t.Cleanup(s.close)
	if ev := s.next(t); !strings.HasPrefix(ev, "retry:") {
		t.Fatalf("the stream opened with %q", ev)
	}
	return s
}

// next is the stream's next event (or comment), its lines joined by "|".
func (s *stream) next(t *testing.T) string {
	t.Helper()
	var ev []string
	for s.lines.Scan() {
		if s.lines.Text() == "" {
			if len(ev) > 0 {
				return strings.Join(ev, "|")
			}
			continue
		}
		ev = append(ev, s.lines.Text())
	}
	t.Fatalf("the stream ended (%v) after %q", s.lines.Err(), ev)
	return ""
}

// changedID is the id of a "changed" event, or fails the test.
func changedID(t *testing.T, ev string) string {
	t.Helper()
	id, rest, _ := strings.Cut(ev, "|")
	if !strings.HasPrefix(id, "id: ") || !strings.HasPrefix(rest, "event: changed") {
		t.Fatalf("the first event after connecting is %q, not the change made since the page was read", ev)
	}
	return strings.TrimPrefix(id, "id: ")
}

// streamOf is the live view's address in a page.
func streamOf(t *testing.T, page string) string {
	t.Helper()
	m := sseConnect.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the page does not follow the conversation:\n%s", page)
	}
	return html.UnescapeString(m[1])
}

// A change made after the page was read and before its live view connects
// (the reply's status moving on, a new message) is announced as soon as
// the stream connects: the stream starts from the page's state, not its
// own. A browser reconnecting with the last id it received is not told
// again.
func TestLive_StreamStartsFromThePage(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	ctx := context.Background()
	messages := store.NewMessageStore(site.db, site.crypto)
	reply := &models.Message{ContactID: asha.ID, Direction: models.Outbound, Channel: models.ChannelWhatsApp, Provider: "test",
		Body: "A nurse will call you today.", Status: models.StatusQueued}
	if err := messages.InsertReplies(ctx, nil, []*models.Message{reply}); err != nil {
		t.Fatal(err)
	}
	agent := site.as(t, models.RoleAgent)
	_, page := agent.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	if !strings.Contains(page, `data-testid="ticks-waiting"`) {
		t.Fatalf("the reply is not waiting on the page:\n%s", page)
	}
	events := streamOf(t, page)

	// Between the page and its stream: the reply is sent, and Asha answers.
	if _, err := site.db.Pool.Exec(ctx, `UPDATE messages SET status = 'sent' WHERE id = $1`, reply.ID); err != nil {
		t.Fatal(err)
	}
	storetest.Inbound(t, site.db, site.crypto, asha, "thank you")

	s := openStream(t, agent, events, "")
	id := changedID(t, s.next(t))
	_, fragment := agent.do(t, "GET", "/contacts/"+itoa(asha.ID)+"/timeline", nil, map[string]string{"HX-Request": "true"})
	if strings.Contains(fragment, `data-testid="ticks-waiting"`) || !strings.Contains(fragment, `data-testid="ticks-sent"`) ||
		!strings.Contains(fragment, "thank you") {
		t.Fatalf("the timeline fetched on the announcement:\n%s", fragment)
	}
	s.close()

	// Reconnecting after that announcement: nothing new to say.
	s = openStream(t, agent, events, id)
	if ev := s.next(t); ev != ": idle" {
		t.Fatalf("a reconnect with the last id it was given heard %q", ev)
	}
}

// In the simulator, the pane sent back for the second message follows the
// conversation from the state it shows: the flow's answer, written before
// the pane's stream connects, is announced at once.
func TestLive_SimulatorFollowsFromItsPane(t *testing.T) {
	site := newConsoleSite(t, nil)
	agent := site.as(t, models.RoleAgent)
	_, page := agent.do(t, "GET", "/simulator", nil, nil)
	csrf := formCSRF.FindStringSubmatch(page)[1]
	var pane string
	for _, text := range []string{"hi", "Asha"} {
		var resp *http.Response
		resp, pane = agent.do(t, "POST", "/simulator", url.Values{"_csrf": {csrf}, "text": {text}}, map[string]string{"HX-Request": "true"})
		if resp.StatusCode != 200 {
			t.Fatalf("sending %q: %d\n%s", text, resp.StatusCode, pane)
		}
	}
	events := streamOf(t, pane)
	ctx := context.Background()
	var contactID int64
	if err := site.db.Pool.QueryRow(ctx, `SELECT contact_id FROM messages WHERE direction = 'in' LIMIT 1`).Scan(&contactID); err != nil {
		t.Fatal(err)
	}
	// The flow's answer (the pipeline here is not started: written as its
	// send would record it).
	answer := &models.Message{ContactID: contactID, Direction: models.Outbound, Channel: models.ChannelSimulator, Provider: "simulator",
		Body: "How old are you, Asha?", Status: models.StatusSent}
	if err := store.NewMessageStore(site.db, site.crypto).InsertReplies(ctx, nil, []*models.Message{answer}); err != nil {
		t.Fatal(err)
	}
	s := openStream(t, agent, events, "")
	changedID(t, s.next(t))
	_, fragment := agent.do(t, "GET", "/contacts/"+itoa(contactID)+"/timeline", nil, map[string]string{"HX-Request": "true"})
	if !strings.Contains(fragment, "How old are you, Asha?") {
		t.Fatalf("the timeline fetched on the announcement:\n%s", fragment)
	}
}
