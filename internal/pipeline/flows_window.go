package pipeline

import (
	"context"
	"strconv"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/models"
)

// via is how a step's replies will leave: the provider, and when the
// contact last wrote if the caller knows (zero: ask the database).
type via struct {
	provider string
	wrote    time.Time
}

// windowed is what a step sends once WhatsApp's 24-hour window is taken
// into account: the replies' texts, the template each goes as (nil for
// free text), or why none can go and the conversation is handed to a
// person instead.
type windowed struct {
	texts     []string
	templates []*models.TemplateRef
	handoff   string // the reason, "" when the replies go
}

// window decides how a step's sends leave. Within WhatsApp's window (or
// on a channel without one) they go as written. Past it each goes as the
// approved template its node names, rendered from the registry; when one
// names none, or its template is missing, not approved or not filled,
// none goes and the reason is returned: the conversation is handed to a
// person rather than send what WhatsApp would refuse. The send job's own
// window check stays as the last guard.
func (f *Flows) window(ctx context.Context, tx *gorm.DB, contact *models.Contact, v via, node string, sends []engine.Action) (windowed, error) {
	var w windowed
	for _, a := range sends {
		w.texts = append(w.texts, a.Text)
	}
	if len(sends) == 0 || contact.Channel != models.ChannelWhatsApp || v.provider == "" || f.templates == nil {
		return w, nil
	}
	if !v.wrote.IsZero() && f.now().Sub(v.wrote) <= f.Window {
		return w, nil // answering a message of the last 24 hours: no need to ask
	}
	// A timeout, or a message that waited: the contact may have written
	// since.
	wrote, err := f.messages.LastInbound(ctx, tx, contact.ID, models.ChannelWhatsApp)
	if err != nil {
		return w, err
	}
	if f.now().Sub(wrote) <= f.Window {
		return w, nil
	}
	w.templates = make([]*models.TemplateRef, len(sends))
	for i, a := range sends {
		if a.Template == nil {
			return windowed{handoff: "WhatsApp's 24-hour window is closed and node " + strconv.Quote(node) +
				" names no template to send instead: write to the contact with an approved template, or add one to the flow."}, nil
		}
		t, err := f.templates.Find(ctx, v.provider, a.Template.Name, a.Template.Language)
		switch {
		case models.ErrorCode(err) == models.ENOTFOUND:
			return windowed{handoff: "WhatsApp's 24-hour window is closed and template " + strconv.Quote(a.Template.Name) + " (" + a.Template.Language +
				") is not in the template registry: create it at " + v.provider + " or run `parley templates sync`."}, nil
		case err != nil:
			return w, err
		}
		if why := t.Sendable(); why != "" {
			return windowed{handoff: "WhatsApp's 24-hour window is closed and template " + strconv.Quote(a.Template.Name) + " (" + a.Template.Language + ") " + why + "."}, nil
		}
		body, err := t.Render(a.Template.Params)
		if err != nil {
			return windowed{handoff: "WhatsApp's 24-hour window is closed and the template cannot be sent: " + err.Error()}, nil
		}
		w.texts[i], w.templates[i] = body, a.Template
	}
	return w, nil
}
