// Package geminitest is a fake of Gemini's generateContent for tests,
// speaking its wire format (WIRE.md): x-goog-api-key, inline image parts,
// JSON answers when asked (responseMimeType), usageMetadata, blocked
// prompts without candidates, and errors {"error":{"code","message",
// "status","details"}} with RetryInfo on 429.
package geminitest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Key is the API key the fake accepts.
const Key = "gemini-test-key"

// Seen is what the fake knows of a photo: a description, and the fields
// it can read off it.
type Seen struct {
	Description string
	Fields      map[string]any
	Confidence  float64
}

// Failure is one answer the fake gives instead of reading the photo.
type Failure struct {
	Status     int    // 429, 500, 503, 403…
	RetryDelay string // e.g. "1s": a RetryInfo detail
	Blocked    bool   // 200 with no candidates and a block reason
	Malformed  bool   // 200 whose text is not the JSON asked for
	Hang       bool
}

// API is the fake.
type API struct {
	*httptest.Server
	mu       sync.Mutex
	seen     map[[32]byte]Seen
	failures []Failure
	calls    []Call
}

// Call is one request the fake answered.
type Call struct {
	Model, MimeType string
	JSON            bool // a JSON answer was asked for
	Schema          map[string]any
	Status          int
}

// New starts the fake; Close is registered with t.
func New(t testing.TB) *API {
	a := &API{seen: map[[32]byte]Seen{}}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

// Sees makes the fake read this photo (exact bytes) as s.
func (a *API) Sees(image []byte, s Seen) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen[sha256.Sum256(image)] = s
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

var statusNames = map[int]string{400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
	500: "INTERNAL", 503: "UNAVAILABLE"}

func writeError(w http.ResponseWriter, status int, message string, details []map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := map[string]any{"code": status, "message": message, "status": statusNames[status]}
	if details != nil {
		e["details"] = details
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

// part reads both spellings the API takes (inlineData, inline_data).
type part struct {
	Text        string `json:"text"`
	InlineData  *blob  `json:"inlineData"`
	InlineSnake *blob  `json:"inline_data"`
}

type blob struct {
	MimeType  string `json:"mimeType"`
	MimeSnake string `json:"mime_type"`
	Data      string `json:"data"`
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	model, ok := strings.CutPrefix(r.URL.Path, "/v1beta/models/")
	model, isGenerate := strings.CutSuffix(model, ":generateContent")
	if r.Method != http.MethodPost || !ok || !isGenerate {
		writeError(w, http.StatusNotFound, "Not found", nil)
		return
	}
	if r.Header.Get("x-goog-api-key") != Key {
		a.mu.Lock()
		a.calls = append(a.calls, Call{Status: http.StatusForbidden})
		a.mu.Unlock()
		writeError(w, http.StatusForbidden, "Method doesn't allow unregistered callers. Please use an API key.", nil)
		return
	}
	var req struct {
		Contents []struct {
			Role  string `json:"role"`
			Parts []part `json:"parts"`
		} `json:"contents"`
		GenerationConfig struct {
			ResponseMimeType   string         `json:"responseMimeType"`
			ResponseJSONSchema map[string]any `json:"responseJsonSchema"`
		} `json:"generationConfig"`
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 25<<20))
	if err := json.Unmarshal(raw, &req); err != nil || len(req.Contents) == 0 {
		writeError(w, http.StatusBadRequest, "Invalid JSON payload received.", nil)
		return
	}
	call := Call{Model: model, JSON: req.GenerationConfig.ResponseMimeType == "application/json", Schema: req.GenerationConfig.ResponseJSONSchema}
	var image []byte
	for _, p := range req.Contents[0].Parts {
		b := p.InlineData
		if b == nil {
			b = p.InlineSnake
		}
		if b != nil {
			image, _ = base64.StdEncoding.DecodeString(b.Data)
			call.MimeType = b.MimeType + b.MimeSnake
		}
	}
	a.mu.Lock()
	var fail *Failure
	if len(a.failures) > 0 {
		fail, a.failures = &a.failures[0], a.failures[1:]
	}
	s, known := a.seen[sha256.Sum256(image)]
	a.mu.Unlock()
	record := func(status int) {
		call.Status = status
		a.mu.Lock()
		a.calls = append(a.calls, call)
		a.mu.Unlock()
	}
	usage := map[string]any{"promptTokenCount": 270, "candidatesTokenCount": 40, "totalTokenCount": 310}
	answer := func(text string) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"candidates": []any{map[string]any{"content": map[string]any{"role": "model", "parts": []any{
				map[string]any{"text": "Looking at the card…", "thought": true}, map[string]any{"text": text}}}, "finishReason": "STOP"}},
			"usageMetadata": usage, "modelVersion": model})
	}
	switch {
	case fail != nil && fail.Hang:
		record(0)
		<-r.Context().Done()
		return
	case fail != nil && fail.Blocked:
		record(200)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"promptFeedback": map[string]any{"blockReason": "SAFETY"}, "usageMetadata": usage})
		return
	case fail != nil && fail.Malformed:
		record(200)
		answer("Sure! The date is Monday.")
		return
	case fail != nil:
		record(fail.Status)
		var details []map[string]any
		if fail.RetryDelay != "" {
			details = []map[string]any{{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": fail.RetryDelay}}
		}
		writeError(w, fail.Status, "injected failure", details)
		return
	case image == nil:
		record(400)
		writeError(w, http.StatusBadRequest, "Request contains no image.", nil)
		return
	}
	record(200)
	if !known {
		s = Seen{Description: "A photo.", Confidence: 0.2}
	}
	if !call.JSON {
		answer(s.Description)
		return
	}
	// Only the fields the schema asks for, as a model would.
	fields := map[string]any{}
	if props, ok := call.Schema["properties"].(map[string]any); ok {
		if fs, ok := props["fields"].(map[string]any); ok {
			if want, ok := fs["properties"].(map[string]any); ok {
				for k := range want {
					if v, ok := s.Fields[k]; ok {
						fields[k] = v
					}
				}
			}
		}
	}
	out, _ := json.Marshal(map[string]any{"fields": fields, "confidence": s.Confidence})
	answer(string(out))
}
