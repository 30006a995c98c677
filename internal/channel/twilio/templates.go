package twilio

import (
	"context"
	"errors"
	"strings"

	"github.com/twilio/twilio-go/client"
	content "github.com/twilio/twilio-go/rest/content/v1"

	"github.com/parley-chat/parley/models"
)

// maxContents bounds a listing: more templates than an account keeps.
const maxContents = 5000

// approvalStatuses maps the Content API's WhatsApp approval statuses to
// Parley's.
var approvalStatuses = map[string]models.TemplateStatus{
	"approved": models.TemplateApproved, "pending": models.TemplatePending, "received": models.TemplatePending,
	"submitted": models.TemplatePending, "rejected": models.TemplateRejected, "paused": models.TemplatePaused,
	"disabled": models.TemplateDisabled,
}

// Templates lists the account's Content API templates (GET /v1/Content,
// page by page through meta.next_page_url) with each one's WhatsApp
// approval (GET /v1/Content/{sid}/ApprovalRequests), through twilio-go.
func (c *Client) Templates(ctx context.Context) ([]models.Template, error) {
	tc := &client.Client{Credentials: client.NewCredentials(c.cfg.AccountSID, c.cfg.AuthToken), HTTPClient: c.httpClient(ctx, nil)}
	tc.SetAccountSid(c.cfg.AccountSID)
	api := content.NewApiServiceWithClient(tc)
	params := &content.ListContentParams{}
	params.SetPageSize(100)
	params.SetLimit(maxContents)
	list, err := api.ListContent(params)
	if err != nil {
		return nil, listError(err)
	}
	out := make([]models.Template, 0, len(list))
	for _, ct := range list {
		if ct.Sid == nil {
			continue
		}
		t := models.Template{Provider: "twilio", PlatformID: *ct.Sid, Name: deref(ct.FriendlyName), Language: deref(ct.Language)}
		if ct.Types != nil {
			t.Body, t.Buttons = contentText(*ct.Types)
		}
		approval, err := api.FetchApprovalFetch(*ct.Sid)
		if err != nil {
			return nil, listError(err)
		}
		t.Status = models.TemplateRejected
		t.RejectedReason = "not submitted for WhatsApp approval"
		if approval.Whatsapp != nil {
			wa := *approval.Whatsapp
			status, _ := wa["status"].(string)
			if s, ok := approvalStatuses[strings.ToLower(status)]; ok {
				t.Status, t.RejectedReason = s, ""
				if s == models.TemplateRejected {
					t.RejectedReason, _ = wa["rejection_reason"].(string)
				}
			}
			t.Category, _ = wa["category"].(string)
			t.Category = strings.ToUpper(t.Category)
		}
		out = append(out, t)
	}
	return out, nil
}

// contentText is a Content template's text (the body of its first type
// that has one) and its buttons.
func contentText(types map[string]any) (body string, buttons []models.TemplateButton) {
	for _, kind := range []string{"twilio/text", "twilio/media", "twilio/quick-reply", "twilio/call-to-action", "twilio/card", "whatsapp/card"} {
		v, ok := types[kind].(map[string]any)
		if !ok {
			continue
		}
		if body == "" {
			body, _ = v["body"].(string)
		}
		actions, _ := v["actions"].([]any)
		for _, a := range actions {
			if m, ok := a.(map[string]any); ok {
				b := models.TemplateButton{Type: "QUICK_REPLY"}
				b.Text, _ = m["title"].(string)
				if typ, ok := m["type"].(string); ok && typ != "" {
					b.Type = strings.ToUpper(typ)
				}
				b.URL, _ = m["url"].(string)
				buttons = append(buttons, b)
			}
		}
	}
	return body, buttons
}

// listError names a failed listing without Twilio's own text.
func listError(err error) error {
	var re *client.TwilioRestError
	if errors.As(err, &re) {
		return classify(err, nil)
	}
	return errors.New("twilio: the Content API gave no usable answer")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
