package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// A supervisor's broadcast, in a real browser against the real server:
// upload a CSV of numbers and names, see whom it reaches and the line that
// is not a number, confirm, and watch the progress (refreshed by the page
// itself) to the end, while Twilio takes one message for each person.
func TestBrowser_BroadcastFromCSV(t *testing.T) {
	ctx := newBrowser(t)
	const token = "0123456789abcdef0123456789abcdef"
	const people = 60
	fake := twiliotest.NewAPI(e2eAccountSID, token)
	t.Cleanup(fake.Close)
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	base := "http://" + env["PARLEY_ADDR"]
	for k, v := range map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": e2eAccountSID, "PARLEY_TWILIO_AUTH_TOKEN": token,
		"PARLEY_TWILIO_FROM": "+14155550000", "PARLEY_TWILIO_API_BASE_URL": fake.URL, "PARLEY_PUBLIC_URL": base, "PARLEY_DEFAULT_REGION": "IN",
		"PARLEY_SEND_RATE": "15", "PARLEY_TIME_ZONE": "Asia/Kolkata"} { // slow enough to watch it go
		env[k] = v
	}
	start(t, env, "serve")
	addVisitReminder(t, fake, env)
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	hash, _ := auth.HashPassword("a long enough password")
	if _, err := store.NewStaffStore(db).Create(context.Background(), "", "lead@example.org", models.RoleSupervisor, hash); err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("phone,name\n")
	for i := range people {
		fmt.Fprintf(&csv, "98765 %05d,Person %d\n", i, i) // as people type them: national, with a space
		if i == 9 {
			csv.WriteString("call me,Nobody\n") // line 12
		}
	}
	file := filepath.Join(t.TempDir(), "flu-clinic.csv")
	if err := os.WriteFile(file, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	signIn(t, ctx, base, "lead@example.org", "a long enough password")
	step(t, ctx, "open Broadcasts and plan one from the CSV",
		chromedp.Click(css(`[data-testid="nav-b"]`)),
		chromedp.WaitVisible(css(`[data-testid="new-broadcast"]`)),
		chromedp.SendKeys(css(`[data-testid="broadcast-name"]`), "Flu clinic on Saturday"),
		chromedp.SendKeys(css(`[data-testid="broadcast-template"]`), "visit_reminder"),
		chromedp.SendKeys(css(`[data-testid="broadcast-params"]`), "1={{name}}"),
		chromedp.SetUploadFiles(css(`[data-testid="broadcast-csv"]`), []string{file}),
	)
	shoot(t, ctx, "broadcast-new")
	step(t, ctx, "count whom it reaches",
		chromedp.Click(css(`[data-testid="plan-broadcast"]`)),
		waitText(`[data-testid="broadcast-status"]`, "draft"),
		waitText(`[data-testid="count-reached"]`, fmt.Sprint(people)),
		waitText(`[data-testid="bad-lines"]`, "12"),
		waitText(`[data-testid="excluded"]`, "Not a valid number: 1"),
	)
	shoot(t, ctx, "broadcast-plan")
	if n := len(fake.Sent()); n != 0 {
		t.Fatalf("a draft sent %d messages", n)
	}
	step(t, ctx, "confirm, and watch it go",
		chromedp.Click(css(`[data-testid="broadcast-confirm"]`)),
		waitText(`[data-testid="broadcast-status"]`, "running"),
		waitTrue(`+document.querySelector('[data-testid="count-sent"]').textContent > 0`, "some sent, shown without a reload"),
	)
	shoot(t, ctx, "broadcast-running")
	step(t, ctx, "watch it to the end",
		waitText(`[data-testid="broadcast-status"]`, "done"),
		waitText(`[data-testid="count-sent"]`, fmt.Sprint(people)),
		chromedp.WaitVisible(css(`[data-testid="broadcast-chart"]`)),
	)
	shoot(t, ctx, "broadcast-done")
	got := map[string]int{}
	for _, s := range fake.Sent() {
		got[s.To]++
	}
	for i := range people {
		if n := got[fmt.Sprintf("whatsapp:+9198765%05d", i)]; n != 1 {
			t.Errorf("person %d got %d messages, want 1", i, n)
		}
	}
}
