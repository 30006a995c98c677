package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
)

// axeViolation is one rule axe-core found broken on a page.
type axeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

// axeSource is axe-core as `make css` copies it from npm (static/vendor):
// the tests inject it into the page, so the console never serves it.
func axeSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "static", "vendor", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core: %v (run `make css`)", err)
	}
	return string(b)
}

// checkAccessible runs axe-core's rules (WCAG 2.1 A and AA, and its best
// practices) over the page the tab shows and fails the test listing every
// serious or critical violation, each with the elements it found.
func checkAccessible(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	const run = `axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations
		.filter(v => v.impact === "serious" || v.impact === "critical")
		.map(v => ({id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 5).map(n => n.target.join(" "))}))))`
	src := axeSource(t)
	var found []axeViolation
	step(t, ctx, "check "+page+" with axe-core",
		chromedp.Func(func(c context.Context, tg *chromedp.Target) error {
			if _, err := chromedp.Evaluate[any](`typeof axe === "undefined" ? (0, eval)(`+jsString(src)+`) : 0`)(c, tg); err != nil {
				return fmt.Errorf("inject axe-core: %w", err)
			}
			out, err := chromedp.Evaluate[string](run, chromedp.EvalAwaitPromise)(c, tg)
			if err != nil {
				return err
			}
			return json.Unmarshal([]byte(out), &found)
		}),
	)
	if len(found) == 0 {
		return
	}
	var b strings.Builder
	for _, v := range found {
		fmt.Fprintf(&b, "\n  %s (%s): %s\n    at %s", v.ID, v.Impact, v.Help, strings.Join(v.Targets, " | "))
	}
	t.Errorf("%s: %d serious or critical accessibility violations:%s", page, len(found), b.String())
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Every console page, checked with axe-core in a real browser, with
// something on it: a contact handed off, a send Twilio refused, a
// conversation begun in the simulator. The workspace (/work) is another
// branch's page: the lead adds it here after the merge.
func TestBrowser_EveryPageAccessible(t *testing.T) {
	ctx := newBrowser(t)
	site := newConsoleSite(t)
	site.fake.FailNext(twiliotest.InvalidTo)
	site.sid++
	twilioInbound(t, site.base, site.token, "+919876500002", "hi", site.sid) // its welcome refused
	site.handOff(t, "+919876543210", "Asha")

	step(t, ctx, "open the sign-in page", chromedp.Navigate(site.base+"/login"), chromedp.WaitVisible(css(`[data-testid="login-form"]`)))
	checkAccessible(t, ctx, "sign-in")
	signIn(t, ctx, site.base, "admin@example.org", sitePassword)
	checkAccessible(t, ctx, "inbox")
	step(t, ctx, "open the hand-off's conversation",
		chromedp.Navigate(site.base+"/handoffs"),
		chromedp.WaitVisible(css(`[data-testid="handoffs"]`)),
	)
	checkAccessible(t, ctx, "hand-offs")
	step(t, ctx, "open the hand-off's conversation",
		chromedp.Click(css(`[data-testid="handoff"] a`)),
		chromedp.WaitVisible(css(`[data-testid="timeline"]`)),
		waitText(`[data-testid="message-in"]`, "Asha"),
	)
	checkAccessible(t, ctx, "conversation")
	step(t, ctx, "ask to move the conversation",
		chromedp.Click(css(`[data-testid="override-move"]`)),
		chromedp.WaitVisible(css(`[data-testid="confirm-move"]`)),
	)
	checkAccessible(t, ctx, "conversation, confirming a move")
	for _, p := range []struct{ name, path, ready string }{
		{"failed sends", "/resend", "main"},
		{"flows", "/flows", "main"},
		{"flow map", "/flows/clinic", "main svg"},
		{"dashboard", "/dashboard", "main svg"},
		{"templates", "/templates", "main"},
		{"saved replies", "/saved-replies", "main"},
		{"simulator", "/simulator", `[data-testid="simulator-form"]`},
		{"start", "/start", "main form"},
		{"broadcasts", "/broadcasts", "main"},
		{"staff", "/admin/staff", `[data-testid="staff"]`},
		{"audit log", "/admin/audit", "main"},
		{"system", "/admin/system", "main"},
	} {
		step(t, ctx, "open "+p.name, chromedp.Navigate(site.base+p.path), chromedp.WaitVisible(css(p.ready)))
		checkAccessible(t, ctx, p.name)
	}
	step(t, ctx, "talk to the flow in the simulator",
		chromedp.Navigate(site.base+"/simulator"),
		chromedp.SendKeys(css(`[data-testid="simulator-text"]`), "hi"),
		chromedp.Click(css(`[data-testid="simulator-send"]`)),
		waitText(`#chat [data-testid="message-out"]`, "What is your name?"),
	)
	checkAccessible(t, ctx, "simulator, talking")

	// An agent's pages hold what an admin's do not: notifications turned
	// on, a viewer's masked numbers.
	for _, who := range []string{"agent", "viewer"} {
		step(t, ctx, "sign out", chromedp.Click(css(`[data-testid="sign-out"]`)), chromedp.WaitVisible(css(`[data-testid="login-form"]`)))
		signIn(t, ctx, site.base, who+"@example.org", sitePassword)
		checkAccessible(t, ctx, who+"'s inbox")
		step(t, ctx, "open the hand-offs as "+who, chromedp.Navigate(site.base+"/handoffs"), chromedp.WaitVisible(css(`[data-testid="handoffs"]`)))
		if who == "agent" {
			step(t, ctx, "turn notifications on", onEveryPage(fakeNotifications), chromedp.Reload(), chromedp.WaitVisible(css(`[data-testid="notify-toggle"]`)),
				chromedp.Click(css(`[data-testid="notify-toggle"]`)),
				waitTrue(`document.querySelector('[data-testid="notify-toggle"]').getAttribute("aria-pressed") === "true"`, "notifications on"))
		}
		checkAccessible(t, ctx, who+"'s hand-offs")
		step(t, ctx, "open the conversation as "+who, chromedp.Click(css(`[data-testid="handoff"] a`)), chromedp.WaitVisible(css(`[data-testid="timeline"]`)))
		checkAccessible(t, ctx, who+"'s conversation")
	}
}
