// Package metatest is a fake of the WhatsApp Cloud API (Graph API) for
// tests: sending text messages and approved templates, listing a WhatsApp
// Business Account's templates page by page, looking a media id up for a
// short-lived URL and downloading it with the same Bearer token, and the
// Graph error shape ({"error":{"message","type","code","error_data",
// "fbtrace_id"}}; 190 for a bad token, 132000/132001/132015/132016 for
// template sends).
package metatest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Token is the access token the fake accepts.
const Token = "meta-test-token"

// Version and PhoneNumberID are the Graph path the fake serves.
const (
	Version       = "v21.0"
	PhoneNumberID = "123456"
)

// WABAID is the WhatsApp Business Account whose templates the fake lists.
const WABAID = "987654"

// Sent is one message the fake accepted. A template send has Template
// (its name), Language and Params (the body parameters in order; named
// ones as name=value).
type Sent struct {
	ID, To, Body       string
	Template, Language string
	Params             []string
}

type media struct {
	contentType string
	data        []byte
}

// API is the fake.
type API struct {
	*httptest.Server
	mu        sync.Mutex
	media     map[string]media
	sent      []Sent
	templates []Template
	failures  []Failure
	// PageSize, when set, is the most templates a page lists whatever
	// the request's limit, so a test sees several pages.
	PageSize int
	// TemplatePages counts the template list pages served.
	TemplatePages int
}

// Template is a template of the fake's business account, as the Graph API
// lists it (status APPROVED, PENDING, REJECTED, PAUSED, DISABLED).
type Template struct {
	ID, Name, Language, Status, Category, Body string
	RejectedReason                             string
	Header                                     string // a TEXT header's text ("" for none)
}

// Failure is a Graph error the fake answers the next send with.
type Failure struct {
	HTTPStatus, Code int
	Message          string
}

// Common refusals, as the Cloud API answers them.
var (
	NotOnWhatsApp = Failure{HTTPStatus: 400, Code: 131026, Message: "Message undeliverable"}
	ReEngagement  = Failure{HTTPStatus: 400, Code: 131047, Message: "Re-engagement message"}
	Throughput    = Failure{HTTPStatus: 400, Code: 130429, Message: "Rate limit hit"}
)

// AddTemplate adds (or replaces, by name and language) a template.
func (a *API) AddTemplate(t Template) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, old := range a.templates {
		if old.Name == t.Name && old.Language == t.Language {
			a.templates[i] = t
			return
		}
	}
	a.templates = append(a.templates, t)
}

// RemoveTemplate deletes a template from the account.
func (a *API) RemoveTemplate(name, language string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, t := range a.templates {
		if t.Name == name && t.Language == language {
			a.templates = append(a.templates[:i], a.templates[i+1:]...)
			return
		}
	}
}

// FailNext makes the next sends fail with these Graph errors, in order.
func (a *API) FailNext(f ...Failure) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failures = append(a.failures, f...)
}

// New starts the fake; Close is registered with t.
func New(t testing.TB) *API {
	a := &API{media: map[string]media{}}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

// BaseURL is the Graph base the client is configured with.
func (a *API) BaseURL() string { return a.URL + "/" + Version }

// AddMedia makes a media id downloadable.
func (a *API) AddMedia(id, contentType string, data []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.media[id] = media{contentType, data}
}

// Sent returns the messages sent so far, in order.
func (a *API) Sent() []Sent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Sent(nil), a.sent...)
}

func graphError(w http.ResponseWriter, status, code int, message string) {
	graphErrorDetails(w, status, code, message, "")
}

// graphErrorDetails is a Graph error with error_data.details, as the Cloud
// API gives for WhatsApp's own codes.
func graphErrorDetails(w http.ResponseWriter, status, code int, message, details string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := map[string]any{"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}
	if details != "" {
		e["error_data"] = map[string]any{"messaging_product": "whatsapp", "details": details}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+Token {
		graphError(w, http.StatusUnauthorized, 190, "Error validating access token")
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/"+Version+"/")
	switch {
	case r.Method == http.MethodPost && path == PhoneNumberID+"/messages":
		var in sendRequest
		if json.NewDecoder(r.Body).Decode(&in) != nil || (in.Type != "text" && in.Type != "template") || in.To == "" || in.MessagingProduct != "whatsapp" {
			graphError(w, http.StatusBadRequest, 100, "Invalid parameter")
			return
		}
		a.mu.Lock()
		if len(a.failures) > 0 {
			f := a.failures[0]
			a.failures = a.failures[1:]
			a.mu.Unlock()
			graphErrorDetails(w, f.HTTPStatus, f.Code, fmt.Sprintf("(#%d) %s", f.Code, f.Message), f.Message)
			return
		}
		s := Sent{To: in.To, Body: in.Text.Body}
		if in.Type == "template" {
			var refusal *Failure
			s, refusal = a.template(in)
			if refusal != nil {
				a.mu.Unlock()
				graphErrorDetails(w, refusal.HTTPStatus, refusal.Code, fmt.Sprintf("(#%d) %s", refusal.Code, refusal.Message), refusal.Message)
				return
			}
		}
		id := fmt.Sprintf("wamid.OUT%d", len(a.sent)+1)
		s.ID = id
		a.sent = append(a.sent, s)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"messaging_product": "whatsapp", "contacts": []any{map[string]any{"input": in.To, "wa_id": in.To}},
			"messages": []any{map[string]any{"id": id}}})
	case r.Method == http.MethodGet && path == WABAID+"/message_templates":
		a.listTemplates(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/download/"):
		a.mu.Lock()
		m, ok := a.media[strings.TrimPrefix(r.URL.Path, "/download/")]
		a.mu.Unlock()
		if !ok {
			graphError(w, http.StatusNotFound, 100, "Unsupported get request")
			return
		}
		w.Header().Set("Content-Type", m.contentType)
		_, _ = w.Write(m.data)
	case r.Method == http.MethodGet && !strings.Contains(path, "/"):
		a.mu.Lock()
		m, ok := a.media[path]
		a.mu.Unlock()
		if !ok {
			graphError(w, http.StatusBadRequest, 100, "Unsupported get request")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"messaging_product": "whatsapp", "url": a.URL + "/download/" + path, "mime_type": m.contentType,
			"sha256": "x", "file_size": len(m.data), "id": path})
	default:
		graphError(w, http.StatusNotFound, 100, "Unknown path")
	}
}
