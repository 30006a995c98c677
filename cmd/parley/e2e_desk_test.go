package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// An agent's hand-off with the desk, in a real browser against the real
// server: Asha tells the flow her name and is handed to a person; the
// agent takes her from the Hand-offs page, picks a saved reply (filled
// with her name on the server) and sends it, writes a note, tags the
// conversation, then filters the inbox by the tag and finds her there.
// The note never reaches Twilio.
func TestBrowser_HandoffWithSavedReplyNoteAndTag(t *testing.T) {
	ctx := newBrowser(t)
	s := newConsoleSite(t)
	fake, base, db, token := s.fake, s.base, s.db, s.token
	reply := &models.SavedReply{Title: "Nurse will call", Body: "Hello {{name}}, a nurse will call you today."}
	if err := store.NewSavedReplyStore(db).Save(context.Background(), db.Gorm, reply, ""); err != nil {
		t.Fatal(err)
	}

	twilioInbound(t, base, token, "+919876543210", "hello there", 1)
	waitFor(t, "the flow's question", func() bool { return sentWith(fake, "What is your name?") })
	twilioInbound(t, base, token, "+919876543210", "Asha", 2)
	waitFor(t, "the flow's next question", func() bool { return sentWith(fake, "How old are you, Asha?") })
	// The flow hands her to a person (as its handoff node would).
	if err := db.Gorm.Exec(`UPDATE conversations SET status = 'handoff', handoff_at = now()`).Error; err != nil {
		t.Fatal(err)
	}

	signIn(t, ctx, base, "agent@example.org", sitePassword)
	step(t, ctx, "take the hand-off",
		chromedp.Navigate(base+"/handoffs"),
		chromedp.Click(css(`[data-testid="handoff"] [data-testid="take"]`)),
		waitText(`[data-testid="taken-by"]`, "agent@example.org"),
		chromedp.Click(css(`[data-testid="handoff"] a`)),
		chromedp.WaitVisible(css(`[data-testid="timeline"]`)),
	)
	step(t, ctx, "pick the saved reply, filled with her name",
		chromedp.WaitVisible(css(`[data-testid="saved-reply"]`)),
		// Picked again every half second until the box fills: the picker
		// arrives by htmx, and a change before htmx has bound it is lost.
		waitTrue(`(() => {
			const box = document.querySelector('[data-testid="reply-form"] textarea');
			if (box.value === "Hello Asha, a nurse will call you today.") return true;
			if (!window.picked || Date.now() - window.picked > 500) {
				window.picked = Date.now();
				const s = document.querySelector('[data-testid="saved-reply"]');
				s.value = '`+strconv.FormatInt(reply.ID, 10)+`';
				s.dispatchEvent(new Event('change', {bubbles: true}));
			}
			return false;
		})()`, "the reply box filled with the saved reply"),
	)
	step(t, ctx, "send it",
		chromedp.Click(css(`[data-testid="reply"]`)),
		waitSent("Hello Asha, a nurse will call you today."),
	)
	step(t, ctx, "write a note for colleagues",
		htmxBound(`[data-testid="note-form"]`),
		chromedp.SendKeys(css(`#note-body`), "Prefers calls after 6pm"),
		chromedp.Click(css(`[data-testid="note-add"]`)),
		waitText(`[data-testid="note-body"]`, "Prefers calls after 6pm"),
		waitText(`[data-testid="note-author"]`, "agent@example.org"),
	)
	step(t, ctx, "tag the conversation",
		htmxBound(`[data-testid="tag-form"]`),
		chromedp.SendKeys(css(`#tag-input`), "Follow up"),
		chromedp.Click(css(`[data-testid="tag-add"]`)),
		waitText(`[data-testid="tag"]`, "follow-up"),
	)
	shootDocs(t, ctx, "conversation-desk")
	step(t, ctx, "filter the inbox by the tag",
		chromedp.Click(css(`[data-testid="tag"] a`)),
		waitTrue(`location.search === "?tag=follow-up"`, "the filtered inbox"),
		waitText(`[data-testid="hit"]`, "Hello Asha, a nurse will call you today."),
		waitText(`[data-testid="hit-tag"]`, "follow-up"),
		waitTrue(`document.querySelector('[data-testid="tag-filter"] input').checked`, "the tag filter shown in the search form"),
	)
	shootDocs(t, ctx, "inbox-tag")
	waitFor(t, "the saved reply at Twilio", func() bool { return sentWith(fake, "Hello Asha, a nurse will call you today.") })
	for _, s := range fake.Sent() {
		if strings.Contains(s.Body, "6pm") {
			t.Errorf("the note reached Twilio: %q", s.Body)
		}
	}
}

// sentWith reports whether the fake has received a message containing
// text.
func sentWith(fake *twiliotest.API, text string) bool {
	for _, s := range fake.Sent() {
		if strings.Contains(s.Body, text) {
			return true
		}
	}
	return false
}

// htmxBound waits until htmx has bound the element matching sel (it
// arrived by an htmx swap): a submit before then would leave the page.
func htmxBound(sel string) chromedp.Action[chromedp.Void] {
	return waitTrue(`!!document.querySelector(`+strconv.Quote(sel)+`)?.["htmx-internal-data"]?.initHash`, sel+" bound by htmx")
}
