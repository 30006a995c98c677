package pipeline

import (
	"context"
	"strings"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// broadcaster is what broadcasts use beside the pipeline's own parts.
type broadcaster struct {
	store     *store.BroadcastStore
	phones    phone.Normalizer
	templates channel.Templates // nil: no registry; every template is taken for approved
}

// audiencePage is how many contacts a filtered audience reads at a time:
// their variables, when the filter names some, are decrypted a page at a
// time, so memory stays bounded whatever the audience.
const audiencePage = 5000

// planFilter writes the recipients of b's filtered audience, counting them
// by exclusion reason ("" for those it reaches). Variables are sealed, so
// a filter on them is applied after decryption, a page at a time.
func (p *Pipeline) planFilter(ctx context.Context, tx *gorm.DB, b *models.Broadcast, counts map[string]int) error {
	langs := &approvals{p: p, tpl: b.Message.Template, flow: b.Message.FlowID != "", reg: *p.registry(b.Provider)}
	withVars := len(b.Audience.Vars) > 0
	if !withVars && !langs.flow { // a flow's start reads each member's conversation
		return p.planFilterInSQL(ctx, tx, b, langs, counts)
	}
	var after int64
	for {
		page, err := p.bcast.store.AudiencePage(ctx, tx, b.Channel, b.Audience, after, audiencePage, withVars)
		if err != nil || len(page) == 0 {
			return err
		}
		after = page[len(page)-1].ContactID
		rs := make([]store.Recipient, 0, len(page))
		for _, m := range page {
			if withVars && !varsMatch(m.Vars, b.Audience.Vars) {
				continue
			}
			r, err := langs.recipient(ctx, m)
			if err != nil {
				return err
			}
			counts[r.Reason]++
			rs = append(rs, r)
		}
		if err := p.bcast.store.AddRecipients(ctx, tx, b.ID, rs); err != nil {
			return err
		}
	}
}

// planFilterInSQL writes the recipients of a filter without variables
// with one statement, the database choosing and sorting them: the
// template registry is asked first about each language there is.
func (p *Pipeline) planFilterInSQL(ctx context.Context, tx *gorm.DB, b *models.Broadcast, langs *approvals, counts map[string]int) error {
	def := ""
	var unapproved []string
	if b.Message.Template != nil {
		def = b.Message.Template.Language
		all, err := p.bcast.store.AudienceLanguages(ctx, tx, b.Channel, def)
		if err != nil {
			return err
		}
		for _, lang := range all {
			ok, err := langs.approved(ctx, lang)
			if err != nil {
				return err
			}
			if !ok {
				unapproved = append(unapproved, lang)
			}
		}
	}
	got, err := p.bcast.store.PlanAudience(ctx, tx, b.ID, b.Channel, b.Audience, def, unapproved)
	for reason, n := range got {
		counts[reason] += n
	}
	return err
}

// varsMatch reports whether vars has each wanted value (trimmed, in any
// case).
func varsMatch(vars, want map[string]string) bool {
	for k, v := range want {
		if !strings.EqualFold(strings.TrimSpace(vars[k]), strings.TrimSpace(v)) {
			return false
		}
	}
	return true
}

// planCSV writes a recipient for each line of the sheet: its contact found
// or created on b's channel, or excluded (an invalid number, a number an
// earlier line had, or a contact who may not be reached).
func (p *Pipeline) planCSV(ctx context.Context, tx *gorm.DB, b *models.Broadcast, sheet *csvAudience, counts map[string]int) error {
	var numbers []string
	seen := make(map[string]bool, len(sheet.rows))
	for _, r := range sheet.rows {
		if r.number != "" && !seen[r.number] {
			seen[r.number] = true
			numbers = append(numbers, r.number)
		}
	}
	contacts, err := p.bcast.store.ContactsByNumber(ctx, tx, b.Channel, numbers)
	if err != nil {
		return err
	}
	langs := &approvals{p: p, tpl: b.Message.Template, flow: b.Message.FlowID != "", reg: *p.registry(b.Provider)}
	done := make(map[string]bool, len(numbers))
	rs := make([]store.Recipient, 0, len(sheet.rows))
	for _, row := range sheet.rows {
		var r store.Recipient
		m, ok := contacts[row.number]
		switch {
		case row.number == "" || !ok:
			r = store.Recipient{Status: store.RecipientExcluded, Reason: models.ExcludedInvalidNumber}
		case done[row.number]:
			r = store.Recipient{ContactID: m.ContactID, Status: store.RecipientExcluded, Reason: models.ExcludedDuplicate}
		default:
			done[row.number] = true
			if r, err = langs.recipient(ctx, m); err != nil {
				return err
			}
			if r.Status == store.RecipientPending {
				r.Vars = row.vars
			}
		}
		r.Line = row.line
		counts[r.Reason]++
		rs = append(rs, r)
	}
	return p.bcast.store.AddRecipients(ctx, tx, b.ID, rs)
}

// approvals decides each audience member's part in a broadcast, asking the
// template registry once a language.
type approvals struct {
	p    *Pipeline
	tpl  *models.TemplateRef
	flow bool // a flow's start: whoever is in a running conversation is left out
	reg  registryCache
}

// recipient is m as a recipient: pending, with the template's language
// for them, or excluded with the reason.
func (a *approvals) recipient(ctx context.Context, m store.AudienceMember) (store.Recipient, error) {
	r := store.Recipient{ContactID: m.ContactID, Status: store.RecipientExcluded}
	switch {
	case m.Invalid:
		r.Reason = models.ExcludedInvalidNumber
	case m.OptedOut:
		r.Reason = models.ExcludedOptedOut
	case m.ConvStatus == string(models.ConversationHandoff) || m.ConvStatus == string(models.ConversationPaused):
		r.Reason = models.ExcludedHandoff
	case a.flow && m.ConvStatus == string(models.ConversationActive):
		r.Reason = models.ExcludedInFlow
	}
	if r.Reason != "" || a.tpl == nil {
		if r.Reason == "" {
			r.Status = store.RecipientPending
		}
		return r, nil
	}
	lang := m.Language
	if lang == "" {
		lang = a.tpl.Language
	}
	ok, err := a.approved(ctx, lang)
	switch {
	case err != nil:
		return r, err
	case !ok:
		r.Reason = models.ExcludedNoTemplate
	default:
		r.Status, r.Language = store.RecipientPending, lang
	}
	return r, nil
}

// approved asks the registry whether the template is approved in lang,
// once a language.
func (a *approvals) approved(ctx context.Context, lang string) (bool, error) {
	if a.reg.reg == nil {
		return true, nil
	}
	t, err := a.reg.find(ctx, a.tpl.Name, lang)
	if err != nil {
		return false, err
	}
	return t != nil && t.Sendable() == "", nil
}
