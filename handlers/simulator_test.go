package handlers_test

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/models"
)

var simulatorNumber = regexp.MustCompile(`data-testid="simulator-number">(\+447700\d{6})<`)

// The simulator is a channel of its own: what staff write there goes
// through the real ingest, processing and send path, and the conversation
// it makes is a real one in the inbox.
func TestSimulator_TalksToTheFlowThroughThePipeline(t *testing.T) {
	site := newConsoleSite(t, nil)
	agent := site.as(t, models.RoleAgent)
	resp, page := agent.do(t, "GET", "/simulator", nil, nil)
	number := simulatorNumber.FindStringSubmatch(page)
	if resp.StatusCode != 200 || number == nil || !strings.Contains(page, `data-testid="simulator-empty"`) {
		t.Fatalf("the simulator before a message: %d\n%s", resp.StatusCode, page)
	}
	csrf := formCSRF.FindStringSubmatch(page)[1]
	resp, fragment := agent.do(t, "POST", "/simulator", url.Values{"_csrf": {csrf}, "text": {"hi"}}, map[string]string{"HX-Request": "true"})
	if resp.StatusCode != 200 || !strings.Contains(fragment, ">hi</p>") || !strings.Contains(fragment, `sse-connect="/contacts/`) ||
		strings.Contains(fragment, "<html") {
		t.Fatalf("sending from the simulator: %d\n%s", resp.StatusCode, fragment)
	}
	// The heading's link to the conversation comes with the first answer
	// (out of band), not only after a reload.
	if !regexp.MustCompile(`<span id="simulator-open-slot" hx-swap-oob="true"><a href="/contacts/\d+"[^>]*data-testid="simulator-open"`).MatchString(fragment) {
		t.Fatalf("the first message's answer links no conversation:\n%s", fragment)
	}
	// Stored like a platform's message: queued, not yet answered.
	ctx := context.Background()
	var provider, ch string
	if err := site.db.Pool.QueryRow(ctx, `SELECT provider, channel FROM messages WHERE direction = 'in'`).Scan(&provider, &ch); err != nil {
		t.Fatal(err)
	}
	if provider != "simulator" || ch != "simulator" {
		t.Fatalf("the simulator's message is stored as %s on %s", provider, ch)
	}
	if err := site.pipe.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the flow's replies sent", func() bool {
		var n int
		_ = site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'sent'`).Scan(&n)
		return n >= 2
	})
	_, page = agent.do(t, "GET", "/simulator", nil, nil)
	if again := simulatorNumber.FindStringSubmatch(page); again == nil || again[1] != number[1] {
		t.Fatalf("the test contact changed between visits: %v then %v", number, again)
	}
	for _, want := range []string{"I&#39;m the clinic assistant.", "What is your name?", `data-testid="ticks-sent"`, `data-testid="simulator-open"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("the simulator after the flow answered lacks %q:\n%s", want, page)
		}
	}
	// The same conversation, found in the inbox by the test contact's number.
	_, results := agent.do(t, "GET", "/inbox/results?q="+url.QueryEscape(number[1]), nil, map[string]string{"HX-Request": "true"})
	if strings.Count(results, `data-testid="hit"`) != 1 || !strings.Contains(results, "What is your name?") || !strings.Contains(results, "simulator</span>") {
		t.Fatalf("the inbox searched by the simulator's number:\n%s", results)
	}
	// A second message goes on with the same conversation.
	agent.do(t, "POST", "/simulator", url.Values{"_csrf": {csrf}, "text": {"Asha"}}, nil)
	waitFor(t, "the flow's next question", func() bool {
		_, page = agent.do(t, "GET", "/simulator", nil, nil)
		return strings.Contains(page, "How old are you, Asha?")
	})
	if resp, _ := agent.do(t, "POST", "/simulator", url.Values{"_csrf": {csrf}, "text": {"  "}}, nil); resp.StatusCode != 400 {
		t.Fatalf("an empty message: %d", resp.StatusCode)
	}
}

// waitFor polls cond until it holds, failing after ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
