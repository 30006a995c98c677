package main

import (
	"context"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// onScreen reads the timeline under sel as the person sees it, top to
// bottom: each message as "> " (the contact's) or "< " (Parley's) and its
// text.
func onScreen(t *testing.T, ctx context.Context, what, sel string) []string {
	t.Helper()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(`+strconv.Quote(sel+` [data-testid="timeline"] > li`)+`)].map(li =>
		(li.dataset.testid === "message-in" ? "> " : "< ") + li.querySelector(":scope > p").textContent.trim())`))
	if err != nil {
		t.Fatalf("read %s: %v", what, err)
	}
	return got
}

// A conversation of several turns reads in the order it happened, in the
// simulator and on the conversation's page in the console (open in another
// tab meanwhile): each reply under the message it answers, not the
// person's five messages and then the six replies.
func TestBrowser_ConversationReadsInOrder(t *testing.T) {
	ctx := newBrowser(t)
	env := map[string]string{"PARLEY_DATA_DIR": t.TempDir(), "PARLEY_ADDR": "127.0.0.1:" + strconv.Itoa(freePort(t))}
	in := start(t, env, "dev")
	creds := regexp.MustCompile(`email:\s+(\S+)\s+password:\s+(\S+)`).FindStringSubmatch(in.stderr.String())
	if creds == nil {
		t.Fatalf("dev printed no first admin:\n%s", in.stderr)
	}
	signIn(t, ctx, in.base, creds[1], creds[2])
	turns := []struct{ say, answer string }{
		{"hi", "What is your name?"},
		{"Asha", "How old are you, Asha?"},
		{"34", "What do you need? 1. Appointment 2. Prescription 3. Something else"},
		{"1", "Shall I go ahead with your appointment request, Asha? (yes/no)"},
		{"yes", "Done! We will message you with a time."},
	}
	want := []string{"> hi", "< Hi! I'm the clinic assistant.", "< What is your name?"}
	for _, tn := range turns[1:] {
		want = append(want, "> "+tn.say, "< "+tn.answer)
	}
	say := func(tn int) {
		step(t, ctx, "say "+strconv.Quote(turns[tn].say)+" in the simulator",
			chromedp.SendKeys(css(`[data-testid="simulator-text"]`), turns[tn].say),
			chromedp.Click(css(`[data-testid="simulator-send"]`)),
			waitText(`#chat [data-testid="message-in"]`, turns[tn].say),     // stored
			waitText(`#chat [data-testid="message-out"]`, turns[tn].answer), // live, no reload
		)
	}
	step(t, ctx, "open the simulator",
		chromedp.Click(css(`[data-testid="nav-s"]`)),
		chromedp.WaitVisible(css(`[data-testid="simulator-form"]`)),
	)
	say(0)
	// The conversation's page follows in a second tab while it goes on.
	step(t, ctx, "find the conversation's page (linked once the simulator has a contact, without a reload)",
		chromedp.WaitVisible(css(`[data-testid="simulator-open"]`)),
	)
	page, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid="simulator-open"]').getAttribute("href")`))
	if err != nil {
		t.Fatalf("the conversation's page: %v", err)
	}
	// Both views are short, so the conversation outgrows them, and each is
	// read at its end (the workspace opens there; on the page the reader
	// scrolled down): as messages come they stay at the end.
	tab, cancel := chromedp.NewContext(ctx)
	defer cancel()
	step(t, tab, "open the conversation's page, read at its end",
		chromedp.EmulateViewport(1000, 420),
		chromedp.Navigate(in.base+page),
		waitText(`[data-testid="message-out"]`, turns[0].answer),
		chromedp.Evaluate[chromedp.Void](`(window.scrollTo(0, document.scrollingElement.scrollHeight), {})`),
	)
	work, cancelWork := chromedp.NewContext(ctx)
	defer cancelWork()
	step(t, work, "open the conversation in the workspace",
		chromedp.EmulateViewport(1000, 420),
		chromedp.Navigate(in.base+"/work?c="+strings.TrimPrefix(page, "/contacts/")),
		waitText(`#work-pane [data-testid="message-out"]`, turns[0].answer),
	)
	for tn := 1; tn < len(turns); tn++ {
		say(tn)
	}
	atEnd := func(box string) string {
		return `(b => b.scrollHeight > b.clientHeight + 40 && b.scrollHeight - b.scrollTop - b.clientHeight < 2)(` + box + `)`
	}
	step(t, work, "the workspace follows the conversation to its newest message",
		waitText(`#work-pane [data-testid="message-out"]`, turns[len(turns)-1].answer),
		waitTrue(atEnd(`document.querySelector('#work-pane [data-stick-bottom]')`), "the pane scrolled to its end"),
	)
	if got := onScreen(t, ctx, "the simulator", "#chat"); !slices.Equal(got, want) {
		t.Errorf("the simulator reads\n%q\nwant\n%q", got, want)
	}
	shoot(t, ctx, "order-simulator")
	step(t, tab, "the conversation's page follows it live, to its newest message",
		waitText(`[data-testid="message-out"]`, turns[len(turns)-1].answer),
		waitTrue(atEnd(`document.scrollingElement`), "the page scrolled to its end"),
	)
	if got := onScreen(t, tab, "the conversation", "main"); !slices.Equal(got, want) {
		t.Errorf("the conversation's page reads\n%q\nwant\n%q", got, want)
	}
	shoot(t, tab, "order-conversation")
	// A reader who scrolled back up is left where they are by what comes.
	step(t, work, "scroll the workspace's conversation back up",
		chromedp.Evaluate[chromedp.Void](`(document.querySelector('#work-pane [data-stick-bottom]').scrollTop = 0, {})`),
	)
	step(t, ctx, "say something more in the simulator",
		chromedp.SendKeys(css(`[data-testid="simulator-text"]`), "hello again"),
		chromedp.Click(css(`[data-testid="simulator-send"]`)),
		waitTrue(`[...document.querySelectorAll('#chat [data-testid="message-out"]')].filter(e => e.textContent.includes("What is your name?")).length === 2`, "the flow's question again"),
	)
	// By the answer's swap, the message's swap before it has settled.
	step(t, work, "the workspace shows them, left where its reader scrolled",
		waitText(`#work-pane [data-testid="message-in"]`, "hello again"),
		waitTrue(`[...document.querySelectorAll('#work-pane [data-testid="message-out"]')].filter(e => e.textContent.includes("What is your name?")).length === 2`, "the answer in the pane"),
		waitTrue(`document.querySelector('#work-pane [data-stick-bottom]').scrollTop < 2`, "the pane left at its top"),
	)
}

// placed reads the conversation of the contact at number through the
// store, in the order the console and the API show it (seq): "> body" for
// the contact's messages, "< body" for Parley's.
func placed(t *testing.T, db *store.DB, env map[string]string, number string) []string {
	t.Helper()
	c, err := newCrypto(testConfig(t, env), newLogger(io.Discard, "error"))
	if err != nil {
		t.Fatal(err)
	}
	found, err := store.NewContactStore(db, c).FindByPhone(context.Background(), number)
	if err != nil || len(found) != 1 {
		t.Fatalf("the contact: %d found, %v", len(found), err)
	}
	msgs, err := store.NewMessageStore(db, c).ForContact(context.Background(), found[0].ID, 0, 200)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(msgs) - 1; i >= 0; i-- {
		mark := "> "
		if msgs[i].Direction == models.Outbound {
			mark = "< "
		}
		out = append(out, mark+msgs[i].Body)
	}
	return out
}

// outOf is the bodies of Parley's messages among a placed conversation.
func outOf(conversation []string) []string {
	var out []string
	for _, m := range conversation {
		if body, ok := strings.CutPrefix(m, "< "); ok {
			out = append(out, body)
		}
	}
	return out
}
