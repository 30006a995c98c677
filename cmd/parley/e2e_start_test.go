package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Parley writes first, in the real server against a fake Twilio: a
// supervisor starts the clinic flow for a new number from the console's
// form (a mistyped number refused beside its field, the variables kept),
// lands on the contact's page and watches the opening go out; the JSON
// API starts another, and its retry with the same Idempotency-Key starts
// nothing more.
func TestBrowser_StartAConversation(t *testing.T) {
	ctx := newBrowser(t)
	const token = "0123456789abcdef0123456789abcdef"
	fake := twiliotest.NewAPI(e2eAccountSID, token)
	t.Cleanup(fake.Close)
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	base := "http://" + env["PARLEY_ADDR"]
	for k, v := range map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": e2eAccountSID, "PARLEY_TWILIO_AUTH_TOKEN": token,
		"PARLEY_TWILIO_FROM": "+14155550000", "PARLEY_TWILIO_API_BASE_URL": fake.URL, "PARLEY_PUBLIC_URL": base, "PARLEY_DEFAULT_REGION": "IN",
		"PARLEY_TIME_ZONE": "Asia/Kolkata"} {
		env[k] = v
	}
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	hash, _ := auth.HashPassword("a long enough password")
	if _, err := store.NewStaffStore(db).Create(context.Background(), "", "lead@example.org", models.RoleSupervisor, hash); err != nil {
		t.Fatal(err)
	}
	start(t, env, "serve")
	sentTo := func(to, text string) int {
		n := 0
		for _, s := range fake.Sent() {
			if s.To == to && strings.Contains(s.Body, text) {
				n++
			}
		}
		return n
	}

	signIn(t, ctx, base, "lead@example.org", "a long enough password")
	step(t, ctx, "open the form",
		chromedp.Click(css(`[data-testid="nav-n"]`)),
		chromedp.WaitVisible(css(`[data-testid="start-form"]`)),
		chromedp.SendKeys(css(`[data-testid="start-phone"]`), "12"),
		chromedp.Click(css(`[data-testid="start-sms"]`)),
		chromedp.SetValue(css(`[data-testid="start-flow"]`), "clinic"),
		chromedp.SendKeys(css(`[aria-label="Variable 1 name"]`), "doctor"),
		chromedp.SendKeys(css(`[aria-label="Variable 1 value"]`), "Dr Rao"),
		chromedp.Click(css(`[data-testid="start-submit"]`)),
		waitText(`[data-testid="error-phone"]`, "not a phone number"),
	)
	shoot(t, ctx, "start-refused")
	kept, err := chromedp.Run(ctx, chromedp.Value(css(`[aria-label="Variable 1 value"]`)))
	if err != nil || kept != "Dr Rao" {
		t.Fatalf("the variable's value after the refusal: %q, %v", kept, err)
	}
	step(t, ctx, "correct the number and start",
		chromedp.SetValue(css(`[data-testid="start-phone"]`), "098765 43210"),
		chromedp.Click(css(`[data-testid="start-submit"]`)),
		chromedp.WaitVisible(css(`[data-testid="timeline"]`)),
		waitSent("clinic assistant"),
	)
	shoot(t, ctx, "started")
	if n := sentTo("+919876543210", "clinic assistant"); n != 1 {
		t.Fatalf("Twilio got the opening %d times", n)
	}

	// The API, as a scheduling system calls it, retrying once.
	resp, err := http.Post(base+"/auth/v1/token?grant_type=password", "application/json",
		strings.NewReader(`{"email":"lead@example.org","password":"a long enough password"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	var ids []string
	for range 2 {
		req, _ := http.NewRequest("POST", base+"/api/v1/conversations", strings.NewReader(
			`{"phone":"+919812345678","channel":"sms","flow":"clinic","variables":{"appointment_at":"2026-12-09 10:00"}}`))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "booking-4711")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var res struct {
			ConversationID json.Number `json:"conversation_id"`
		}
		if (resp.StatusCode != 201 && resp.StatusCode != 200) || json.Unmarshal(body, &res) != nil {
			t.Fatalf("the API's start: %d %s", resp.StatusCode, body)
		}
		ids = append(ids, res.ConversationID.String())
	}
	if ids[0] != ids[1] {
		t.Fatalf("the retry answered conversation %s, the first %s", ids[1], ids[0])
	}
	waitFor(t, "the API's opening at Twilio", func() bool { return sentTo("+919812345678", "clinic assistant") == 1 })
	var conversations int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM conversations`).Scan(&conversations); err != nil || conversations != 2 {
		t.Fatalf("%d conversations (%v), want 2", conversations, err)
	}
}
