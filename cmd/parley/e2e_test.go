package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// The console's end-to-end tests drive a real headless Chromium against
// the real server. They are skipped, saying why, only where no Chromium is
// installed; .ci/run installs Debian's.

// chromiumPath finds the browser: PARLEY_CHROMIUM, else the usual names.
func chromiumPath() string {
	if p := os.Getenv("PARLEY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts a headless Chromium with an empty profile and no
// background traffic (this machine's network is closed); a test drives
// its first tab through the returned context.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("no Chromium installed: `apt-get install chromium` (or set PARLEY_CHROMIUM) to run the console's browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// artifacts is where the browser tests leave their screenshots:
// PARLEY_ARTIFACTS, else artifacts/e2e at the repository's root.
func artifacts(t *testing.T) string {
	dir := os.Getenv("PARLEY_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts", "e2e")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shoot saves the page as name.png among the artifacts.
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(artifacts(t), name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// step runs browser actions, failing the test with what was being done
// and a screenshot of where it stopped. Each action has its own deadline,
// so a hang names the action and leaves time to see where the page was.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	// A new tab starts with the first action run in its context and closes
	// with that context: start it here, under the test's own.
	err := chromedp.Do(ctx)
	for i := 0; err == nil && i < len(actions); i++ {
		actx, cancel := context.WithTimeout(ctx, 40*time.Second)
		if err = chromedp.Do(actx, actions[i]); err != nil {
			err = fmt.Errorf("action %d of %d: %w", i+1, len(actions), err)
		}
		cancel()
	}
	if err != nil {
		if png, shotErr := chromedp.Run(ctx, chromedp.FullScreenshot(90)); shotErr == nil {
			_ = os.WriteFile(filepath.Join(artifacts(t), "failed-"+t.Name()+".jpg"), png, 0o644)
		}
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("%s (at %s): %v", what, loc, err)
	}
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// waitText waits until an element matching sel holds text, across a page
// load: a poll that a navigation cut off starts again on the new page.
func waitText(sel, text string) chromedp.Action[chromedp.Void] {
	return waitTrue(fmt.Sprintf(`[...document.querySelectorAll(%q)].some(e => e.textContent.includes(%q))`, sel, text),
		fmt.Sprintf("%q in %s", text, sel))
}

// waitSent waits until the outbound message saying text shows it left
// (sent, delivered or read), without the page being loaded again for it.
func waitSent(text string) chromedp.Action[chromedp.Void] {
	return waitTrue(fmt.Sprintf(`[...document.querySelectorAll('[data-testid="message-out"]')].some(e => e.textContent.includes(%q) &&
		e.querySelector('[data-testid="ticks-sent"], [data-testid="ticks-delivered"], [data-testid="ticks-read"]'))`, text),
		fmt.Sprintf("%q shown as sent", text))
}

// waitTrue waits until the script expr is true, across a page load as
// waitText does; what names it in the error.
func waitTrue(expr, what string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			v, err := poll(ctx, tg)
			// A page load under the poll ends it with a DevTools server
			// error (-32000: context gone, target navigated).
			if err == nil || time.Now().After(deadline) || !strings.Contains(err.Error(), "(-32000)") {
				if err != nil {
					err = fmt.Errorf("waiting for %s: %w", what, err)
				}
				return v, err
			}
			select {
			case <-ctx.Done():
				return v, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// signIn fills the sign-in form at base and waits for the inbox.
func signIn(t *testing.T, ctx context.Context, base, email, password string) {
	t.Helper()
	step(t, ctx, "sign in as "+email,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(css(`[data-testid="login-form"]`)),
		chromedp.SendKeys(css(`input[name="email"]`), email),
		chromedp.SendKeys(css(`input[name="password"]`), password),
		chromedp.Click(css(`[data-testid="sign-in"]`)),
		chromedp.WaitVisible(css(`[data-testid="search"]`)),
	)
}

// twilioInbound posts a signed Twilio webhook from number saying body and
// fails the test unless it is acknowledged.
func twilioInbound(t *testing.T, base, token, number, body string, n int) {
	t.Helper()
	if status := postTwilio(base, token, number, body, n); status != 200 {
		t.Errorf("the signed webhook: %d", status)
	}
}

// postTwilio posts a signed Twilio webhook and returns the status (0: no
// answer, the connection refused or cut).
func postTwilio(base, token, number, body string, n int) int {
	// Not the fake's own pattern (SM and a counter): an inbound and an
	// outbound message never share a SID at Twilio.
	params := map[string]string{"MessageSid": fmt.Sprintf("SMfeed%028d", n), "AccountSid": e2eAccountSID, "From": number, "To": "+14155550000",
		"Body": body, "NumMedia": "0"}
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	req, _ := http.NewRequest("POST", base+"/webhooks/twilio", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliotest.Sign(token, base+"/webhooks/twilio", params))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

const e2eAccountSID = "AC0123456789abcdef0123456789abcdef"

// A staff day in the console, in a real browser against the real server:
// sign in, find a contact by phone, open the conversation, watch a signed
// webhook arrive live, override the state, reply, resend a failed
// message, change a member's role, sign out.
func TestBrowser_ConsoleEndToEnd(t *testing.T) {
	ctx := newBrowser(t)
	const token = "0123456789abcdef0123456789abcdef"
	fake := twiliotest.NewAPI(e2eAccountSID, token)
	t.Cleanup(fake.Close)
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	base := "http://" + env["PARLEY_ADDR"]
	for k, v := range map[string]string{"PARLEY_TWILIO_ACCOUNT_SID": e2eAccountSID, "PARLEY_TWILIO_AUTH_TOKEN": token,
		"PARLEY_TWILIO_FROM": "+14155550000", "PARLEY_TWILIO_API_BASE_URL": fake.URL, "PARLEY_PUBLIC_URL": base, "PARLEY_DEFAULT_REGION": "IN"} {
		env[k] = v
	}
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	staff := store.NewStaffStore(db)
	hash, _ := auth.HashPassword("a long enough password")
	for email, role := range map[string]models.Role{"admin@example.org": models.RoleAdmin, "agent@example.org": models.RoleAgent} {
		if _, err := staff.Create(context.Background(), "", email, role, hash); err != nil {
			t.Fatal(err)
		}
	}
	start(t, env, "serve")

	// Asha writes; Twilio refuses the flow's first reply for good.
	fake.FailNext(twiliotest.InvalidTo)
	twilioInbound(t, base, token, "+919876543210", "hello there", 1)
	waitFor(t, "the flow's question sent", func() bool {
		for _, s := range fake.Sent() {
			if strings.Contains(s.Body, "What is your name?") {
				return true
			}
		}
		return false
	})

	signIn(t, ctx, base, "admin@example.org", "a long enough password")
	step(t, ctx, "search by the number as people type it",
		chromedp.SendKeys(css(`[data-testid="search"]`), "098765 43210"),
		// The inbox lists everyone before a search: wait for this query's answer.
		waitText(`[data-query="098765 43210"] [data-testid="hit"]`, "What is your name?"),
	)
	shoot(t, ctx, "inbox")
	step(t, ctx, "open the conversation",
		chromedp.Click(css(`[data-testid="hit"]`)),
		chromedp.WaitVisible(css(`[data-testid="timeline"]`)),
		waitText(`[data-testid="message-in"]`, "hello there"),
		waitText(`[data-testid="conversation-status"]`, "active"),
	)
	// A signed webhook appears without a reload: the live view fetches it.
	twilioInbound(t, base, token, "+919876543210", "Asha", 2)
	step(t, ctx, "watch the new message and the flow's answer arrive live",
		waitText(`[data-testid="message-in"]`, "Asha"),
		waitText(`[data-testid="message-out"]`, "How old are you, Asha?"),
	)
	shoot(t, ctx, "conversation")
	step(t, ctx, "a move the flow cannot make yet is refused, its question closed so the reason shows",
		chromedp.SetValue(css(`[data-testid="move-node"]`), "ask_confirm"),
		chromedp.Click(css(`[data-testid="override-move"]`)),
		chromedp.WaitVisible(css(`[data-testid="confirm-move"]`)),
		chromedp.Click(css(`[data-testid="confirm-move"]`)),
		waitText(`[data-testid="override-refused"]`, "{{need}}"),
		waitTrue(`!document.querySelector('details[open]')`, "the move's question closed"),
	)
	step(t, ctx, "choose a node to move the conversation to",
		chromedp.SetValue(css(`[data-testid="move-node"]`), "ask_need"),
		chromedp.Click(css(`[data-testid="override-move"]`)),
		chromedp.WaitVisible(css(`[data-testid="confirm-move"]`)),
	)
	shoot(t, ctx, "confirm-move")
	step(t, ctx, "confirm the move",
		chromedp.Click(css(`[data-testid="confirm-move"]`)),
		waitText(`[data-testid="conversation-node"]`, "ask_need"),
	)
	step(t, ctx, "reply by hand",
		chromedp.SendKeys(css(`[data-testid="reply-form"] textarea`), "A nurse will call you today."),
		chromedp.Click(css(`[data-testid="reply"]`)),
		waitText(`[data-testid="message-out"]`, "A nurse will call you today."),
		// Sent at Twilio in milliseconds: the page, shown while it was
		// queued, follows it from there without a reload.
		waitSent("A nurse will call you today."),
	)
	step(t, ctx, "resend the message Twilio refused",
		waitText(`[data-testid="message-out"]`, "The recipient's number is not valid."),
		// The timeline is swapped in live: a click on a button being
		// replaced, or not yet bound by htmx, is lost.
		waitTrue(`!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')`, "the timeline still"),
		htmxBound(`form:has([data-testid="resend"])`),
		chromedp.Click(css(`[data-testid="resend"]`)),
		chromedp.WaitVisible(css(`[data-testid="timeline"]`)),
		// The failed message stays failed; its resend follows to sent.
		waitSent("clinic assistant"),
	)
	waitFor(t, "the reply and the resend at Twilio", func() bool {
		welcome, reply := 0, 0
		for _, s := range fake.Sent() {
			if strings.Contains(s.Body, "clinic assistant") {
				welcome++
			}
			if s.Body == "A nurse will call you today." {
				reply++
			}
		}
		return welcome == 1 && reply == 1
	})
	step(t, ctx, "make the agent a supervisor",
		chromedp.Click(css(`[data-testid="nav-u"]`)),
		chromedp.WaitVisible(css(`[data-testid="staff"]`)),
		chromedp.SetValue(css(`[aria-label="Role of agent@example.org"]`), "supervisor"),
		chromedp.Click(css(`[data-email="agent@example.org"] [data-testid="set-role"]`)),
		chromedp.WaitVisible(css(`[data-testid="notice"]`)),
	)
	if u, _, err := staff.ByEmail(context.Background(), "agent@example.org"); err != nil || u.Role != models.RoleSupervisor {
		t.Fatalf("the agent's role after the change: %v %v", u, err)
	}
	shoot(t, ctx, "staff")
	step(t, ctx, "sign out",
		chromedp.Click(css(`[data-testid="sign-out"]`)),
		chromedp.WaitVisible(css(`[data-testid="login-form"]`)),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(css(`[data-testid="login-form"]`)),
	)
}

// The newcomer's path, exactly as the README tells it: `parley dev`, sign
// in with the first admin it prints, talk to the sample flow in the
// simulator, find that conversation in the inbox by the simulator's
// number, and watch it update live.
func TestBrowser_NewcomerPath(t *testing.T) {
	ctx := newBrowser(t)
	env := map[string]string{"PARLEY_DATA_DIR": t.TempDir(), "PARLEY_ADDR": "127.0.0.1:" + strconv.Itoa(freePort(t))}
	in := start(t, env, "dev")
	creds := regexp.MustCompile(`email:\s+(\S+)\s+password:\s+(\S+)`).FindStringSubmatch(in.stderr.String())
	if creds == nil {
		t.Fatalf("dev printed no first admin:\n%s", in.stderr)
	}
	signIn(t, ctx, in.base, creds[1], creds[2])
	step(t, ctx, "say hi in the simulator",
		chromedp.Click(css(`[data-testid="nav-s"]`)),
		chromedp.WaitVisible(css(`[data-testid="simulator-form"]`)),
		chromedp.SendKeys(css(`[data-testid="simulator-text"]`), "hi"),
		chromedp.Click(css(`[data-testid="simulator-send"]`)),
		waitText(`#chat [data-testid="message-out"]`, "What is your name?"),
	)
	shoot(t, ctx, "simulator")
	number, err := chromedp.Run(ctx, chromedp.Text(css(`[data-testid="simulator-number"]`)))
	if err != nil || !strings.HasPrefix(number, "+447700") {
		t.Fatalf("the simulator's number: %q %v", number, err)
	}
	step(t, ctx, "find the conversation in the inbox by the simulator's number",
		chromedp.Click(css(`[data-testid="nav-i"]`)),
		chromedp.WaitVisible(css(`[data-testid="search"]`)),
		chromedp.SendKeys(css(`[data-testid="search"]`), number),
		waitText(`[data-query="`+number+`"] [data-testid="hit-phone"]`, number),
		// Typed a digit at a time, the search may still be swapping its
		// results in: a click on a hit being replaced is lost.
		waitTrue(`!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')`, "the results still"),
		chromedp.Click(css(`[data-query="`+number+`"] [data-testid="hit"]`)),
		waitText(`[data-testid="message-out"]`, "What is your name?"),
	)
	// The simulator goes on in a second tab; the conversation's page follows.
	tab, cancel := chromedp.NewContext(ctx)
	defer cancel()
	step(t, tab, "answer in the simulator, in another tab",
		chromedp.Navigate(in.base+"/simulator"),
		chromedp.WaitVisible(css(`[data-testid="simulator-form"]`)),
		chromedp.SendKeys(css(`[data-testid="simulator-text"]`), "Asha"),
		chromedp.Click(css(`[data-testid="simulator-send"]`)),
		// The answer to a second message, in the pane sent back for it.
		waitText(`#chat [data-testid="message-out"]`, "How old are you, Asha?"),
	)
	step(t, ctx, "the conversation's page updates live",
		waitText(`[data-testid="message-in"]`, "Asha"),
		waitText(`[data-testid="message-out"]`, "How old are you, Asha?"),
	)
}

// waitFor polls cond until it holds, failing after thirty seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
