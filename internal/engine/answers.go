package engine

import (
	"math"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/textnorm"
)

// yes and no words in the languages Parley's contacts write in, after
// textnorm.Words.
var (
	yesWords = words("yes", "y", "yeah", "yep", "yup", "ok", "okay", "sure", "haan", "han", "ha", "ji", "haan ji", "हाँ", "हां", "हा", "जी", "जी हाँ", "ஆம்", "ஆமாம்", "sí", "si", "oui", "1")
	noWords  = words("no", "n", "nope", "nah", "nahi", "nahin", "na", "नहीं", "नही", "ना", "இல்லை", "non", "2")
)

func words(list ...string) map[string]bool {
	m := map[string]bool{}
	for _, w := range list {
		m[normalize(w)] = true
	}
	return m
}

// parseAnswer checks an answer against the question. It returns the value
// to save, the key routes are chosen by (a choice's value, "yes" or "no"),
// and whether the answer fits. Dates like "today" are read in loc, the
// flow's time zone.
func parseAnswer(a *Ask, in Input, lang string, loc *time.Location) (value, key string, ok bool) {
	text := in.Text
	norm := normalize(text)
	switch a.Type {
	case "media":
		return "", "", in.Media
	case "number":
		n, ok := parseNumber(text)
		if !ok || (a.Range != nil && (n < a.Range[0] || n > a.Range[1])) {
			return "", "", false
		}
		return strconv.FormatFloat(n, 'f', -1, 64), "", true
	case "choice":
		c := pickChoice(a.Choices, norm)
		if c == nil {
			return "", "", false
		}
		return c.Value, c.Value, true
	case "yes_no":
		switch {
		case yesWords[norm]:
			return "yes", "yes", true
		case noWords[norm]:
			return "no", "no", true
		}
		return "", "", false
	case "date":
		d, ok := parseDate(text, in.Now.In(loc))
		return d, "", ok
	case "phone":
		n, err := phone.New(in.Region).Normalize(text)
		return n, "", err == nil
	case "email":
		addr, err := mail.ParseAddress(text)
		if err != nil || !strings.Contains(addr.Address, "@") {
			return "", "", false
		}
		return addr.Address, "", true
	default: // text
		n := len([]rune(text))
		if n == 0 || norm == "" {
			return "", "", false // empty or emoji only
		}
		if a.Length != nil && (n < a.Length[0] || n > a.Length[1]) {
			return "", "", false
		}
		return text, "", true
	}
}

// parseNumber reads numbers as people type them: "1,200", "1 200", "४२".
func parseNumber(s string) (float64, bool) {
	s = textnorm.Digits(strings.TrimSpace(s))
	s = strings.NewReplacer(",", "", " ", "", "\u00a0", "", "_", "").Replace(s)
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseFloat(s, 64)
	// ParseFloat also reads "NaN" and "Inf", which no range check stops.
	return n, err == nil && !math.IsNaN(n) && !math.IsInf(n, 0)
}

// pickChoice finds the choice an answer names: by its number in the menu,
// its value, its label in any language, or a synonym.
func pickChoice(choices []*Choice, norm string) *Choice {
	if i, err := strconv.Atoi(norm); err == nil && i >= 1 && i <= len(choices) {
		return choices[i-1]
	}
	for _, c := range choices {
		if norm == normalize(c.Value) {
			return c
		}
		for _, label := range c.Label {
			if norm == normalize(label) {
				return c
			}
		}
		for _, syn := range c.Synonyms {
			if norm == normalize(syn) {
				return c
			}
		}
	}
	return nil
}

var dateLayouts = []string{"2006-01-02", "02/01/2006", "2/1/2006", "02-01-2006", "2 Jan 2006", "2 January 2006", "Jan 2 2006", "January 2 2006", "2 Jan", "2 January"}

// parseDate reads a date as ISO 8601 (2006-01-02). Day-first forms are
// read day first, as in India; "today" and "tomorrow" count from now.
func parseDate(s string, now time.Time) (string, bool) {
	s = strings.TrimSpace(strings.ReplaceAll(textnorm.Digits(s), ",", ""))
	switch strings.ToLower(s) {
	case "today", "आज":
		return now.Format("2006-01-02"), !now.IsZero()
	case "tomorrow", "कल":
		return now.AddDate(0, 0, 1).Format("2006-01-02"), !now.IsZero()
	}
	for _, layout := range dateLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		if !strings.Contains(layout, "2006") {
			if now.IsZero() {
				return "", false
			}
			t = t.AddDate(now.Year(), 0, 0)
		}
		return t.Format("2006-01-02"), true
	}
	return "", false
}
