// Package sarvamtest is a fake of Sarvam's speech-to-text REST API for
// tests, speaking its wire format (WIRE.md): multipart uploads with
// api-subscription-key, {request_id, transcript, language_code} answers,
// and its errors ({"error":{"message","code"}}: 403 bad key, 400 bad
// request or audio over 30 s, 429 with Retry-After, 5xx).
package sarvamtest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/ai"
)

// Key is the subscription key the fake accepts.
const Key = "sarvam-test-key"

// Said is what a recording says, in its language.
type Said struct {
	Text, Language string
}

// Failure is one answer the fake gives instead of a transcript.
type Failure struct {
	Status     int
	Code       string
	RetryAfter int  // seconds, sent as Retry-After
	Malformed  bool // 200 with a body that is not the answer's JSON
	Hang       bool // no answer until the caller gives up
}

// API is the fake.
type API struct {
	*httptest.Server
	mu       sync.Mutex
	said     map[[32]byte]Said
	failures []Failure
	calls    []Call
	gate     chan struct{} // while set, calls wait for it to close
	waiting  int           // calls that reached the gate
}

// Call is one request the fake answered.
type Call struct {
	Model, Mode, Language, FileType string
	Seconds                         float64
	Status                          int
}

// New starts the fake; Close is registered with t.
func New(t testing.TB) *API {
	a := &API{said: map[[32]byte]Said{}}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

// Says makes the fake transcribe this recording (exact bytes) as s;
// anything else is heard as "(n seconds of speech)".
func (a *API) Says(audio []byte, s Said) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.said[sha256.Sum256(audio)] = s
}

// Hold makes calls wait (as a slow service does) until release is
// called or the caller gives up.
func (a *API) Hold() (release func()) {
	gate := make(chan struct{})
	a.mu.Lock()
	a.gate = gate
	a.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.gate = nil
			a.mu.Unlock()
			close(gate)
		})
	}
}

// Waiting counts the calls that have waited on Hold.
func (a *API) Waiting() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waiting
}

// FailNext queues failures for the next calls, in order.
func (a *API) FailNext(f ...Failure) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failures = append(a.failures, f...)
}

// Calls returns the requests answered so far.
func (a *API) Calls() []Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Call(nil), a.calls...)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": message, "code": code}})
}

var models = map[string]bool{"saaras:v3": true, "saaras:v4": true, "saarika:v2.5": true}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/speech-to-text" {
		writeError(w, http.StatusNotFound, "not_found", "Not found")
		return
	}
	a.mu.Lock()
	gate := a.gate
	a.mu.Unlock()
	if gate != nil {
		a.mu.Lock()
		a.waiting++
		a.mu.Unlock()
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if r.Header.Get("api-subscription-key") != Key {
		a.mu.Lock()
		a.calls = append(a.calls, Call{Status: http.StatusForbidden})
		a.mu.Unlock()
		writeError(w, http.StatusForbidden, "invalid_api_key_error", "Invalid API key")
		return
	}
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "Expected multipart/form-data")
		return
	}
	call := Call{Model: r.FormValue("model"), Mode: r.FormValue("mode"), Language: r.FormValue("language_code")}
	f, fh, err := r.FormFile("file")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "file is required")
		return
	}
	audio, _ := io.ReadAll(f)
	call.FileType = fh.Header.Get("Content-Type")
	a.mu.Lock()
	var fail *Failure
	if len(a.failures) > 0 {
		fail, a.failures = &a.failures[0], a.failures[1:]
	}
	s, known := a.said[sha256.Sum256(audio)]
	a.mu.Unlock()
	record := func(status int) {
		call.Status = status
		a.mu.Lock()
		a.calls = append(a.calls, call)
		a.mu.Unlock()
	}
	if d, err := ai.OpusDuration(audio); err == nil {
		call.Seconds = d.Seconds()
	}
	switch {
	case fail != nil && fail.Hang:
		record(0)
		<-r.Context().Done()
		return
	case fail != nil && fail.Malformed:
		record(200)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"request_id":"x","unexpected":true`)
		return
	case fail != nil:
		record(fail.Status)
		if fail.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(fail.RetryAfter))
		}
		writeError(w, fail.Status, fail.Code, "injected failure")
		return
	case !models[call.Model]:
		record(400)
		writeError(w, http.StatusBadRequest, "invalid_request_error", "Invalid model")
		return
	case call.Language == "":
		record(400)
		writeError(w, http.StatusBadRequest, "invalid_request_error", "language_code is required")
		return
	case call.Seconds > 30:
		record(400)
		writeError(w, http.StatusBadRequest, "invalid_request_error", "Audio duration exceeds the maximum limit of 30 seconds")
		return
	}
	record(200)
	if !known {
		s = Said{Text: fmt.Sprintf("(%.0f seconds of speech)", call.Seconds), Language: "en-IN"}
	}
	lang := any(s.Language)
	if call.Language != "unknown" {
		lang = call.Language
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"request_id": fmt.Sprintf("20261203_%d", time.Now().UnixNano()), "transcript": s.Text,
		"language_code": lang, "timestamps": nil, "diarized_transcript": nil})
}
