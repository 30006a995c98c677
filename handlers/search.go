package handlers

import (
	"context"
	"net/url"
	"sort"
	"strings"
	"unicode"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// searchesFor reads what was typed: a phone number in any format (a +,
// or seven digits or more), the last digits of one (four to six, looked
// for in messages too, where such a run may be a year or a code), or
// words, looked for in names and in messages alike.
func searchesFor(q string, f models.MessageSearch) []models.MessageSearch {
	q = strings.TrimSpace(q)
	with := func(edit func(*models.MessageSearch)) models.MessageSearch {
		s := f
		edit(&s)
		return s
	}
	digits, other := 0, false
	for _, r := range q {
		switch {
		case unicode.IsDigit(r):
			digits++
		case strings.ContainsRune("+-(). ", r):
		default:
			other = true
		}
	}
	switch {
	case q == "":
		return []models.MessageSearch{with(func(*models.MessageSearch) {})}
	case !other && (digits > 6 || (digits >= crypt.TailDigits && strings.HasPrefix(q, "+"))):
		return []models.MessageSearch{with(func(s *models.MessageSearch) { s.Phone = q })}
	case !other && digits >= crypt.TailDigits:
		return []models.MessageSearch{with(func(s *models.MessageSearch) { s.PhoneTail = q }), with(func(s *models.MessageSearch) { s.Text = q })}
	}
	return []models.MessageSearch{with(func(s *models.MessageSearch) { s.Name = q }), with(func(s *models.MessageSearch) { s.Text = q })}
}

// searchMessages runs the searches for q and merges them, newest first,
// up to f.Limit; more says there are older ones.
func (in *Inbox) searchMessages(ctx context.Context, q string, f models.MessageSearch) (hits []models.MessageHit, more bool, err error) {
	seen := map[int64]bool{}
	for _, s := range searchesFor(q, f) {
		page, err := in.Messages.Search(ctx, s)
		if err != nil {
			return nil, false, err
		}
		more = more || page.Next != 0
		for _, h := range page.Hits {
			if !seen[h.Message.ID] {
				seen[h.Message.ID] = true
				hits = append(hits, h)
			}
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].Message.ID > hits[j].Message.ID })
	if len(hits) > f.Limit {
		hits, more = hits[:f.Limit], true
	}
	return hits, more, nil
}

// contactHits are one conversation's messages a search found: the newest,
// and how many more on the page.
type contactHits struct {
	first models.MessageHit
	more  int
}

// searchRounds bounds the pages of messages one page of conversations
// reads (a conversation with hundreds of matches takes several); a page
// cut short by it still ends with the cursor where it stopped.
const searchRounds = 8

// search lists the conversations (one a contact) the searches for q
// found, newest first, up to f.Limit, each with its newest message found.
// A conversation is listed on the page its newest match falls on: a later
// page (f.Before) leaves out those with a match at or after f.Before,
// which an earlier page listed, so "Older" never shows one again. next is
// the cursor of the following page (0: none).
func (in *Inbox) search(ctx context.Context, q string, f models.MessageSearch) (rows []contactHits, next int64, err error) {
	limit, first := f.Limit, f.Before
	at := map[int64]int{} // contact → its row, or -1 when an earlier page listed it
	for range searchRounds {
		hits, more, err := in.searchMessages(ctx, q, f)
		if err != nil {
			return nil, 0, err
		}
		for _, h := range hits {
			if i, ok := at[h.Contact.ID]; ok {
				if i >= 0 {
					rows[i].more++
					// The latest in the conversation stands for it: hits
					// come by id, which two instances' writes do not keep
					// in order.
					if h.Message.Seq > rows[i].first.Message.Seq {
						rows[i].first = h
					}
				}
				continue
			}
			if first != 0 {
				listed, err := in.matchedFrom(ctx, q, f, h.Contact.ID, first)
				if err != nil {
					return nil, 0, err
				}
				if listed {
					at[h.Contact.ID] = -1
					continue
				}
			}
			if len(rows) == limit {
				return rows, h.Message.ID + 1, nil // the next page starts with this one
			}
			at[h.Contact.ID] = len(rows)
			rows = append(rows, contactHits{first: h})
		}
		if !more || len(hits) == 0 {
			return rows, 0, nil
		}
		f.Before = hits[len(hits)-1].Message.ID
	}
	return rows, f.Before, nil
}

// matchedFrom says whether the searches for q match a message of the
// contact with an id of from or more (its newest match is on an earlier
// page).
func (in *Inbox) matchedFrom(ctx context.Context, q string, f models.MessageSearch, contactID, from int64) (bool, error) {
	f.ContactID, f.Before, f.Limit = contactID, 0, 1
	hits, _, err := in.searchMessages(ctx, q, f)
	return len(hits) > 0 && hits[0].Message.ID >= from, err
}

// auditedSearch records the search (a keyed fingerprint of what was typed,
// never the text, which may be a phone number or a name, and the filters
// kept) and runs it. Listing without a query (every inbox load) is not a
// search and is not recorded.
func (in *Inbox) auditedSearch(c *fiber.Ctx, a *Access, q string, f models.MessageSearch, kept url.Values) ([]contactHits, int64, error) {
	if strings.TrimSpace(q) != "" {
		details := map[string]any{"query_fp": a.fingerprint(q)}
		for k := range kept {
			details[k] = kept.Get(k)
		}
		if err := a.audit(c, "messages.search", "messages", "", details); err != nil {
			return nil, 0, err
		}
	}
	return in.search(c.UserContext(), q, f)
}
