package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
)

// A morning in the workspace, in a real browser against the real server,
// with the keyboard: three people write over signed Twilio webhooks; j and
// Enter open one of them beside the list (several turns, in order, named
// as the flow learnt it), r goes to the reply box and a reply is sent
// from it (its j, k and r typed, not taken as shortcuts); then a fourth
// message arrives for someone else and the list moves them to the top
// without a reload, the open conversation and its row staying as they
// were. ? shows the shortcuts in a dialog that Esc closes.
func TestBrowser_Workspace(t *testing.T) {
	ctx := newBrowser(t)
	s := newConsoleSite(t)
	fake, base, token := s.fake, s.base, s.token

	// Each turn waits for the flow's answer, so the list's order (the
	// latest first) is known: Ravi, Asha, then the one who only said hi.
	n := 0
	say := func(number, body, answer string) {
		t.Helper()
		n++
		twilioInbound(t, base, token, number, body, n)
		waitFor(t, "the flow's answer to "+body, func() bool {
			return slices.ContainsFunc(fake.Sent(), func(s twiliotest.Sent) bool {
				return strings.HasSuffix(s.To, number) && strings.Contains(s.Body, answer)
			})
		})
	}
	const chitra, asha, ravi = "+919876500003", "+919876500001", "+919876500002"
	// Twelve earlier people, so that the list scrolls.
	for i := range 12 {
		say(fmt.Sprintf("+91987651%04d", i), "hi", "What is your name?")
	}
	say(chitra, "hi", "What is your name?")
	say(asha, "hello", "What is your name?")
	say(asha, "Asha", "How old are you, Asha?")
	say(ravi, "namaste", "What is your name?")
	say(ravi, "Ravi", "How old are you, Ravi?")

	signIn(t, ctx, base, "supervisor@example.org", sitePassword)
	step(t, ctx, "open the workspace: one row a person, named where the flow knows the name",
		chromedp.Navigate(base+"/work"),
		waitTrue(`document.querySelectorAll('[data-testid="work-row"]').length === 15`, "fifteen rows"),
		waitText(`[data-testid="work-list"] > li:nth-child(1) [data-testid="row-name"]`, "Ravi"),
		waitText(`[data-testid="work-list"] > li:nth-child(2) [data-testid="row-name"]`, "Asha"),
		// A marker the page keeps until it is loaded again.
		chromedp.Evaluate[chromedp.Void](`(window.notReloaded = true, {})`),
	)
	step(t, ctx, "j twice and Enter open the second row, Asha's, in the pane",
		chromedp.KeyEvent("j"),
		chromedp.KeyEvent("j"),
		waitTrue(`document.activeElement.matches('[data-testid="work-list"] > li:nth-child(2) a')`, "the second row chosen"),
		chromedp.KeyEvent(kb.Enter),
		waitText(`#work-pane [data-testid="contact-name"]`, "Asha"),
		waitText(`#work-pane [data-testid="message-out"]`, "How old are you, Asha?"),
		waitTrue(`location.search.includes("c=")`, "the address of the open conversation pushed"),
		// HTMX wires what it swapped in when it settles (a moment later):
		// a form sent before that would leave the workspace.
		// The desk's parts load after the pane: tags and notes in the side panel.
		waitTrue(`!!document.querySelector('#work-pane [data-testid="side-panel"] [data-testid="notes-panel"]') && !!document.querySelector('#work-pane [data-testid="side-panel"] [data-testid="tags-panel"]')`, "notes and tags in the side panel"),
		waitTrue(`!document.querySelector('#work-pane.htmx-settling, #work-pane .htmx-added')`, "the pane settled"),
	)
	step(t, ctx, "a command's question in the side panel opens inside the panel, whole (a desktop's width: the panel at the right)",
		chromedp.EmulateViewport(1280, 800),
		chromedp.Click(css(`#work-pane [data-testid="side-panel"] [data-testid="override-end"]`)),
		chromedp.WaitVisible(css(`#work-pane [data-testid="side-panel"] [data-testid="confirm-end"]`)),
		waitTrue(`(() => {
			const panel = document.querySelector('#work-pane [data-testid="side-panel"]').getBoundingClientRect();
			const q = document.querySelector('#work-pane [data-testid="side-panel"] details[open] [role="group"]').getBoundingClientRect();
			return q.left >= panel.left && q.right <= panel.right && q.right <= document.documentElement.clientWidth;
		})()`, "the question within the panel"),
		chromedp.Click(css(`#work-pane [data-testid="side-panel"] [data-testid="override-end"]`)),
		waitTrue(`!document.querySelector('#work-pane details[open]')`, "the question closed again"),
	)
	want := []string{"> hello", "< Hi! I'm the clinic assistant.", "< What is your name?", "> Asha", "< How old are you, Asha?"}
	if got := onScreen(t, ctx, "the pane", "#work-pane"); !slices.Equal(got, want) {
		t.Errorf("the pane reads\n%q\nwant\n%q", got, want)
	}
	const reply = "just a quick ring later, Asha"
	step(t, ctx, "r goes to the reply box; a reply typed there and sent stays in the pane",
		chromedp.KeyEvent("r"),
		waitTrue(`document.activeElement.matches('#work-pane [data-testid="reply-form"] textarea')`, "the reply box focused"),
		chromedp.KeyEvent(reply),
		chromedp.Click(css(`#work-pane [data-testid="reply"]`)),
		waitSent(reply),
	)
	t.Cleanup(func() {
		if t.Failed() { // what Twilio was given, to tell a lost reply from a mistyped one
			for _, s := range fake.Sent() {
				t.Logf("sent %q to %s", s.Body, s.To)
			}
		}
	})
	waitFor(t, "the reply at Twilio, to Asha", func() bool {
		return slices.ContainsFunc(fake.Sent(), func(s twiliotest.Sent) bool { return s.Body == reply && strings.HasSuffix(s.To, asha) })
	})

	// Someone else writes: the list follows without a reload, and the open
	// conversation stays open and marked.
	twilioInbound(t, base, token, chitra, "Chitra", 99)
	step(t, ctx, "the list moves Chitra to the top live, the selection kept",
		waitText(`[data-testid="work-list"] > li:nth-child(1) [data-testid="row-last"]`, "Chitra"),
		waitTrue(`window.notReloaded === true`, "the same page, not loaded again"),
		waitTrue(`document.querySelector('[data-testid="work-row"][aria-current="true"] [data-testid="row-name"]')?.textContent.includes("Asha") === true`, "Asha's row still marked open"),
		waitText(`#work-pane [data-testid="contact-name"]`, "Asha"),
		waitText(`#work-pane [data-testid="message-out"]`, reply),
	)
	shootDocs(t, ctx, "workspace")
	checkAccessible(t, ctx, "the workspace, a conversation open")
	step(t, ctx, "the list scrolled down keeps its place when Ravi writes again",
		chromedp.Evaluate[chromedp.Void](`(document.getElementById("work-scroll").scrollTop = 300, {})`),
		waitTrue(`document.getElementById("work-scroll").scrollTop > 0`, "the list scrolled"),
		chromedp.Evaluate[chromedp.Void](`(window.scrolledTo = document.getElementById("work-scroll").scrollTop, {})`),
	)
	twilioInbound(t, base, token, ravi, "are you there?", 100)
	step(t, ctx, "Ravi at the top, the list where it was",
		waitText(`[data-testid="work-list"] > li:nth-child(1) [data-testid="row-name"]`, "Ravi"),
		waitTrue(`Math.abs(document.getElementById("work-scroll").scrollTop - window.scrolledTo) < 2`, "the list's scroll kept"),
		waitTrue(`document.querySelector('[data-testid="work-row"][aria-current="true"] [data-testid="row-name"]')?.textContent.includes("Asha") === true`, "Asha's row still marked open"),
	)
	step(t, ctx, "? shows the shortcuts; Esc closes them",
		chromedp.Evaluate[chromedp.Void](`(document.activeElement.blur(), {})`),
		chromedp.KeyEvent("?"),
		waitTrue(`document.getElementById("shortcut-help").open && document.getElementById("shortcut-help").contains(document.activeElement)`, "the dialog open, focus inside it"),
	)
	shoot(t, ctx, "workspace-shortcuts")
	checkAccessible(t, ctx, "the workspace's shortcut list")
	step(t, ctx, "Esc closes the shortcuts",
		chromedp.KeyEvent(kb.Escape),
		waitTrue(`!document.getElementById("shortcut-help").open`, "the dialog closed"),
		chromedp.KeyEvent("/"),
		waitTrue(`document.activeElement.matches('[data-testid="work-search"]')`, "/ focuses the search"),
		chromedp.KeyEvent(kb.Escape),
		waitTrue(`!document.activeElement.matches('[data-testid="work-search"]')`, "Esc leaves the search box"),
	)
	step(t, ctx, "loaded again, the workspace opens where it was: Asha's conversation, her row marked",
		chromedp.Reload(),
		waitTrue(`window.notReloaded === undefined`, "the page loaded again"),
		waitText(`#work-pane [data-testid="contact-name"]`, "Asha"),
		waitText(`#work-pane [data-testid="message-out"]`, reply),
		waitTrue(`document.querySelector('[data-testid="work-row"][aria-current="true"] [data-testid="row-name"]')?.textContent.includes("Asha") === true`, "Asha's row marked open"),
	)
	step(t, ctx, "Chitra opened by a click, then back: Asha's conversation again",
		chromedp.Evaluate[chromedp.Void](`([...document.querySelectorAll('[data-testid="work-row"]')].find(a => a.textContent.includes("Chitra")).click(), {})`),
		waitText(`#work-pane [data-testid="contact-name"]`, "Chitra"),
		waitTrue(`!document.querySelector('#work-pane.htmx-settling, #work-pane .htmx-added')`, "the pane settled"),
		chromedp.Evaluate[chromedp.Void](`(history.back(), {})`),
		waitText(`#work-pane [data-testid="contact-name"]`, "Asha"),
		waitTrue(`new URLSearchParams(location.search).get("c") !== null && document.querySelector('#work-pane [data-testid="pane"]').dataset.contactId === new URLSearchParams(location.search).get("c")`, "the address and the pane agree"),
	)
}
