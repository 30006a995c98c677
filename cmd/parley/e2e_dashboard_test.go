package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
)

// updateDocs refreshes the README's screenshots in docs/screenshots (go
// test -run TestBrowser_DashboardAndFlowMap ./cmd/parley/ -args -update).
var updateDocs = flag.Bool("update", false, "refresh the README's screenshots in docs/screenshots")

// shootDocs saves a screenshot among the artifacts and, with -update, as
// the README's docs/screenshots/name.png.
func shootDocs(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shoot(t, ctx, name)
	if !*updateDocs {
		return
	}
	png, err := os.ReadFile(filepath.Join(artifacts(t), name+".png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", "screenshots", name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A supervisor's look at how things go, in a real browser against the
// real server: three people write over signed Twilio webhooks (one
// booked, one sent to goodbye as under 18, one who stopped at their name;
// Twilio refuses the first reply for good), the dashboard shows their
// figures, and the flow map, opened from the last one's conversation,
// highlights where they stopped and counts the three node by node.
func TestBrowser_DashboardAndFlowMap(t *testing.T) {
	ctx := newBrowser(t)
	s := newConsoleSite(t)
	fake, base, db, token := s.fake, s.base, s.db, s.token

	fake.FailNext(twiliotest.InvalidTo)
	people := []struct{ number, turns string }{
		{"+919876500001", "hi|Asha|34|1|yes"},
		{"+919876500002", "hi|Ravi|12"},
		{"+919876500003", "hi"},
	}
	sent := 0
	for turn := range 5 {
		for _, p := range people {
			words := strings.Split(p.turns, "|")
			if turn >= len(words) {
				continue
			}
			sent++
			twilioInbound(t, base, token, p.number, words[turn], sent)
			waitFor(t, "the turn answered", func() bool { // each answered before the next, as people wait for the answer
				var n int
				_ = db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NOT NULL`).Scan(&n)
				return n == sent
			})
		}
	}

	signIn(t, ctx, base, "supervisor@example.org", sitePassword)
	step(t, ctx, "open the dashboard",
		chromedp.Click(css(`[data-testid="nav-d"]`)),
		chromedp.WaitVisible(css(`[data-testid="chart-messages"] svg`)),
		waitExact(`[data-testid="total-in"]`, "9"),
		waitExact(`[data-testid="table-failures"] [data-code="21211"] [data-testid="count"]`, "1"),
		waitExact(`[data-testid="table-flows"] [data-flow="clinic"] [data-testid="started"]`, "3"),
		waitExact(`[data-testid="table-flows"] [data-flow="clinic"] [data-testid="finished"]`, "2"),
	)
	shootDocs(t, ctx, "dashboard")
	step(t, ctx, "open the conversation of the one who stopped at their name",
		chromedp.Click(css(`[data-testid="nav-i"]`)),
		chromedp.WaitVisible(css(`[data-testid="search"]`)),
		chromedp.SendKeys(css(`[data-testid="search"]`), "+919876500003"),
		waitText(`[data-query="+919876500003"] [data-testid="hit"]`, "What is your name?"),
		chromedp.Click(css(`[data-query="+919876500003"] [data-testid="hit"]`)),
		waitText(`[data-testid="conversation-node"]`, "ask_name"),
	)
	step(t, ctx, "follow the link to the flow's map",
		chromedp.Click(css(`[data-testid="flow-map-link"]`)),
		chromedp.WaitVisible(css(`[data-testid="flow-map"]`)),
		waitTrue(`document.querySelectorAll('[data-testid="map-node"][data-current="true"]').length === 1 &&
			document.querySelector('[data-testid="map-node"][data-current="true"]').dataset.node === 'ask_name'`, "ask_name highlighted alone"),
		waitExact(`[data-testid="funnel-row"][data-node="welcome"] [data-testid="reached"]`, "3"),
		waitExact(`[data-testid="funnel-row"][data-node="ask_name"] [data-testid="left"]`, "2"),
		waitExact(`[data-testid="funnel-row"][data-node="booked"] [data-testid="reached"]`, "1"),
		waitExact(`[data-testid="funnel-row"][data-node="guardian"] [data-testid="reached"]`, "1"),
	)
	shootDocs(t, ctx, "flow-map")
}

// waitExact waits until an element matching sel holds exactly text.
func waitExact(sel, text string) chromedp.Action[chromedp.Void] {
	return waitTrue(fmt.Sprintf(`[...document.querySelectorAll(%q)].some(e => e.textContent.trim() === %q)`, sel, text), fmt.Sprintf("%q in %s", text, sel))
}
