// Package textnorm normalises text for matching: decimal digits of any
// script as ASCII, and the words of a text (NFKC, case-folded, with the
// combining marks Indic scripts depend on kept).
package textnorm

import (
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Digits rewrites decimal digits of any script (०-९, ௦-௯, ٠-٩ …) as ASCII.
// Unicode lays each script's digits out as a run of ten from zero.
func Digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x80 || !unicode.Is(unicode.Nd, r) {
			return r
		}
		start := r
		for unicode.Is(unicode.Nd, start-1) {
			start--
		}
		return '0' + (r-start)%10
	}, s)
}

// MaxWordRunes is the longest word kept; longer runs are not words anyone
// searches for.
const MaxWordRunes = 64

var folder = cases.Fold()

// Words returns the distinct words of text in order of first appearance:
// NFKC-normalised, case-folded, digits as ASCII. A word is a run of letters,
// combining marks and digits; zero-width joiners inside it are dropped, so
// text typed with or without them matches. Accents are kept: in Indic
// scripts a vowel sign or virama changes the word.
func Words(text string) []string {
	s := norm.NFKC.String(text)
	s = folder.String(s)
	s = Digits(s)
	var words []string
	seen := map[string]bool{}
	var b strings.Builder
	flush := func() {
		if b.Len() == 0 {
			return
		}
		w := b.String()
		b.Reset()
		if n := len([]rune(w)); n > MaxWordRunes {
			return
		}
		if !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r):
			b.WriteRune(r)
		case r == '\u200c' || r == '\u200d': // ZWNJ, ZWJ
		default:
			flush()
		}
	}
	flush()
	return words
}

// ContainsAll reports whether every word of query is among the words of
// text.
func ContainsAll(text string, query []string) bool {
	have := map[string]bool{}
	for _, w := range Words(text) {
		have[w] = true
	}
	for _, q := range query {
		if !have[q] {
			return false
		}
	}
	return true
}
