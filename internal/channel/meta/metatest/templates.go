package metatest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/parley-chat/parley/models"
)

type sendRequest struct {
	MessagingProduct string `json:"messaging_product"`
	To               string `json:"to"`
	Type             string `json:"type"`
	Text             struct {
		Body string `json:"body"`
	} `json:"text"`
	Template struct {
		Name     string `json:"name"`
		Language struct {
			Code string `json:"code"`
		} `json:"language"`
		Components []struct {
			Type       string `json:"type"`
			Parameters []struct {
				Type          string `json:"type"`
				Text          string `json:"text"`
				ParameterName string `json:"parameter_name"`
			} `json:"parameters"`
		} `json:"components"`
	} `json:"template"`
}

// template judges a template send as the Cloud API does (a.mu held): an
// unknown name or language, or one not approved, is 132001; paused 132015;
// disabled 132016; body parameters that are not the template's count
// 132000. Accepted, it is recorded with its text rendered.
func (a *API) template(in sendRequest) (Sent, *Failure) {
	var tpl *Template
	for i := range a.templates {
		if a.templates[i].Name == in.Template.Name && a.templates[i].Language == in.Template.Language.Code {
			tpl = &a.templates[i]
		}
	}
	missing := &Failure{HTTPStatus: 404, Code: 132001, Message: "Template name does not exist in the translation"}
	switch {
	case tpl == nil:
		return Sent{}, missing
	case tpl.Status == "PAUSED":
		return Sent{}, &Failure{HTTPStatus: 400, Code: 132015, Message: "Template is paused"}
	case tpl.Status == "DISABLED":
		return Sent{}, &Failure{HTTPStatus: 400, Code: 132016, Message: "Template is disabled"}
	case tpl.Status != "APPROVED":
		return Sent{}, missing
	}
	s := Sent{To: in.To, Template: tpl.Name, Language: tpl.Language}
	values := map[string]string{}
	for _, c := range in.Template.Components {
		if c.Type != "body" {
			continue
		}
		for i, p := range c.Parameters {
			key := strconv.Itoa(i + 1)
			if p.ParameterName != "" {
				key = p.ParameterName
				s.Params = append(s.Params, key+"="+p.Text)
			} else {
				s.Params = append(s.Params, p.Text)
			}
			values[key] = p.Text
		}
	}
	body, err := (&models.Template{Name: tpl.Name, Language: tpl.Language, Body: tpl.Body}).Render(values)
	if err != nil {
		return Sent{}, &Failure{HTTPStatus: 400, Code: 132000, Message: "Number of parameters does not match the expected number of params"}
	}
	s.Body = body
	return s, nil
}

// listTemplates answers GET /{waba-id}/message_templates: a page of limit
// templates (25 by default; at most PageSize when set) after the cursor "after", with
// paging.cursors and paging.next while more remain.
func (a *API) listTemplates(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := strconv.Atoi(q.Get("limit"))
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil || limit <= 0 {
		limit = 25
	}
	if a.PageSize > 0 {
		limit = min(limit, a.PageSize)
	}
	start := 0
	if after := q.Get("after"); after != "" {
		raw, err := base64.StdEncoding.DecodeString(after)
		if start, err = strconv.Atoi(string(raw)); err != nil {
			graphError(w, http.StatusBadRequest, 100, "Invalid parameter")
			return
		}
	}
	a.TemplatePages++
	end := min(start+limit, len(a.templates))
	data := []map[string]any{}
	for _, t := range a.templates[min(start, end):end] {
		components := []map[string]any{{"type": "BODY", "text": t.Body}}
		if t.Header != "" {
			components = append([]map[string]any{{"type": "HEADER", "format": "TEXT", "text": t.Header}}, components...)
		}
		reason := t.RejectedReason
		if reason == "" {
			reason = "NONE"
		}
		data = append(data, map[string]any{"name": t.Name, "language": t.Language, "status": t.Status, "category": t.Category,
			"components": components, "id": t.ID, "rejected_reason": reason})
	}
	cursor := func(i int) string { return base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(i))) }
	paging := map[string]any{"cursors": map[string]any{"before": cursor(start), "after": cursor(end)}}
	if end < len(a.templates) {
		next := *r.URL
		nq := next.Query()
		nq.Set("after", cursor(end))
		nq.Set("limit", strconv.Itoa(limit))
		next.RawQuery = nq.Encode()
		paging["next"] = fmt.Sprintf("%s%s", a.URL, next.RequestURI())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data, "paging": paging})
}
