// Package sirentest is a stand-in for Siren's public API in tests: it
// takes sends, answers status requests, and refuses a wrong key the way
// the real API answers.
package sirentest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// Sent is one message the fake took.
type Sent struct {
	ID, Channel, To, Body string
}

// API is a fake Siren API.
type API struct {
	*httptest.Server
	key    string
	mu     sync.Mutex
	sent   []Sent
	status map[string]map[string]any // notification id → data of the status answer
	limit  []int                     // Retry-After seconds of the next sends refused as rate limited
}

// RateLimitNext makes the next send answer 429 with Retry-After: seconds.
func (a *API) RateLimitNext(seconds int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.limit = append(a.limit, seconds)
}

// NewAPI starts a fake that accepts key as its bearer token.
func NewAPI(key string) *API {
	a := &API{key: key, status: map[string]map[string]any{}}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	return a
}

// Sent returns the messages sent so far.
func (a *API) Sent() []Sent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Sent(nil), a.sent...)
}

// SetStatus makes status requests for id answer this status (and error
// code, when not empty).
func (a *API) SetStatus(id, status, errorCode string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	data := map[string]any{"notificationId": id, "status": status}
	if errorCode != "" {
		data["errorCode"] = errorCode
	}
	a.status[id] = data
}

func reply(w http.ResponseWriter, code int, data any, errMsg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	var e any
	if errMsg != "" {
		e = map[string]string{"message": errMsg}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data, "error": e, "errors": nil, "meta": nil})
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+a.key {
		reply(w, http.StatusUnauthorized, nil, "Invalid API key")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/public/send-messages":
		var body struct {
			Channel   string            `json:"channel"`
			Recipient map[string]string `json:"recipient"`
			Body      string            `json:"body"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Body == "" {
			reply(w, http.StatusBadRequest, nil, "body is required")
			return
		}
		if len(a.limit) > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(a.limit[0]))
			a.limit = a.limit[1:]
			reply(w, http.StatusTooManyRequests, nil, "Too many requests")
			return
		}
		id := fmt.Sprintf("notif-%04d", len(a.sent)+1)
		a.sent = append(a.sent, Sent{ID: id, Channel: body.Channel, To: body.Recipient[strings.ToLower(body.Channel)], Body: body.Body})
		a.status[id] = map[string]any{"notificationId": id, "status": "QUEUED"}
		reply(w, http.StatusOK, map[string]string{"notificationId": id}, "")
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/public/message-status/"):
		data, ok := a.status[strings.TrimPrefix(r.URL.Path, "/api/v1/public/message-status/")]
		if !ok {
			reply(w, http.StatusNotFound, nil, "Notification not found")
			return
		}
		reply(w, http.StatusOK, data, "")
	default:
		reply(w, http.StatusNotFound, nil, "Not found")
	}
}
