package handlers_test

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/simulator"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// TestFlowMap_FunnelAndContactNode runs six people through the clinic
// flow down different branches (booked; under 18, sent to goodbye;
// handed off twice; stopped at their age; stopped at their name), turn by turn
// as they write, through the pipeline; the map's funnel counts them node
// by node, a contact's node is highlighted (and the read audited), and
// each hand-off's wait runs until a supervisor takes it or replies.
func TestFlowMap_FunnelAndContactNode(t *testing.T) {
	site := newConsoleSite(t, nil)
	ctx := context.Background()
	if err := site.pipe.Start(ctx); err != nil {
		t.Fatal(err)
	}
	contacts := store.NewContactStore(site.db, site.crypto)
	people := []struct {
		number string
		turns  []string
		nodes  []string // where each turn leaves them
	}{
		{"+919800000001", []string{"hi", "Asha", "34", "1", "yes"}, []string{"ask_name", "ask_age", "ask_need", "ask_confirm", "booked"}},
		{"+919800000002", []string{"hi", "Ravi", "12"}, []string{"ask_name", "ask_age", "goodbye"}},
		{"+919800000003", []string{"hi", "Meena", "40", "3"}, []string{"ask_name", "ask_age", "ask_need", "handoff"}},
		{"+919800000004", []string{"hi", "Joe"}, []string{"ask_name", "ask_age"}},
		{"+919800000005", []string{"hi"}, []string{"ask_name"}},
		{"+919800000006", []string{"hi", "Nia", "50", "3"}, []string{"ask_name", "ask_age", "ask_need", "handoff"}},
	}
	ids := make([]int64, len(people))
	for turn := range 5 {
		for i, p := range people {
			if turn >= len(p.turns) {
				continue
			}
			in := channel.Inbound{Provider: channel.Simulator, ProviderMessageID: simulator.NewID(), From: simulator.Address(p.number), To: channel.Simulator, Body: p.turns[turn]}
			if _, err := site.pipe.Ingest(ctx, []channel.Inbound{in}); err != nil {
				t.Fatal(err)
			}
			if ids[i] == 0 {
				c, _, err := contacts.FindOrCreate(ctx, simulator.Address(p.number))
				if err != nil {
					t.Fatal(err)
				}
				ids[i] = c.ID
			}
			want := p.nodes[turn]
			waitFor(t, "contact "+itoa(int64(i))+" at "+want, func() bool {
				var node string
				_ = site.db.Pool.QueryRow(ctx, `SELECT node FROM conversations WHERE contact_id = $1 ORDER BY started_at DESC LIMIT 1`, ids[i]).Scan(&node)
				return node == want
			})
		}
	}
	want := map[string][2]int64{ // reached, went on
		"welcome": {6, 6}, "ask_name": {6, 5}, "ask_age": {5, 4}, "route": {4, 4}, "guardian": {1, 1}, "goodbye": {1, 0},
		"ask_need": {3, 3}, "ask_confirm": {1, 1}, "booked": {1, 0}, "handoff": {2, 0},
	}
	sup := site.as(t, models.RoleSupervisor)
	resp, page := sup.do(t, "GET", "/flows/clinic?contact="+itoa(ids[3]), nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("the flow map: %d", resp.StatusCode)
	}
	rows := regexp.MustCompile(`data-testid="funnel-row" data-node="([^"]+)"[^>]*>.*?data-testid="reached">(\d+)</td><td data-testid="left">(\d+)<`).FindAllStringSubmatch(page, -1)
	if len(rows) != len(want) {
		t.Fatalf("the funnel has %d rows, want %d:\n%s", len(rows), len(want), page)
	}
	for _, r := range rows {
		if w := want[r[1]]; r[2] != itoa(w[0]) || r[3] != itoa(w[1]) {
			t.Errorf("funnel %s: reached %s, went on %s; want %d, %d", r[1], r[2], r[3], w[0], w[1])
		}
	}
	// The map: every node drawn, the contact's highlighted (Joe: his age).
	if n := strings.Count(page, `data-testid="map-node"`); n != len(want) {
		t.Errorf("the map draws %d nodes, want %d", n, len(want))
	}
	current := regexp.MustCompile(`data-testid="map-node" data-node="([^"]+)" data-current="true"`).FindAllStringSubmatch(page, -1)
	if len(current) != 1 || current[0][1] != "ask_age" || !strings.Contains(page, `data-testid="map-contact-node">ask_age<`) {
		t.Errorf("highlighted %v, want ask_age alone", current)
	}
	for _, label := range []string{">next<", ">answer yes<", ">if age &lt; 18<", ">answer other<"} {
		if !strings.Contains(page, `data-testid="map-edge">`+strings.TrimPrefix(label, ">")) {
			t.Errorf("the map has no edge labelled %s", label)
		}
	}
	var audited int
	_ = site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'contact.view' AND subject_id = $1`, itoa(ids[3])).Scan(&audited)
	if audited != 1 {
		t.Errorf("the map's read of the contact's node audited %d times, want 1", audited)
	}
	// The conversation's page links to it.
	if _, page := sup.do(t, "GET", "/contacts/"+itoa(ids[3]), nil, nil); !strings.Contains(page, `href="/flows/clinic?contact=`+itoa(ids[3])+`"`) {
		t.Error("the conversation's page has no link to its flow's map")
	}
	// The map alone (no contact) reads nobody: nothing highlighted, no audit.
	if _, page := sup.do(t, "GET", "/flows/clinic?range=today", nil, nil); strings.Contains(page, `data-current="true"`) {
		t.Error("the map without a contact highlights a node")
	}
	// A range before any of them started counts nobody.
	if _, page := sup.do(t, "GET", "/flows/clinic?"+url.Values{"range": {"custom"}, "from": {"2020-01-01"}, "to": {"2020-01-02"}}.Encode(), nil, nil); !strings.Contains(page, `data-node="welcome" class="border-t border-slate-100"><th scope="row" class="px-3 py-1 font-mono font-normal">welcome</th><td data-testid="reached">0<`) {
		t.Error("a range before anyone started counts someone")
	}

	// Meena's hand-off waits until a supervisor takes it, Nia's until one
	// replies to her.
	api := site.api(t, models.RoleAdmin, loadAPIDoc(t, site.base))
	var before, after handlers.Report
	api.get(t, "/api/v1/dashboard?range=today", &before)
	var convID int64
	_ = site.db.Pool.QueryRow(ctx, `SELECT id FROM conversations WHERE contact_id = $1`, ids[2]).Scan(&convID)
	_, page = sup.do(t, "GET", "/handoffs", nil, nil)
	csrf := formCSRF.FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no CSRF token on the hand-offs page")
	}
	if resp, _ := sup.do(t, "POST", "/conversations/"+itoa(convID)+"/take", url.Values{"_csrf": {csrf[1]}, "back": {"/handoffs"}}, nil); resp.StatusCode != 303 {
		t.Fatalf("take: %d", resp.StatusCode)
	}
	if status, raw := api.call(t, "POST", "/api/v1/contacts/"+itoa(ids[5])+"/reply", map[string]string{"text": "A nurse will call you."}); status != 202 {
		t.Fatalf("reply: %d %s", status, raw)
	}
	api.get(t, "/api/v1/dashboard?range=today", &after)
	if before.Handoffs.Waiting != 2 || before.Handoffs.Answered != 0 || after.Handoffs.Waiting != 0 || after.Handoffs.Answered != 2 ||
		before.Totals.HandedOff != 2 || before.Totals.Started != 6 || before.Totals.Finished != 2 {
		t.Errorf("hand-offs before the take %+v (totals %+v), after %+v", before.Handoffs, before.Totals, after.Handoffs)
	}
	if fl := before.Flows; len(fl) != 1 || fl[0] != (handlers.ReportFlow{Flow: "clinic", Started: 6, Finished: 2}) {
		t.Errorf("flows %+v, want clinic started 6, finished 2 (booked, goodbye)", fl)
	}
}
