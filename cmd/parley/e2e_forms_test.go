package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Finding a British number typed as people there type it, in a GB
// deployment, and a reply that keeps its words: refused in place with the
// reason (the contact opted out), then sent after the session ended and
// the member signed in again, the draft still in the box.
func TestBrowser_NumberSearchAndAReplyThatKeepsItsWords(t *testing.T) {
	ctx := newBrowser(t)
	const token = "0123456789abcdef0123456789abcdef"
	fake := twiliotest.NewAPI(e2eAccountSID, token)
	t.Cleanup(fake.Close)
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	base := "http://" + env["PARLEY_ADDR"]
	for k, v := range map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": e2eAccountSID, "PARLEY_TWILIO_AUTH_TOKEN": token,
		"PARLEY_TWILIO_FROM": "+14155550000", "PARLEY_TWILIO_API_BASE_URL": fake.URL, "PARLEY_PUBLIC_URL": base, "PARLEY_DEFAULT_REGION": "GB"} {
		env[k] = v
	}
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	hash, _ := auth.HashPassword("a long enough password")
	if _, err := store.NewStaffStore(db).Create(context.Background(), "", "admin@example.org", models.RoleAdmin, hash); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) {
		t.Helper()
		if _, err := db.Pool.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	start(t, env, "serve")
	twilioInbound(t, base, token, "+447700900117", "hello there", 1)
	twilioInbound(t, base, token, "+447700900999", "good morning", 2) // someone else, in the list until a search
	waitFor(t, "the flow's first answers", func() bool { return len(fake.Sent()) > 1 })

	signIn(t, ctx, base, "admin@example.org", "a long enough password")
	step(t, ctx, "search by the number as it is written in Britain",
		chromedp.SendKeys(css(`[data-testid="search"]`), "07700 900117"),
		waitText(`[data-query="07700 900117"] [data-testid="hit"]`, "+447700900117"),
		waitTrue(`document.querySelectorAll('[data-query="07700 900117"] [data-testid="hit"]').length === 1`, "one row for the conversation"),
	)
	shoot(t, ctx, "search-national")
	step(t, ctx, "search by its last digits",
		waitTrue(`(document.querySelector('[data-testid="search"]').value = "") === ""`, "the search box emptied"),
		chromedp.SendKeys(css(`[data-testid="search"]`), "900117"),
		waitText(`[data-query="900117"] [data-testid="hit"]`, "+447700900117"),
		waitTrue(`document.querySelectorAll('[data-query="900117"] [data-testid="hit"]').length === 1`, "only the contact whose number ends so"),
	)
	step(t, ctx, "open the conversation",
		chromedp.Click(css(`[data-testid="hit"]`)),
		chromedp.WaitVisible(css(`[data-testid="reply-form"] textarea`)),
	)
	const words = "See you at ten tomorrow."
	exec(`UPDATE contacts SET opted_out_at = now()`)
	step(t, ctx, "a reply refused says why, the words kept",
		chromedp.SendKeys(css(`[data-testid="reply-form"] textarea`), words),
		chromedp.Click(css(`[data-testid="reply"]`)),
		waitText(`[data-testid="reply-error"]`, "opted out"),
		waitTrue(fmt.Sprintf(`document.querySelector('[data-testid="reply-form"] textarea').value === %q`, words), "the words still in the box"),
	)
	shoot(t, ctx, "reply-refused")
	// The contact writes START again; meanwhile the session ends.
	exec(`UPDATE contacts SET opted_out_at = NULL`)
	exec(`DELETE FROM staff_sessions`)
	step(t, ctx, "send after the session ended: sign in again, back to the draft",
		chromedp.Click(css(`[data-testid="reply"]`)),
		chromedp.WaitVisible(css(`[data-testid="login-form"]`)),
		chromedp.SendKeys(css(`input[name="email"]`), "admin@example.org"),
		chromedp.SendKeys(css(`input[name="password"]`), "a long enough password"),
		chromedp.Click(css(`[data-testid="sign-in"]`)),
		waitTrue(fmt.Sprintf(`(document.querySelector('[data-testid="reply-form"] textarea') || {}).value === %q`, words), "the draft back in the reply box"),
	)
	step(t, ctx, "send it; the draft is gone once sent",
		chromedp.Click(css(`[data-testid="reply"]`)),
		waitText(`[data-testid="message-out"]`, words),
		waitTrue(`(document.querySelector('[data-testid="reply-form"] textarea') || {}).value === "" &&
			Object.keys(sessionStorage).every(k => !k.startsWith("parley-draft:"))`, "an empty box and no draft kept"),
	)
	waitFor(t, "the reply at Twilio", func() bool {
		for _, s := range fake.Sent() {
			if s.Body == words && strings.HasSuffix(s.To, "7700900117") {
				return true
			}
		}
		return false
	})
}
