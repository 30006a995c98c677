package twiliotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
)

// Content is a Content API template of the fake's account. Status is its
// WhatsApp approval: approved, pending, rejected, paused, … ("" for
// unsubmitted).
type Content struct {
	SID, FriendlyName, Language, Body, Status, Category, RejectionReason string
}

// AddContent adds (or replaces, by SID) a content template.
func (a *API) AddContent(c Content) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, old := range a.contents {
		if old.SID == c.SID {
			a.contents[i] = c
			return
		}
	}
	a.contents = append(a.contents, c)
}

var contentVar = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// render judges a message create with ContentSid as Twilio does: an
// unknown SID is 21655, ContentVariables that are not a JSON object 21656,
// a template not approved for WhatsApp 63027 and variables that are not
// the template's 63028. It returns the rendered text.
func (a *API) render(sid, vars string) (string, *Failure) {
	a.mu.Lock()
	var c *Content
	for i := range a.contents {
		if a.contents[i].SID == sid {
			cc := a.contents[i]
			c = &cc
		}
	}
	a.mu.Unlock()
	if c == nil {
		return "", &Failure{HTTPStatus: 400, Code: 21655, Message: "The ContentSid is Invalid"}
	}
	values := map[string]string{}
	if vars != "" && json.Unmarshal([]byte(vars), &values) != nil {
		return "", &Failure{HTTPStatus: 400, Code: 21656, Message: "The ContentVariables Parameter is invalid"}
	}
	if c.Status != "approved" {
		return "", &Failure{HTTPStatus: 400, Code: 63027, Message: "Template does not exist for a language and locale"}
	}
	want := map[string]bool{}
	for _, m := range contentVar.FindAllStringSubmatch(c.Body, -1) {
		want[m[1]] = true
	}
	mismatch := len(want) != len(values)
	for k := range values {
		mismatch = mismatch || !want[k]
	}
	if mismatch {
		return "", &Failure{HTTPStatus: 400, Code: 63028, Message: "Number of parameters provided does not match the expected number of parameters"}
	}
	return contentVar.ReplaceAllStringFunc(c.Body, func(m string) string { return values[contentVar.FindStringSubmatch(m)[1]] }), nil
}

// listContent answers GET /v1/Content as the Content API does: a page of
// contents with meta.next_page_url while more remain.
func (a *API) listContent(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) {
		writeError(w, Failure{HTTPStatus: 401, Code: 20003, Message: "Authenticate"})
		return
	}
	q := r.URL.Query()
	size, err := strconv.Atoi(q.Get("PageSize"))
	if err != nil || size <= 0 {
		size = 50
	}
	page, _ := strconv.Atoi(q.Get("Page"))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ContentPageSize > 0 {
		size = min(size, a.ContentPageSize)
	}
	a.ContentPages++
	start := min(page*size, len(a.contents))
	end := min(start+size, len(a.contents))
	items := []map[string]any{}
	for _, c := range a.contents[start:end] {
		items = append(items, map[string]any{
			"sid": c.SID, "account_sid": a.AccountSID, "friendly_name": c.FriendlyName, "language": c.Language,
			"variables": map[string]any{}, "types": map[string]any{"twilio/text": map[string]any{"body": c.Body}},
			"url":          "https://content.twilio.com/v1/Content/" + c.SID,
			"links":        map[string]any{"approval_fetch": "https://content.twilio.com/v1/Content/" + c.SID + "/ApprovalRequests"},
			"date_created": "2026-01-02T03:04:05Z", "date_updated": "2026-01-02T03:04:05Z",
		})
	}
	pageURL := func(p int) string {
		return fmt.Sprintf("https://content.twilio.com/v1/Content?PageSize=%d&Page=%d&PageToken=PT%d", size, p, p)
	}
	var next any
	if end < len(a.contents) {
		next = pageURL(page + 1)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"contents": items, "meta": map[string]any{
		"page": page, "page_size": size, "first_page_url": pageURL(0), "previous_page_url": nil, "url": pageURL(page),
		"next_page_url": next, "key": "contents"}})
}

// approval answers GET /v1/Content/{sid}/ApprovalRequests: the content's
// WhatsApp approval, or 404 (20404) for an unknown SID.
func (a *API) approval(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) {
		writeError(w, Failure{HTTPStatus: 401, Code: 20003, Message: "Authenticate"})
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.contents {
		if c.SID != r.PathValue("sid") {
			continue
		}
		wa := map[string]any{}
		if c.Status != "" {
			wa = map[string]any{"type": "whatsapp", "name": c.FriendlyName, "category": c.Category, "content_type": "twilio/text",
				"status": c.Status, "rejection_reason": c.RejectionReason, "allow_category_change": true}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"sid": c.SID, "account_sid": a.AccountSID, "whatsapp": wa,
			"url": "https://content.twilio.com/v1/Content/" + c.SID + "/ApprovalRequests"})
		return
	}
	writeError(w, Failure{HTTPStatus: 404, Code: 20404, Message: "The requested resource was not found"})
}
