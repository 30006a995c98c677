package handlers

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/parley-chat/parley/models"
	"github.com/parley-chat/parley/views"
)

// templates lists the template registry: what WhatsApp will take once a
// contact's 24-hour window has closed, and what it will not yet.
func (in *Inbox) templates() fiber.Handler {
	return func(c *fiber.Ctx) error {
		list, err := in.Templates.List(c.UserContext())
		if err != nil {
			return err
		}
		p := views.TemplatesProps{Staff: badge(c)}
		for _, t := range list {
			p.Templates = append(p.Templates, templateRow(t))
		}
		return render(c, views.Templates(p))
	}
}

func templateRow(t *models.Template) views.TemplateRow {
	r := views.TemplateRow{Name: t.Name, Language: t.Language, Provider: t.Provider, Category: t.Category, Body: t.Body,
		Status: string(t.Status), Reason: t.RejectedReason, Params: len(t.Params()), Synced: t.SyncedAt.UTC().Format(time.RFC3339),
		Sendable: t.Sendable() == ""}
	if t.HeaderFormat != "" {
		r.Header = t.HeaderFormat
		if t.HeaderText != "" {
			r.Header += ": " + t.HeaderText
		}
	}
	for _, b := range t.Buttons {
		r.Buttons = append(r.Buttons, b.Text)
	}
	return r
}
