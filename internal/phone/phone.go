// Package phone normalises phone numbers to E.164 and handles channel
// addresses such as whatsapp:+919876543210, using nyaruka/phonenumbers.
package phone

import (
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"

	"github.com/parley-chat/parley/internal/textnorm"
	"github.com/parley-chat/parley/models"
)

// Normalizer turns numbers as people and platforms write them into E.164.
type Normalizer struct {
	region string // for numbers typed without a country code; "" means none
	seen   *addressCache
}

// New returns a Normalizer; defaultRegion (ISO 3166 alpha-2, e.g. "IN")
// applies to numbers typed without a country code.
func New(defaultRegion string) Normalizer {
	return Normalizer{region: strings.ToUpper(defaultRegion), seen: &addressCache{m: map[string]Address{}}}
}

// Region is the default region numbers without a country code are read
// as from ("" when there is none).
func (n Normalizer) Region() string { return n.region }

// addressCache remembers addresses parsed lately: platforms write the same
// contact's address the same way on every webhook, and parsing is the
// costliest step of storing one. It holds at most cacheSize entries and
// starts afresh when full.
type addressCache struct {
	mu sync.Mutex
	m  map[string]Address
}

const cacheSize = 10000

func (c *addressCache) get(s string) (Address, bool) {
	if c == nil {
		return Address{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.m[s]
	return a, ok
}

func (c *addressCache) put(s string, a Address) {
	if c == nil || len(s) > maxInput {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= cacheSize {
		clear(c.m)
	}
	c.m[s] = a
}

// maxInput bounds the work done on hostile input; no real number comes near.
const maxInput = 64

// Normalize returns number in E.164 form (+919876543210). It accepts the
// usual ways of writing one: spaces, dashes, dots, brackets, a leading 0 or
// 00, non-ASCII digits, and channel prefixes (whatsapp:, tel:, sms:). It
// returns EINVALID for anything that is not a possible phone number; the
// error never repeats the input.
func (n Normalizer) Normalize(number string) (string, error) {
	return n.normalize(number, false)
}

// normalize is Normalize; reparse reads back even a number that was
// already written in E.164 (the check that skips it is tested against it).
func (n Normalizer) normalize(number string, reparse bool) (string, error) {
	_, rest := splitScheme(number)
	rest = strings.TrimSpace(rest)
	if rest == "" || len(rest) > maxInput {
		return "", models.Errorf(models.EINVALID, "Not a phone number.")
	}
	region := n.region
	if region == "" {
		region = "ZZ" // unknown: only numbers with a country code parse
	}
	digits := textnorm.Digits(rest)
	num, err := phonenumbers.Parse(digits, region)
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return "", models.Errorf(models.EINVALID, "Not a phone number.")
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// E.164 allows 15 digits at most; the library's "possible" check lets
	// some longer ones through (letters read as digits, found by fuzzing).
	if len(e164) > 16 {
		return "", models.Errorf(models.EINVALID, "Not a phone number.")
	}
	// A number given in the E.164 form it formats to was just read from
	// that very text (a leading + ignores the region), so reading it back
	// would parse the same string again: half of what storing a new
	// contact's address costs, and platforms write every number so.
	if e164 == digits && !reparse {
		return e164, nil
	}
	// A number whose E.164 form reads back as another number (a national
	// number made only of leading zeros, say) is not one we can index.
	if again, err := phonenumbers.Parse(e164, "ZZ"); err != nil || phonenumbers.Format(again, phonenumbers.E164) != e164 {
		return "", models.Errorf(models.EINVALID, "Not a phone number.")
	}
	return e164, nil
}

// Readings returns the E.164 numbers a person may mean by what they typed:
// it read in the default region (07700 900117 in GB), and, when typed
// without a + or 00, its digits read as an international number
// (447700900117). None when it is no number at all.
func (n Normalizer) Readings(typed string) []string {
	var out []string
	if e164, err := n.Normalize(typed); err == nil {
		out = append(out, e164)
	}
	_, rest := splitScheme(typed)
	rest = strings.TrimSpace(textnorm.Digits(rest))
	if strings.HasPrefix(rest, "+") || strings.HasPrefix(rest, "00") {
		return out
	}
	digits := strings.Map(func(r rune) rune {
		if r < '0' || r > '9' {
			return -1
		}
		return r
	}, rest)
	if e164, err := n.Normalize("+" + digits); err == nil && (len(out) == 0 || out[0] != e164) {
		out = append(out, e164)
	}
	return out
}

// Address is where a contact is reached: a channel and a number.
type Address struct {
	Channel models.Channel
	// Number is the E.164 number, or the raw text when it does not parse.
	Number string
	// Valid is false when Number did not parse; such an address is kept,
	// flagged, not dropped.
	Valid bool
}

// ParseAddress reads a channel address: "whatsapp:+…" is WhatsApp,
// "simulator:+…" the console's simulator, "tel:…", "sms:…" or a bare
// number is SMS.
func (n Normalizer) ParseAddress(s string) Address {
	if a, ok := n.seen.get(s); ok {
		return a
	}
	a := n.parseAddress(s)
	n.seen.put(s, a)
	return a
}

func (n Normalizer) parseAddress(s string) Address {
	scheme, rest := splitScheme(s)
	ch := models.ChannelSMS
	switch scheme {
	case "whatsapp":
		ch = models.ChannelWhatsApp
	case "simulator":
		ch = models.ChannelSimulator
	}
	e164, err := n.Normalize(rest)
	if err != nil {
		return Address{Channel: ch, Number: strings.TrimSpace(rest), Valid: false}
	}
	return Address{Channel: ch, Number: e164, Valid: true}
}

// String is the address as platforms write it: whatsapp:+… or tel:+….
func (a Address) String() string {
	switch a.Channel {
	case models.ChannelWhatsApp, models.ChannelSimulator:
		return string(a.Channel) + ":" + a.Number
	}
	return "tel:" + a.Number
}

func splitScheme(s string) (scheme, rest string) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, ':'); i > 0 {
		switch lower := strings.ToLower(s[:i]); lower {
		case "whatsapp", "tel", "sms", "simulator":
			return lower, s[i+1:]
		}
	}
	return "", s
}

// Mask shows only the last four digits of a number, for people who may not
// see it whole: +919876543210 → +•••••••••3210.
func Mask(number string) string {
	const keep = 4
	var b strings.Builder
	digits := 0
	for _, r := range number {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	seen := 0
	for _, r := range number {
		switch {
		case r >= '0' && r <= '9':
			seen++
			if seen > digits-keep {
				b.WriteRune(r)
			} else {
				b.WriteRune('•')
			}
		case r == '+':
			b.WriteRune(r)
		default:
			b.WriteRune('•')
		}
	}
	return b.String()
}
