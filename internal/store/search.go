package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/textnorm"
	"github.com/parley-chat/parley/models"
)

// Search finds messages by phone, name words and message words through the
// blind indexes, with filters and keyset pagination. Only the page returned
// is decrypted; because indexes are truncated, each candidate is checked on
// its decrypted values, so a collision never shows a wrong message.
func (s *MessageStore) Search(ctx context.Context, q models.MessageSearch) (*models.MessagePage, error) {
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = 50
	case limit > 200:
		limit = 200
	}
	plan, err := s.plan(q)
	if err != nil || plan == nil {
		return &models.MessagePage{}, err
	}
	page := &models.MessagePage{}
	before := q.Before
	for {
		want := limit + 1 - len(page.Hits)
		ids, err := plan.candidates(ctx, s, before, want)
		if err != nil {
			return nil, err
		}
		hits, err := s.load(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, h := range hits {
			if !plan.matches(h) {
				continue
			}
			if len(page.Hits) == limit {
				page.Next = page.Hits[limit-1].Message.ID
				return page, nil
			}
			page.Hits = append(page.Hits, h)
		}
		if len(ids) < want { // no more candidates
			return page, nil
		}
		before = ids[len(ids)-1]
	}
}

// searchPlan is a search turned into SQL over the indexes, plus the checks
// made on decrypted values.
type searchPlan struct {
	from     string
	joinArgs []any // arguments of the joins in from
	where    []string
	args     []any    // arguments of the where clauses
	numbers  []string // E.164 numbers, one of which the contact's address must be
	tail     string   // digits the contact's address must end in
	name     []string // words the contact's name must hold
	text     []string // words the body must hold
}

// plan returns nil when the search cannot match anything.
func (s *MessageStore) plan(q models.MessageSearch) (*searchPlan, error) {
	p := &searchPlan{from: "messages m"}
	if strings.TrimSpace(q.Phone) != "" {
		// Every reading of what was typed (07700 900117 in the region,
		// 447700900117 as international): any of them is the contact.
		numbers := s.crypto.Phones.Readings(q.Phone)
		if len(numbers) == 0 {
			return nil, models.Errorf(models.EINVALID, "That is not a phone number.")
		}
		marks := make([]string, len(numbers))
		for i, n := range numbers {
			marks[i] = "address_bidx = ?" // not IN (?, ?), where GORM spreads each []byte into its bytes
			p.args = append(p.args, s.crypto.Index.Exact(crypt.DomainAddress, n))
		}
		p.numbers = numbers
		p.where = append(p.where, "m.contact_id IN (SELECT id FROM contacts WHERE "+strings.Join(marks, " OR ")+")")
	}
	if q.PhoneTail != "" {
		tail, ok := s.crypto.Index.Tail(q.PhoneTail)
		if !ok {
			return nil, models.Errorf(models.EINVALID, "Type at least %d digits of the number.", crypt.TailDigits)
		}
		p.tail = digitsOf(q.PhoneTail)
		p.where = append(p.where, "m.contact_id IN (SELECT id FROM contacts WHERE address_tail_bidx = ?)")
		p.args = append(p.args, tail)
	}
	if q.ContactID != 0 {
		p.where = append(p.where, "m.contact_id = ?")
		p.args = append(p.args, q.ContactID)
	}
	if strings.TrimSpace(q.Name) != "" {
		words, tokens := queryTokens(s.crypto.Index, crypt.DomainName, q.Name)
		if len(words) == 0 {
			return nil, nil
		}
		p.name = words
		for _, t := range tokens {
			p.where = append(p.where, "m.contact_id IN (SELECT contact_id FROM contact_words WHERE bidx = ?)")
			p.args = append(p.args, t)
		}
	}
	if strings.TrimSpace(q.Text) != "" {
		words, tokens := queryTokens(s.crypto.Index, crypt.DomainBody, q.Text)
		if len(words) == 0 {
			return nil, nil
		}
		p.text = words
		// Drive from the word postings, newest first: the planner picks the
		// rarest word to start from.
		for i, t := range tokens {
			alias := fmt.Sprintf("w%d", i)
			p.from += fmt.Sprintf(" JOIN message_words %s ON %s.message_id = m.id AND %s.bidx = ?", alias, alias, alias)
			p.joinArgs = append(p.joinArgs, t)
		}
	}
	if q.State != "" {
		clause, ok := stateClauses[q.State]
		if !ok {
			return nil, models.Errorf(models.EINVALID, "Unknown conversation state.")
		}
		p.where = append(p.where, clause)
	}
	if q.Flow != "" {
		p.where = append(p.where, "m.contact_id IN (SELECT contact_id FROM conversations WHERE flow_id = ?)")
		p.args = append(p.args, q.Flow)
	}
	if q.Tag != "" { // conversation_tags_tag_idx
		p.where = append(p.where, "m.contact_id IN (SELECT contact_id FROM conversation_tags WHERE tag = ?)")
		p.args = append(p.args, q.Tag)
	}
	if q.Channel != "" {
		p.where = append(p.where, "m.channel = ?")
		p.args = append(p.args, string(q.Channel))
	}
	if q.Status != "" {
		p.where = append(p.where, "m.status = ?")
		p.args = append(p.args, string(q.Status))
	}
	if q.Direction != "" {
		p.where = append(p.where, "m.direction = ?")
		p.args = append(p.args, string(q.Direction))
	}
	if !q.Since.IsZero() {
		p.where = append(p.where, "m.created_at >= ?")
		p.args = append(p.args, q.Since)
	}
	if !q.Until.IsZero() {
		p.where = append(p.where, "m.created_at < ?")
		p.args = append(p.args, q.Until)
	}
	return p, nil
}

// stateClauses select the messages of contacts whose conversation is in
// each state: the open conversation's status (a contact has at most one),
// or none open for "ended".
var stateClauses = map[string]string{
	models.StateActive:  "m.contact_id IN (SELECT contact_id FROM conversations WHERE status = 'active')",
	models.StateHandoff: "m.contact_id IN (SELECT contact_id FROM conversations WHERE status = 'handoff')",
	models.StatePaused:  "m.contact_id IN (SELECT contact_id FROM conversations WHERE status = 'paused')",
	models.StateWaiting: `m.contact_id IN (SELECT c.contact_id FROM conversations c WHERE c.status = 'active'
		AND (SELECT x.direction FROM messages x WHERE x.contact_id = c.contact_id ORDER BY x.seq DESC LIMIT 1) = 'out')`,
	models.StateEnded:  "m.contact_id NOT IN (SELECT contact_id FROM conversations WHERE status NOT IN ('ended', 'error'))",
	models.StateFailed: "m.contact_id IN (SELECT f.contact_id FROM messages f WHERE " + failedNotResent + ")",
}

// candidates returns up to n ids below before that match the indexes.
func (p *searchPlan) candidates(ctx context.Context, s *MessageStore, before int64, n int) ([]int64, error) {
	where := append([]string{"TRUE"}, p.where...)
	args := append(append([]any{}, p.joinArgs...), p.args...)
	if before > 0 {
		where = append(where, "m.id < ?")
		args = append(args, before)
	}
	args = append(args, n)
	sql := "SELECT m.id FROM " + p.from + " WHERE " + strings.Join(where, " AND ") + " ORDER BY m.id DESC LIMIT ?"
	var ids []int64
	if err := s.db.Gorm.WithContext(ctx).Raw(sql, args...).Scan(&ids).Error; err != nil {
		return nil, dbError(err, "Search")
	}
	return ids, nil
}

// load decrypts the messages with these ids and their contacts, in order.
func (s *MessageStore) load(ctx context.Context, ids []int64) ([]models.MessageHit, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	g := gormFor(ctx, s.db, s.crypto, nil)
	var msgs []messageRow
	if err := g.Where("id IN ?", ids).Find(&msgs).Error; err != nil {
		return nil, dbError(err, "Message")
	}
	contactIDs := make([]int64, 0, len(msgs))
	for _, m := range msgs {
		contactIDs = append(contactIDs, m.ContactID)
	}
	var contacts []contactRow
	if err := g.Where("id IN ?", contactIDs).Find(&contacts).Error; err != nil {
		return nil, dbError(err, "Contact")
	}
	byContact := make(map[int64]*models.Contact, len(contacts))
	for i := range contacts {
		byContact[contacts[i].ID] = contacts[i].model()
	}
	byID := make(map[int64]*messageRow, len(msgs))
	for i := range msgs {
		byID[msgs[i].ID] = &msgs[i]
	}
	hits := make([]models.MessageHit, 0, len(ids))
	for _, id := range ids {
		if m, ok := byID[id]; ok {
			hits = append(hits, models.MessageHit{Message: m.model(), Contact: byContact[m.ContactID]})
		}
	}
	return hits, nil
}

// digitsOf is the digits of s (any script's, as ASCII), nothing else.
func digitsOf(s string) string {
	return strings.Map(func(r rune) rune {
		if r < '0' || r > '9' {
			return -1
		}
		return r
	}, textnorm.Digits(s))
}

// matches checks a decrypted hit against the search.
func (p *searchPlan) matches(h models.MessageHit) bool {
	if len(p.numbers) > 0 && (h.Contact == nil || !slices.Contains(p.numbers, h.Contact.Address)) {
		return false
	}
	if p.tail != "" && (h.Contact == nil || h.Contact.AddressInvalid || !strings.HasSuffix(digitsOf(h.Contact.Address), p.tail)) {
		return false
	}
	if len(p.name) > 0 && (h.Contact == nil || !textnorm.ContainsAll(h.Contact.Name, p.name)) {
		return false
	}
	// A message without words of its own (a voice note) was indexed from
	// its transcript, which is not read here: its index entries stand.
	return len(p.text) == 0 || h.Message.Body == "" || textnorm.ContainsAll(h.Message.Body, p.text)
}
