package handlers_test

import (
	"context"
	"encoding/csv"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// seedDashboard writes a known three days (2026-11-02 to 04) of messages
// and conversations, and some just outside them, straight into the
// tables: the dashboard counts rows, however they came.
func (site *consoleSite) seedDashboard(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var contacts []int64
	for i := range 10 {
		c, _, err := store.NewContactStore(site.db, site.crypto).FindOrCreate(ctx, "whatsapp:+9198765000"+itoa(int64(10+i)))
		if err != nil {
			t.Fatal(err)
		}
		contacts = append(contacts, c.ID)
	}
	msg := func(dir, status, code, at string) {
		t.Helper()
		if _, err := site.db.Pool.Exec(ctx, `INSERT INTO messages (contact_id, direction, channel, provider, status, error_code, created_at)
			VALUES ($1, $2, 'whatsapp', 'twilio', $3, $4, $5)`, contacts[0], dir, status, code, at); err != nil {
			t.Fatal(err)
		}
	}
	msg("in", "received", "", "2026-11-01 23:59:59Z") // the day before: not counted
	msg("in", "received", "", "2026-11-02 08:00:00Z")
	msg("in", "received", "", "2026-11-02 09:00:00Z")
	msg("in", "received", "", "2026-11-02 23:59:59Z")
	msg("out", "delivered", "", "2026-11-02 08:00:01Z")
	msg("out", "failed", "63016", "2026-11-02 09:00:01Z")
	msg("in", "received", "", "2026-11-03 00:00:00Z")
	msg("out", "failed", "21211", "2026-11-03 10:00:00Z")
	msg("out", "failed", "21211", "2026-11-03 11:00:00Z")
	msg("out", "failed", "63016", "2026-11-03 12:00:00Z")
	msg("out", "delivered", "", "2026-11-03 13:00:00Z")
	msg("out", "failed", "", "2026-11-04 07:00:00Z")
	msg("out", "failed", "21211", "2026-11-05 00:00:00Z") // the day after: not counted
	conv := func(contact int, flow, node, status, started string, ended, handoff, answered any) {
		t.Helper()
		if _, err := site.db.Pool.Exec(ctx, `INSERT INTO conversations (contact_id, flow_id, flow_version, node, status, started_at, ended_at, handoff_at, handoff_answered_at)
			VALUES ($1, $2, 'v1', $3, $4, $5, $6, $7, $8)`, contacts[contact], flow, node, status, started, ended, handoff, answered); err != nil {
			t.Fatal(err)
		}
	}
	// Started before the range, finished in it: a finish of the range.
	conv(9, "clinic", "booked", "ended", "2026-11-01 23:00:00Z", "2026-11-02 00:30:00Z", nil, nil)
	conv(1, "clinic", "booked", "ended", "2026-11-02 10:00:00Z", "2026-11-02 10:05:00Z", nil, nil)
	conv(2, "clinic", "goodbye", "ended", "2026-11-02 11:00:00Z", "2026-11-03 09:00:00Z", nil, nil)
	conv(3, "clinic", "handoff", "handoff", "2026-11-02 12:00:00Z", nil, "2026-11-02 12:01:00Z", "2026-11-02 12:03:00Z")                  // waited 2 min
	conv(4, "triage", "ask_need", "ended", "2026-11-03 08:00:00Z", "2026-11-03 08:30:00Z", nil, nil)                                      // timed out
	conv(5, "clinic", "handoff", "ended", "2026-11-03 09:00:00Z", "2026-11-03 10:00:00Z", "2026-11-03 09:01:00Z", "2026-11-03 09:11:00Z") // 10 min
	conv(6, "clinic", "handoff", "handoff", "2026-11-03 13:00:00Z", nil, "2026-11-03 13:00:00Z", nil)                                     // nobody yet
	conv(7, "clinic", "ask_name", "active", "2026-11-04 07:00:00Z", nil, nil, nil)
	conv(8, "triage", "handoff", "handoff", "2026-11-04 07:30:00Z", nil, "2026-11-04 08:00:00Z", "2026-11-04 08:05:00Z") // 5 min
}

// wantDashboard is what the seeded days add up to.
var wantDashboard = handlers.Report{
	Range: "custom", From: "2026-11-02", To: "2026-11-04",
	Days: []handlers.ReportDay{
		{Day: "2026-11-02", In: 3, Out: 2, Started: 3, Finished: 2, HandedOff: 1},
		{Day: "2026-11-03", In: 1, Out: 4, Started: 3, Finished: 3, HandedOff: 2},
		{Day: "2026-11-04", In: 0, Out: 1, Started: 2, Finished: 0, HandedOff: 1},
	},
	Totals:   handlers.ReportDay{In: 4, Out: 7, Started: 8, Finished: 5, HandedOff: 4},
	Handoffs: handlers.ReportWait{Answered: 3, Waiting: 1, MedianSeconds: 300, P90Seconds: 540}, // of 120, 300, 600 s
	Failures: []handlers.ReportFailed{{Code: "21211", Count: 2}, {Code: "63016", Count: 2}, {Code: "", Count: 1}},
	Flows: []handlers.ReportFlow{
		{Flow: "clinic", Started: 6, Finished: 3, Stopped: 1}, // booked twice and goodbye; ended at the hand-off
		{Flow: "triage", Started: 2, Finished: 0, Stopped: 1}, // timed out at ask_need
	},
}

const seededRange = "?range=custom&from=2026-11-02&to=2026-11-04"

// TestDashboard_FiguresOfAKnownDataSet checks every figure of three known
// days through the API, the CSV and the page, twice: the second time the
// settled days are read from what the first counted.
func TestDashboard_FiguresOfAKnownDataSet(t *testing.T) {
	site := newConsoleSite(t, nil)
	site.seedDashboard(t)
	doc := loadAPIDoc(t, site.base)
	api := site.api(t, models.RoleSupervisor, doc)
	page := site.as(t, models.RoleAdmin)
	for _, round := range []string{"first", "second"} {
		var got handlers.Report
		api.get(t, "/api/v1/dashboard"+seededRange, &got)
		if !reflect.DeepEqual(got, wantDashboard) {
			t.Errorf("%s API answer:\n got %+v\nwant %+v", round, got, wantDashboard)
		}
		status, raw := api.call(t, "GET", "/api/v1/dashboard.csv"+seededRange, nil)
		if status != 200 {
			t.Fatalf("CSV: %d", status)
		}
		checkCSV(t, round, string(raw))
		resp, html := page.do(t, "GET", "/dashboard"+seededRange, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("page: %d", resp.StatusCode)
		}
		checkPage(t, round, html)
	}
	if n := site.count(t, `SELECT count(*) FROM dashboard_days`); n != 3 {
		t.Errorf("%d days kept, want the 3 settled days of the range", n)
	}
}

func checkCSV(t *testing.T, round, body string) {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("%s CSV: %v", round, err)
	}
	got := map[string]string{}
	for _, r := range rows[1:] {
		got[r[0]+"/"+r[1]] = r[2]
	}
	for key, want := range map[string]string{
		"messages_in/2026-11-02": "3", "messages_out/2026-11-03": "4", "messages_out/2026-11-04": "1",
		"conversations_started/2026-11-03": "3", "conversations_finished/2026-11-02": "2", "conversations_handed_off/2026-11-03": "2",
		"messages_in/total": "4", "messages_out/total": "7", "conversations_finished/total": "5",
		"handoffs_answered/": "3", "handoffs_waiting/": "1", "handoff_wait_median_seconds/": "300", "handoff_wait_p90_seconds/": "540",
		"send_failures/21211": "2", "send_failures/63016": "2", "send_failures/": "1",
		"flow_started/clinic": "6", "flow_finished/clinic": "3", "flow_stopped/clinic": "1", "flow_started/triage": "2", "flow_stopped/triage": "1",
	} {
		if got[key] != want {
			t.Errorf("%s CSV %s = %q, want %s", round, key, got[key], want)
		}
	}
}

func checkPage(t *testing.T, round, html string) {
	t.Helper()
	rows := regexp.MustCompile(`data-testid="row-messages" data-day="([^"]+)">.*?data-testid="in">(\d+)</td><td data-testid="out">(\d+)<`).FindAllStringSubmatch(html, -1)
	conv := regexp.MustCompile(`data-testid="row-conversations" data-day="([^"]+)">.*?data-testid="started">(\d+)</td><td data-testid="finished">(\d+)</td><td data-testid="handed-off">(\d+)<`).FindAllStringSubmatch(html, -1)
	if len(rows) != 3 || len(conv) != 3 {
		t.Fatalf("%s page: %d message rows and %d conversation rows, want 3 each", round, len(rows), len(conv))
	}
	for i, d := range wantDashboard.Days {
		if rows[i][1] != d.Day || rows[i][2] != itoa(d.In) || rows[i][3] != itoa(d.Out) {
			t.Errorf("%s page messages row %d: %v, want %+v", round, i, rows[i][1:], d)
		}
		if conv[i][2] != itoa(d.Started) || conv[i][3] != itoa(d.Finished) || conv[i][4] != itoa(d.HandedOff) {
			t.Errorf("%s page conversations row %d: %v, want %+v", round, i, conv[i][1:], d)
		}
	}
	for _, want := range []string{
		`data-testid="total-in">4<`, `data-testid="total-out">7<`, `data-testid="wait-median">5m0s<`, `data-testid="wait-p90">9m0s<`,
		`data-code="21211"><th scope="row" class="font-normal">21211</th><td data-testid="count">2<`,
		`data-code="none given"><th scope="row" class="font-normal">none given</th><td data-testid="count">1<`,
		`data-testid="started">6</td><td data-testid="finished">3</td><td data-testid="stopped">1<`,
		// Each chart has its title, and its figures for a screen reader.
		`<title>Messages per day</title>`, `aria-label="Messages per day: In: 11-02 3, 11-03 1, 11-04 0; Out: 11-02 2, 11-03 4, 11-04 1"`,
		`aria-label="Send failures by error code: Failed sends: 21211 2, 63016 2, none given 1"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("%s page lacks %s", round, want)
		}
	}
}

// TestDashboard_TodayIsCountedLive: today's rows are counted at each call
// (never kept), so a message written between two calls shows in the
// second.
func TestDashboard_TodayIsCountedLive(t *testing.T) {
	site := newConsoleSite(t, nil)
	ctx := context.Background()
	c, _, err := store.NewContactStore(site.db, site.crypto).FindOrCreate(ctx, "whatsapp:+919876500001")
	if err != nil {
		t.Fatal(err)
	}
	api := site.api(t, models.RoleAdmin, loadAPIDoc(t, site.base))
	for want := int64(1); want <= 2; want++ {
		if _, err := site.db.Pool.Exec(ctx, `INSERT INTO messages (contact_id, direction, channel, provider, status) VALUES ($1, 'in', 'whatsapp', 'twilio', 'received')`, c.ID); err != nil {
			t.Fatal(err)
		}
		var got handlers.Report
		api.get(t, "/api/v1/dashboard?range=today", &got)
		if len(got.Days) != 1 || got.Days[0].Day != time.Now().UTC().Format(time.DateOnly) || got.Totals.In != want {
			t.Errorf("call %d: %+v, want today with %d in", want, got.Days, want)
		}
	}
	if n := site.count(t, `SELECT count(*) FROM dashboard_days`); n != 0 {
		t.Errorf("%d days kept; today is never kept", n)
	}
}

// TestDashboard_SupervisorsAndAdminsOnly: agents and viewers neither see
// the dashboard in the navigation nor open it; a bad range is refused.
func TestDashboard_SupervisorsAndAdminsOnly(t *testing.T) {
	site := newConsoleSite(t, nil)
	for _, tt := range []struct {
		role models.Role
		may  bool
	}{{models.RoleViewer, false}, {models.RoleAgent, false}, {models.RoleSupervisor, true}, {models.RoleAdmin, true}} {
		b := site.as(t, tt.role)
		_, home := b.do(t, "GET", "/", nil, nil)
		if got := strings.Contains(home, `data-testid="nav-d"`); got != tt.may {
			t.Errorf("%s: dashboard in the navigation = %v, want %v", tt.role, got, tt.may)
		}
		resp, _ := b.do(t, "GET", "/dashboard", nil, nil)
		if want := map[bool]int{true: 200, false: 403}[tt.may]; resp.StatusCode != want {
			t.Errorf("%s: /dashboard %d, want %d", tt.role, resp.StatusCode, want)
		}
	}
	api := site.api(t, models.RoleSupervisor, loadAPIDoc(t, site.base))
	for _, q := range []string{"?range=year", "?range=custom&from=2026-11-04&to=2026-11-02", "?range=custom&from=2020-01-01&to=2026-11-02", "?range=custom&from=2026-11-02"} {
		if status, _ := api.call(t, "GET", "/api/v1/dashboard"+q, nil); status != 400 {
			t.Errorf("%s: %d, want 400", q, status)
		}
	}
}
