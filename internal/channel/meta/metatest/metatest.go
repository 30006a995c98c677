// Package metatest is a fake of the WhatsApp Cloud API (Graph API) for
// tests: sending text messages, looking a media id up for a short-lived
// URL and downloading it with the same Bearer token, and the Graph error
// shape ({"error":{"message","type","code","fbtrace_id"}}; 190 for a bad
// token).
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

// Sent is one message the fake accepted.
type Sent struct {
	ID, To, Body string
}

type media struct {
	contentType string
	data        []byte
}

// API is the fake.
type API struct {
	*httptest.Server
	mu    sync.Mutex
	media map[string]media
	sent  []Sent
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
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}})
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+Token {
		graphError(w, http.StatusUnauthorized, 190, "Error validating access token")
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/"+Version+"/")
	switch {
	case r.Method == http.MethodPost && path == PhoneNumberID+"/messages":
		var in struct {
			To   string `json:"to"`
			Type string `json:"type"`
			Text struct {
				Body string `json:"body"`
			} `json:"text"`
		}
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.Type != "text" || in.To == "" {
			graphError(w, http.StatusBadRequest, 100, "Invalid parameter")
			return
		}
		a.mu.Lock()
		id := fmt.Sprintf("wamid.OUT%d", len(a.sent)+1)
		a.sent = append(a.sent, Sent{ID: id, To: in.To, Body: in.Text.Body})
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"messaging_product": "whatsapp", "contacts": []any{map[string]any{"input": in.To, "wa_id": in.To}},
			"messages": []any{map[string]any{"id": id}}})
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
