// Package views holds the console's templ components. Props are plain
// structs built by handlers, never database rows.
package views

import (
	"net/http"
	"net/url"
	"strconv"
)

//go:generate go tool templ generate

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func statusText(code int) string {
	return strconv.Itoa(code) + " · " + http.StatusText(code)
}

// resumeEnds is what resuming the bot does where the flow asked nothing it
// could go back to (a hand-off node): the conversation ends.
const resumeEnds = "There is no question here for the bot to go back to: the conversation ends, and the person's next message starts the flow afresh."

// flowUnreadable is what the panel says of a conversation whose pinned flow
// version no longer parses.
const flowUnreadable = "Its flow version can no longer be read, so the bot cannot take it back: reply to the person yourself."

// backOf is where an action in p's timeline returns to: the view it was
// taken in (the workspace), else the contact's page.
func backOf(p ContactProps) string {
	if p.Back != "" {
		return p.Back
	}
	return "/contacts/" + itoa64(p.ID)
}

// TimelineURL fetches p's timeline again, its actions returning where p's do.
func TimelineURL(p ContactProps) string {
	u := "/contacts/" + itoa64(p.ID) + "/timeline"
	if p.Back != "" {
		u += "?back=" + url.QueryEscape(p.Back)
	}
	return u
}

// plural is one when n is 1, else many.
func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
