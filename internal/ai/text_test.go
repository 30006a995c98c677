package ai_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/internal/ai"
	"github.com/parley-chat/parley/internal/engine"
)

// fakeLLM speaks LiteLLM's OpenAI-compatible chat completions: it checks
// the key, keeps each request, and answers with content, or with an error
// status and OpenAI's error JSON.
type fakeLLM struct {
	*httptest.Server
	mu       sync.Mutex
	requests []map[string]any
	content  string
	status   int
}

func newFakeLLM(t *testing.T) *fakeLLM {
	f := &fakeLLM{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/chat/completions" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer sk-test" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"message":"Authentication Error, Invalid proxy server token passed.","type":"auth_error","param":"None","code":"401"}}`)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, body)
		content, status := f.content, f.status
		f.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"message":"the user wrote: %s","type":"rate_limit_error","param":null,"code":"%d"}}`, "SECRET WORDS", status)
			return
		}
		resp := map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "created": 1763800000, "model": body["model"],
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "message": map[string]any{"role": "assistant", "content": content}}},
			"usage":   map[string]any{"prompt_tokens": 52, "completion_tokens": 9, "total_tokens": 61},
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeLLM) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeLLM) last() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

func newText(t *testing.T, url, key string) *ai.Text {
	t.Helper()
	c, err := ai.NewText(ai.TextConfig{BaseURL: url, APIKey: key, Model: "gpt-4o-mini"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestText_Classify(t *testing.T) {
	llm := newFakeLLM(t)
	text := newText(t, llm.URL, "sk-test")
	req := engine.AIRequest{Task: engine.AIClassifyTask, Text: "मुझे डॉक्टर से मिलना है", Intents: []string{"appointment", "emergency"}}

	llm.content = `{"intent":"appointment","confidence":0.93}`
	res, err := text.Answer(context.Background(), req)
	if err != nil || res.Intent != "appointment" || res.Confidence != 0.93 {
		t.Fatalf("Answer = %+v, %v", res, err)
	}
	body := llm.last()
	if body["model"] != "gpt-4o-mini" {
		t.Errorf("model %v", body["model"])
	}
	rf, _ := json.Marshal(body["response_format"])
	if !strings.Contains(string(rf), `"type":"json_schema"`) || !strings.Contains(string(rf), `"enum":["appointment","emergency","none"]`) {
		t.Errorf("response_format %s: want a JSON schema naming the intents", rf)
	}
	msgs, _ := json.Marshal(body["messages"])
	if !strings.Contains(string(msgs), "मुझे डॉक्टर से मिलना है") {
		t.Errorf("messages %s do not carry the text", msgs)
	}

	llm.content = `{"intent":"none","confidence":0.8}`
	if res, err = text.Answer(context.Background(), req); err != nil || res.Intent != "" {
		t.Fatalf("Answer = %+v, %v; want no intent", res, err)
	}
}

func TestText_Extract(t *testing.T) {
	llm := newFakeLLM(t)
	text := newText(t, llm.URL, "sk-test")
	schema := map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}, "age": map[string]any{"type": "integer"}}, "required": []any{"name"}}
	llm.content = `{"fields":{"name":"Ravi","age":41},"confidence":0.88}`
	res, err := text.Answer(context.Background(), engine.AIRequest{Task: engine.AIExtractTask, Text: "I am Ravi, 41", Schema: schema})
	if err != nil || res.Fields["name"] != "Ravi" || res.Fields["age"] != 41.0 || res.Confidence != 0.88 {
		t.Fatalf("Answer = %+v, %v", res, err)
	}
	rf, _ := json.Marshal(llm.last()["response_format"])
	if !strings.Contains(string(rf), `"fields":{"properties":{"age":{"type":"integer"}`) {
		t.Errorf("response_format %s: want the node's schema under fields", rf)
	}
}

func TestText_FailuresAreErrorsWithoutThePersonsWords(t *testing.T) {
	llm := newFakeLLM(t)
	req := engine.AIRequest{Task: engine.AIClassifyTask, Text: "SECRET WORDS", Intents: []string{"a"}}
	tests := []struct {
		name    string
		key     string
		status  int
		content string
		want    string
	}{
		{"rate limited", "sk-test", 429, "", "429"},
		{"provider down", "sk-test", 503, "", "503"},
		{"bad key", "sk-wrong", 0, "", "401"},
		{"not JSON", "sk-test", 0, "appointment, I think", "not the JSON asked for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			llm.status, llm.content = tt.status, tt.content
			_, err := newText(t, llm.URL, tt.key).Answer(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("err %q carries the person's words", err)
			}
		})
	}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	if _, err := newText(t, down.URL, "sk-test").Answer(context.Background(), req); err == nil || !strings.Contains(err.Error(), "could not be reached") {
		t.Fatalf("err = %v for an endpoint that is down", err)
	}
}

func TestText_RestsAfterRepeatedFailuresAndCountsUsage(t *testing.T) {
	llm := newFakeLLM(t)
	reg := prometheus.NewRegistry()
	text, err := ai.NewText(ai.TextConfig{BaseURL: llm.URL, APIKey: "sk-test", Model: "m", Metrics: ai.NewMetrics(reg), BreakAfter: 3, Rest: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	req := engine.AIRequest{Task: engine.AIClassifyTask, Text: "hello", Intents: []string{"a"}}
	llm.content = `{"intent":"a","confidence":1}`
	if _, err := text.Answer(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := gathered(t, reg, "parley_ai_tokens_total", "prompt"); got != 52 {
		t.Fatalf("prompt tokens counted %v, want the 52 the provider reported", got)
	}
	if _, u, err := text.AnswerMetered(context.Background(), req); err != nil || u.PromptTokens != 52 || u.OutputTokens != 9 || u.Provider != "llm" || u.Task != "classify" {
		t.Fatalf("usage %+v, %v", u, err)
	}
	llm.status = 500
	for range 3 {
		if _, err := text.Answer(context.Background(), req); err == nil {
			t.Fatal("want the outage as an error")
		}
	}
	calls := llm.calls()
	_, err = text.Answer(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "left alone") || llm.calls() != calls {
		t.Fatalf("after 3 failures in a row: err %v, %d more calls; want an error at once and no call", err, llm.calls()-calls)
	}
}

// gathered reads the counter of family name whose label kind is kind.
func gathered(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	return counter(t, reg, name, map[string]string{"kind": kind})
}

// counter reads the counter of family name whose labels include labels.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}
