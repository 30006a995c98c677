package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// focusShown is a script naming what is wrong with the focus as a person
// sees it ("" when it is right): nothing focused, or the focused element
// drawn with no outline and no ring (the browser's own outline is there
// only when it judges the focus should show), or too small to see.
const focusShown = `(() => {
  const e = document.activeElement;
  if (!e || e === document.body) return "nothing focused";
  const what = e.tagName.toLowerCase() + (e.dataset.testid ? "[" + e.dataset.testid + "]" : "") + " " + (e.textContent || e.name || "").trim().slice(0, 30);
  const s = getComputedStyle(e), r = e.getBoundingClientRect();
  if (r.width < 2 || r.height < 2) return what + ": too small to see";
  if (!((s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== "none")) return what + ": no outline or ring";
  return "";
})()`

// press types keys (kb.Tab, kb.Enter, letters) into whatever has the focus.
func press(keys string, opts ...chromedp.KeyOption) chromedp.Action[chromedp.Void] {
	return chromedp.KeyEvent(keys, opts...)
}

// focusIs fails unless the focus is on an element matching sel and shown.
func focusIs(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		got, err := chromedp.Evaluate[string](fmt.Sprintf(`document.activeElement && document.activeElement.matches(%q) ? %s : "the focus is on " + (document.activeElement ? document.activeElement.outerHTML.slice(0, 120) : "nothing")`, sel, focusShown))(ctx, tg)
		if err == nil && got != "" {
			err = fmt.Errorf("want the focus on %s: %s", sel, got)
		}
		return err
	})
}

// tabTo presses Tab (Shift+Tab when back) until the focus reaches an
// element matching sel, at most max times, each stop shown as focused.
func tabTo(sel string, max int, back bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		var opts []chromedp.KeyOption
		if back {
			opts = append(opts, chromedp.KeyModifiers(chromedp.ModifierShift))
		}
		for i := 0; i < max; i++ {
			if _, err := press(kb.Tab, opts...)(ctx, tg); err != nil {
				return err
			}
			shown, err := chromedp.Evaluate[string](focusShown)(ctx, tg)
			if err != nil {
				return err
			}
			if shown != "" {
				return fmt.Errorf("tab %d on the way to %s: %s", i+1, sel, shown)
			}
			at, err := chromedp.Evaluate[bool](fmt.Sprintf(`document.activeElement.matches(%q)`, sel))(ctx, tg)
			if err != nil || at {
				return err
			}
		}
		return fmt.Errorf("%s not reached in %d tabs", sel, max)
	})
}

// One walk with the keyboard alone: sign in, skip to the content, go to
// the hand-offs (g h), take the one waiting, open its conversation, reply,
// and reply again, the focus shown at every stop and, after each page
// load or swap, where the next key press is meant to go.
func TestBrowser_KeyboardOnlyWalk(t *testing.T) {
	ctx := newBrowser(t)
	site := newConsoleSite(t)
	site.handOff(t, "+919876543210", "Asha")

	// A headless tab is not the window in front: without this, a page that
	// a script opened has no focus of its own, and no element in it shows
	// one, as it would for a person looking at it.
	step(t, ctx, "be the window in front", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
		return err
	}))
	step(t, ctx, "sign in with the keyboard",
		chromedp.Navigate(site.base+"/"),
		chromedp.WaitVisible(css(`[data-testid="login-form"]`)),
		// The form's first field has the focus as the page opens; back
		// from it is the skip link, and forward again the field.
		waitTrue(`document.activeElement.matches('input[name="email"]')`, "the focus in the email field"),
		tabTo(`a[href="#main"]`, 3, true), tabTo(`input[name="email"]`, 3, false), press("agent@example.org"),
		tabTo(`input[name="password"]`, 2, false), press(sitePassword),
		tabTo(`[data-testid="sign-in"]`, 2, false), press(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)),
		focusIs(`input[name="password"]`), press(kb.Enter),
		chromedp.WaitVisible(css(`[data-testid="search"]`)),
	)
	step(t, ctx, "skip to the content",
		press(kb.Tab), focusIs(`a[href="#main"]`), press(kb.Enter),
		waitTrue(`document.activeElement === document.getElementById("main")`, "the focus on the content"),
		press(kb.Tab), focusIs(`#main :is(a, input, button, select, textarea, summary)`), // past the nav, in the content
	)
	step(t, ctx, "go to the hand-offs and take the one waiting",
		press(kb.Escape), press("gh"),
		chromedp.WaitVisible(css(`[data-testid="handoffs"]`)),
		tabTo(`[data-testid="take"]`, 40, false), press(kb.Enter),
		waitText(`[data-testid="taken-by"]`, "agent@example.org"),
	)
	shoot(t, ctx, "keyboard-taken")
	step(t, ctx, "open the conversation",
		tabTo(`[data-testid="handoff"] a[href^="/contacts/"]`, 40, false), press(kb.Enter),
		waitText(`[data-testid="message-in"]`, "Asha"),
		tabTo(`[data-testid="reply-form"] textarea`, 60, false),
	)
	for i, words := range []string{"Hello Asha, this is Priya from the clinic.", "Which day suits you?"} {
		step(t, ctx, fmt.Sprintf("reply %d", i+1),
			focusIs(`[data-testid="reply-form"] textarea`), press(words),
			tabTo(`[data-testid="reply"]`, 1, false), press(kb.Enter),
			waitText(`[data-testid="message-out"]`, words),
			// The page loaded again with the reply: the focus is back in
			// the (empty) box, ready for the next.
			waitTrue(`document.activeElement && document.activeElement.matches('[data-testid="reply-form"] textarea') && document.activeElement.value === ""`, "the focus back in the reply box"),
			focusIs(`[data-testid="reply-form"] textarea`),
		)
	}
	shoot(t, ctx, "keyboard-replied")
}
