package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// say sends one signed webhook from number and waits for the flow's
// answer containing reply, so the next message is a later turn.
func (s *consoleSite) say(t *testing.T, number, body, reply string) {
	t.Helper()
	s.sid++
	twilioInbound(t, s.base, s.token, number, body, s.sid)
	waitFor(t, fmt.Sprintf("the answer %q", reply), func() bool {
		for _, m := range s.fake.Sent() {
			if strings.HasSuffix(m.To, number) && strings.Contains(m.Body, reply) {
				return true
			}
		}
		return false
	})
}

// handOff walks number through the clinic flow to its hand-off: a name, an
// age, then "something else", which asks for a person.
func (s *consoleSite) handOff(t *testing.T, number, name string) {
	t.Helper()
	s.say(t, number, "hello", "What is your name?")
	s.say(t, number, name, "How old are you")
	s.say(t, number, "34", "What do you need?")
	s.say(t, number, "3", "A person from our team will reply here shortly.")
}

// fakeNotifications stands in for the browser's Notification on every
// page the tab opens: a headless browser cannot show one, nor be answered
// at its permission prompt. It records each permission request and each
// notification (window.__asked, window.__notes), and grants when asked,
// for the rest of the tab's life, as a browser remembers the answer.
const fakeNotifications = `(() => {
  let permission = sessionStorage.getItem("fake-permission") || "default";
  window.__asked = 0;
  window.__notes = [];
  function Notification(title, options) { window.__notes.push({title: title, body: (options || {}).body || "", tag: (options || {}).tag || ""}); }
  Object.defineProperty(Notification, "permission", {get: () => permission});
  Notification.requestPermission = () => { window.__asked++; permission = "granted"; sessionStorage.setItem("fake-permission", permission); return Promise.resolve(permission); };
  window.Notification = Notification;
})();`

// onEveryPage runs script in every page the tab opens from now on, before
// the page's own scripts.
func onEveryPage(script string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script})
		return err
	})
}

// A hand-off is noticed on whatever console page an agent has open,
// without a reload: the title and the nav's Hand-offs say how many wait,
// and, once the agent turned notifications on (the browser asked then and
// only then), one notification says someone waits and nothing more. Taken,
// the count goes back to nothing.
func TestBrowser_HandoffNoticedWithoutReload(t *testing.T) {
	ctx := newBrowser(t)
	site := newConsoleSite(t)
	step(t, ctx, "stand in for the browser's notifications", onEveryPage(fakeNotifications))
	signIn(t, ctx, site.base, "agent@example.org", sitePassword)
	step(t, ctx, "the count is known, and nobody waits",
		chromedp.Click(css(`[data-testid="nav-f"]`)),
		chromedp.WaitVisible(css(`[data-testid="notify-toggle"]`)),
		waitTrue(`document.querySelector('[data-testid="handoff-count"]').textContent === "0"`, "the count heard"),
		waitTrue(`document.querySelector('[data-testid="handoff-count"]').hidden && !document.title.startsWith("(")`, "no count shown"),
		waitTrue(`window.__asked === 0`, "no permission asked before the toggle"),
	)
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	step(t, ctx, "turn notifications on",
		chromedp.Click(css(`[data-testid="notify-toggle"]`)),
		waitTrue(`document.querySelector('[data-testid="notify-toggle"]').getAttribute("aria-pressed") === "true"`, "the toggle pressed"),
		waitTrue(`window.__asked === 1 && window.__notes.length === 0`, "permission asked once, nothing shown"),
		waitTrue(`(window.__samePage = true)`, "the page marked"),
	)

	site.handOff(t, "+919876543210", "Asha")
	step(t, ctx, "the hand-off is noticed on the open page",
		waitTrue(fmt.Sprintf(`document.title === %q`, "(1) "+title), "the title's count"),
		waitTrue(`(b => !b.hidden && b.textContent === "1")(document.querySelector('[data-testid="nav-h"] [data-testid="handoff-count"]'))`, "the nav's count"),
		waitTrue(`window.__notes.length === 1`, "one notification"),
		waitTrue(`window.__samePage === true`, "the same page, not reloaded"),
	)
	notes, err := chromedp.Run(ctx, chromedp.Evaluate[[]map[string]string](`window.__notes`))
	if err != nil {
		t.Fatal(err)
	}
	if n := notes[0]; n["body"] != "A conversation is waiting for a person" || n["title"] != "Parley" {
		t.Fatalf("the notification: %v", n)
	}
	// A second tab hears the count from the first (one stream per
	// browser), at once as it opens and then as it changes.
	tab, closeTab := chromedp.NewContext(ctx)
	step(t, tab, "open the flows in a second tab",
		chromedp.Navigate(site.base+"/flows"),
		waitTrue(`document.title.startsWith("(1) ")`, "the count in the second tab's title"),
	)
	site.handOff(t, "+919876500001", "Ravi")
	step(t, ctx, "a second one counts on",
		waitTrue(fmt.Sprintf(`document.title === %q`, "(2) "+title), "the title's count of two"),
		waitTrue(`window.__notes.length === 2 && window.__samePage === true`, "a second notification, the same page"),
	)
	step(t, tab, "the second tab counts on", waitTrue(`document.title.startsWith("(2) ")`, "two in the second tab"))
	closeTab()
	shootDocs(t, ctx, "handoff-noticed") // -args -update refreshes the README's
	step(t, ctx, "take both",
		chromedp.Click(css(`[data-testid="nav-h"]`)),
		chromedp.WaitVisible(css(`[data-testid="handoffs"]`)),
		chromedp.Click(css(`[data-testid="take"]`)),
		waitTrue(`document.querySelector('[data-testid="handoff-count"]').textContent === "1"`, "one left"),
		chromedp.Navigate(site.base+"/handoffs"),
		chromedp.WaitVisible(css(`[data-testid="take"]`)),
		chromedp.Click(css(`[data-testid="take"]`)),
		waitTrue(`document.querySelector('[data-testid="handoff-count"]').textContent === "0" && !document.title.startsWith("(")`, "none waiting"),
		waitTrue(`document.querySelector('[data-testid="handoff-count"]').hidden`, "the nav's count hidden"),
	)
	step(t, ctx, "notifications stay on across pages",
		chromedp.Navigate(site.base+"/"),
		waitTrue(`document.querySelector('[data-testid="notify-toggle"]').getAttribute("aria-pressed") === "true" && window.__asked === 0`, "on, not asked again"),
	)
}
