package meta

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/parley-chat/parley/models"
)

// maxTemplatePages bounds a listing: 100 pages of 100 is more templates
// than WhatsApp lets an account have.
const maxTemplatePages = 100

type templatePage struct {
	Data []struct {
		ID             string `json:"id"`
		Name           string `json:"name"`
		Language       string `json:"language"`
		Status         string `json:"status"`
		Category       string `json:"category"`
		RejectedReason string `json:"rejected_reason"`
		Components     []struct {
			Type    string `json:"type"`
			Format  string `json:"format"`
			Text    string `json:"text"`
			Buttons []struct {
				Type string `json:"type"`
				Text string `json:"text"`
				URL  string `json:"url"`
			} `json:"buttons"`
		} `json:"components"`
	} `json:"data"`
	Paging struct {
		Cursors struct {
			After string `json:"after"`
		} `json:"cursors"`
		Next string `json:"next"`
	} `json:"paging"`
}

// templateStatuses maps the Graph API's template statuses to Parley's;
// any other is not sendable and shown as disabled.
var templateStatuses = map[string]models.TemplateStatus{
	"APPROVED": models.TemplateApproved, "PENDING": models.TemplatePending, "IN_APPEAL": models.TemplatePending,
	"REJECTED": models.TemplateRejected, "PAUSED": models.TemplatePaused, "DISABLED": models.TemplateDisabled,
	"DELETED": models.TemplateGone,
}

// Templates lists the WhatsApp Business Account's message templates
// (GET /{waba-id}/message_templates), following paging.cursors.after while
// the answer has a paging.next. The next page is asked of the configured
// base URL, never of the URL the answer names, so the token goes nowhere
// else.
func (c *Client) Templates(ctx context.Context) ([]models.Template, error) {
	if c.cfg.WABAID == "" {
		return nil, errors.New("meta: no WhatsApp Business Account id (PARLEY_META_WABA_ID)")
	}
	q := url.Values{"fields": {"name,language,status,category,components,id,rejected_reason"}, "limit": {"100"}}
	var out []models.Template
	for range maxTemplatePages {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+"/"+url.PathEscape(c.cfg.WABAID)+"/message_templates?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.do(req)
		if err != nil {
			return nil, err
		}
		var page templatePage
		err = json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, errors.New("meta: the template list was unreadable")
		}
		for _, d := range page.Data {
			t := models.Template{Provider: "meta", PlatformID: d.ID, Name: d.Name, Language: d.Language, Category: d.Category,
				Status: templateStatuses[d.Status]}
			if t.Status == "" {
				t.Status = models.TemplateDisabled
			}
			if t.Status == models.TemplateRejected && d.RejectedReason != "NONE" {
				t.RejectedReason = d.RejectedReason
			}
			for _, comp := range d.Components {
				switch strings.ToUpper(comp.Type) {
				case "BODY":
					t.Body = comp.Text
				case "HEADER":
					t.HeaderFormat, t.HeaderText = comp.Format, comp.Text
				case "BUTTONS":
					for _, b := range comp.Buttons {
						t.Buttons = append(t.Buttons, models.TemplateButton{Type: b.Type, Text: b.Text, URL: b.URL})
					}
				}
			}
			out = append(out, t)
		}
		if page.Paging.Next == "" || page.Paging.Cursors.After == "" {
			return out, nil
		}
		q.Set("after", page.Paging.Cursors.After)
	}
	return nil, errors.New("meta: the template list did not end")
}
