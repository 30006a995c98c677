package models

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// TemplateStatus is where a template stands with WhatsApp's review.
type TemplateStatus string

// Template statuses. Only an approved template can be sent.
const (
	TemplateApproved TemplateStatus = "approved"
	TemplatePending  TemplateStatus = "pending"
	TemplateRejected TemplateStatus = "rejected"
	TemplatePaused   TemplateStatus = "paused"   // low quality: WhatsApp stopped it for a while
	TemplateDisabled TemplateStatus = "disabled" // paused too often: WhatsApp stopped it for good
	// TemplateGone is a template the platform no longer lists: kept, as
	// messages refer to it by name, but not sendable.
	TemplateGone TemplateStatus = "gone"
)

// Template is an entry of the template registry: a WhatsApp template as
// a platform (Meta's WhatsApp Business Account, Twilio's Content API)
// knows it. Templates are the business's own text, not personal data.
type Template struct {
	ID int64 `json:"id"`
	// Provider is the platform it was synced from: meta or twilio.
	Provider string `json:"provider"`
	// PlatformID is Meta's template id or Twilio's ContentSid (HX…).
	PlatformID string `json:"platform_id"`
	Name       string `json:"name"`
	Language   string `json:"language"`
	// Category is MARKETING, UTILITY or AUTHENTICATION.
	Category string `json:"category"`
	// Body is the text with its parameters, {{1}} or {{name}}.
	Body string `json:"body"`
	// HeaderFormat is TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION ("" for
	// none); HeaderText is a text header's text.
	HeaderFormat string           `json:"header_format,omitempty"`
	HeaderText   string           `json:"header_text,omitempty"`
	Buttons      []TemplateButton `json:"buttons,omitempty"`
	Status       TemplateStatus   `json:"status"`
	// RejectedReason is the platform's reason for a rejection ("" else).
	RejectedReason string    `json:"rejected_reason,omitempty"`
	SyncedAt       time.Time `json:"synced_at"`
}

// TemplateButton is one button of a template.
type TemplateButton struct {
	Type string `json:"type"` // QUICK_REPLY, URL, PHONE_NUMBER, …
	Text string `json:"text"`
	URL  string `json:"url,omitempty"`
}

var templateParam = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// Params lists the parameters of the template's body, in order of first
// appearance: "1", "2", … for numbered ones, the names of named ones.
func (t *Template) Params() []string { return TemplateParams(t.Body) }

// TemplateParams lists the parameters of a template text, each once, in
// order of first appearance.
func TemplateParams(text string) []string {
	var out []string
	for _, m := range templateParam.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// Numbered reports whether the template's parameters are numbered ({{1}})
// rather than named.
func (t *Template) Numbered() bool {
	ps := t.Params()
	return len(ps) > 0 && strings.Trim(ps[0], "0123456789") == ""
}

// Sendable is why the template cannot be sent now, or "" when it can.
func (t *Template) Sendable() string {
	switch t.Status {
	case TemplateApproved:
		return ""
	case TemplatePending:
		return "is still waiting for WhatsApp's approval"
	case TemplateRejected:
		if t.RejectedReason != "" && t.RejectedReason != "NONE" {
			return "was rejected by WhatsApp (" + t.RejectedReason + ")"
		}
		return "was rejected by WhatsApp"
	case TemplatePaused:
		return "is paused by WhatsApp for its quality rating"
	case TemplateDisabled:
		return "is disabled by WhatsApp"
	case TemplateGone:
		return "is no longer on the platform"
	}
	return "is not approved (" + string(t.Status) + ")"
}

// CheckParams returns EINVALID, naming the template and the parameters
// (never their values), unless params fill exactly the template's
// parameters.
func (t *Template) CheckParams(params map[string]string) error {
	want := t.Params()
	var missing, extra []string
	for _, p := range want {
		if strings.TrimSpace(params[p]) == "" {
			missing = append(missing, p)
		}
	}
	for p := range params {
		if !slices.Contains(want, p) {
			extra = append(extra, p)
		}
	}
	sort.Strings(extra)
	switch {
	case len(missing) > 0:
		return Errorf(EINVALID, "Template %q (%s) takes %d parameters; %s not filled.", t.Name, t.Language, len(want), quoteList(missing))
	case len(extra) > 0:
		return Errorf(EINVALID, "Template %q (%s) takes %d parameters; it has no %s.", t.Name, t.Language, len(want), quoteList(extra))
	}
	return nil
}

// Render is the template's body with its parameters filled in: the text
// the person reads. It checks the parameters first (CheckParams).
func (t *Template) Render(params map[string]string) (string, error) {
	if err := t.CheckParams(params); err != nil {
		return "", err
	}
	return templateParam.ReplaceAllStringFunc(t.Body, func(m string) string {
		return params[templateParam.FindStringSubmatch(m)[1]]
	}), nil
}

func quoteList(ps []string) string {
	q := make([]string, len(ps))
	for i, p := range ps {
		q[i] = "{{" + p + "}}"
	}
	return strings.Join(q, ", ")
}
