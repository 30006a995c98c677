package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/ai/geminitest"
	"github.com/parley-chat/parley/internal/ai/sarvamtest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

func TestFlowsValidate(t *testing.T) {
	code, out, stderr := runCmd(t, nil, "flows", "validate")
	if code != exitOK || !strings.Contains(out, "ok  clinic") {
		t.Fatalf("validate built-in = %d\n%s%s", code, out, stderr)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("id: b\nstart: a\nnodes:\n  a: {send: hi, next: missing}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCmd(t, nil, "flows", "validate", dir)
	if code != exitFailure || !strings.Contains(stderr, `broken.yaml: node "a": next "missing" is not a node`) {
		t.Fatalf("validate broken = %d: %s", code, stderr)
	}
	if strings.Contains(out, "warning:") {
		t.Errorf("the built-in flows have warnings:\n%s", out)
	}
	// A question without a retry limit is a warning: printed, exit 0.
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "loose.yaml"), []byte("id: l\nstart: a\nnodes:\n  a: {ask: {prompt: q, type: yes_no}, next: b}\n  b: {end: {}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCmd(t, nil, "flows", "validate", dir)
	if code != exitOK || !strings.Contains(out, "ok  l ") || !strings.Contains(out, `warning: loose.yaml: node "a": ask has no retry limit`) {
		t.Fatalf("validate with a warning = %d\n%s%s", code, out, stderr)
	}
}

func TestFlowsSimulate_Scripted(t *testing.T) {
	script := filepath.Join(t.TempDir(), "script.txt")
	if err := os.WriteFile(script, []byte("hello\nAsha\n१२\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd(t, nil, "flows", "simulate", "clinic", "--script", script)
	if code != exitOK {
		t.Fatalf("simulate = %d: %s", code, stderr)
	}
	for _, want := range []string{"< What is your name?", "< How old are you, Asha?", "< A parent or guardian needs to book for you.", "status ended", "age=12"} {
		if !strings.Contains(out, want) {
			t.Errorf("simulation lacks %q:\n%s", want, out)
		}
	}
}

// TestFlowsSimulate_AskTheConfiguredLLM runs the triage flow's AI nodes
// against a stand-in for LiteLLM's chat completions endpoint.
func TestFlowsSimulate_AskTheConfiguredLLM(t *testing.T) {
	answers := []string{`{"intent":"prescription","confidence":0.9}`, `{"fields":{"medicine":"metformin","dose_mg":500},"confidence":0.95}`}
	var calls int
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/chat/completions" || r.Header.Get("Authorization") != "Bearer sk-local" || calls >= len(answers) {
			http.Error(w, `{"error":{"message":"unexpected","type":"invalid_request_error","param":null,"code":"400"}}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		content, _ := json.Marshal(answers[calls])
		calls++
		fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1763800000,"model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":%s}}]}`, content)
	}))
	defer llm.Close()
	script := filepath.Join(t.TempDir(), "script.txt")
	if err := os.WriteFile(script, []byte("hi\nI need my tablets again\nmetformin 500\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PARLEY_LLM_BASE_URL": llm.URL, "PARLEY_LLM_API_KEY": "sk-local", "PARLEY_LLM_MODEL": "m"}
	code, out, stderr := runCmd(t, env, "flows", "simulate", "triage", "--script", script)
	if code != exitOK {
		t.Fatalf("simulate = %d: %s", code, stderr)
	}
	for _, want := range []string{"< Which medicine, and what dose?", "< We will refill metformin (500 mg).", "need=prescription"} {
		if !strings.Contains(out, want) {
			t.Errorf("simulation lacks %q:\n%s", want, out)
		}
	}
	// Without an LLM the same flow takes its fallback.
	_, out, _ = runCmd(t, nil, "flows", "simulate", "triage", "--script", script)
	if !strings.Contains(out, "< Sorry, I did not follow.") {
		t.Errorf("without an LLM, want the fallback:\n%s", out)
	}
}

// The console's flows page reads the folder again: nothing for a sound one,
// the problems in words for a broken one.
func TestCheckFlows_ReadsTheFolderAgain(t *testing.T) {
	if checkFlows("") != nil {
		t.Fatal("a check without a flows folder")
	}
	dir := t.TempDir()
	good := "id: hello\nstart: hi\nnodes:\n  hi:\n    end: {send: {en: \"Hello\"}}\n"
	if err := os.WriteFile(filepath.Join(dir, "hello.yaml"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	check := checkFlows(dir)
	if err := check(); err != nil {
		t.Fatalf("a sound folder: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.yaml"), []byte(strings.Replace(good, "end: {send: {en: \"Hello\"}}", "send: {en: \"Hello\"}\n    next: nowhere", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := check(); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("a broken file: %v", err)
	}
}

// A flow author tries spoken and photographed answers in the terminal:
// /voice and /image send a file, through the configured services (here
// the Sarvam and Gemini fakes); without them a voice note is unheard.
func TestFlowsSimulate_VoiceAndImage(t *testing.T) {
	dir := t.TempDir()
	flow := "../../internal/ai/testdata/intake.yaml"
	voice, card := "../../internal/ai/testdata/voice-note-en.ogg", "../../internal/ai/testdata/appointment-card.jpg"
	script := filepath.Join(dir, "script.txt")
	if err := os.WriteFile(script, []byte("hi\n/voice "+voice+"\n/image "+card+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sarvam, gemini := sarvamtest.New(t), geminitest.New(t)
	note, _ := os.ReadFile(voice)
	photo, _ := os.ReadFile(card)
	sarvam.Says(note, sarvamtest.Said{Text: "My name is Asha", Language: "en-IN"})
	gemini.Sees(photo, geminitest.Seen{Fields: map[string]any{"date": "2026-12-14", "doctor": "Dr. R. Iyer"}, Confidence: 0.9})
	env := map[string]string{"PARLEY_SARVAM_API_KEY": sarvamtest.Key, "PARLEY_SARVAM_BASE_URL": sarvam.URL,
		"PARLEY_GEMINI_API_KEY": geminitest.Key, "PARLEY_GEMINI_BASE_URL": gemini.URL}
	code, out, stderr := runCmd(t, env, "flows", "simulate", flow, "--script", script)
	if code != exitOK {
		t.Fatalf("simulate = %d: %s", code, stderr)
	}
	for _, want := range []string{"(heard, en-IN: My name is Asha)", "< Thank you. Please send a photo of your appointment card.",
		"< Booked with Dr. R. Iyer on 2026-12-14.", "said=My name is Asha"} {
		if !strings.Contains(out, want) {
			t.Errorf("simulation lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = runCmd(t, nil, "flows", "simulate", flow, "--script", script)
	for _, want := range []string{"(not heard: PARLEY_SARVAM_API_KEY is unset)", "< Sorry, I couldn't listen to that. Could you type it?"} {
		if !strings.Contains(out, want) {
			t.Errorf("without speech-to-text, the simulation lacks %q:\n%s", want, out)
		}
	}
}

// With a database, validate checks the templates the flows name against
// the registry: an empty registry is a warning; a template missing in one
// of the flow's languages, or filled with other parameters than it takes,
// fails; one pending approval is a warning.
func TestFlowsValidate_TemplatesAgainstTheRegistry(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := map[string]string{"DATABASE_URL": dsn}
	code, out, stderr := runCmd(t, env, "flows", "validate")
	if code != exitOK || !strings.Contains(out, "warning: clinic.yaml: the template registry is empty") {
		t.Fatalf("validate against an empty registry = %d\n%s%s", code, out, stderr)
	}
	if _, out, _ := runCmd(t, nil, "flows", "validate"); !strings.Contains(out, "note: the WhatsApp templates the flows name were not checked") {
		t.Fatalf("validate without a database says nothing of the templates:\n%s", out)
	}
	db := openDB(t, dsn)
	reg := store.NewTemplateStore(db)
	closed := []models.Template{{PlatformID: "1", Name: "conversation_closed", Language: "en", Body: "Thank you for writing to the clinic.", Status: models.TemplateApproved}}
	if _, err := reg.Sync(context.Background(), "meta", closed, time.Now()); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCmd(t, env, "flows", "validate")
	if code != exitFailure || !strings.Contains(stderr, `clinic.yaml: node "goodbye": end template "conversation_closed" (hi) is not in the template registry`) {
		t.Fatalf("validate with the template missing in Hindi = %d: %s", code, stderr)
	}
	closed = append(closed, models.Template{PlatformID: "2", Name: "conversation_closed", Language: "hi", Body: "धन्यवाद।", Status: models.TemplatePending},
		models.Template{PlatformID: "3", Name: "appointment_reminder", Language: "en", Body: "Hi {{1}}, see you at {{2}}.", Status: models.TemplateApproved})
	if _, err := reg.Sync(context.Background(), "meta", closed, time.Now()); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCmd(t, env, "flows", "validate")
	if code != exitOK || !strings.Contains(out, `warning: clinic.yaml: node "goodbye": end template "conversation_closed" (hi) is still waiting for WhatsApp's approval`) {
		t.Fatalf("validate with the Hindi template pending = %d\n%s%s", code, out, stderr)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "remind.yaml"), []byte(`id: r
languages: [en]
start: a
nodes:
  a:
    ask:
      prompt: When?
      save: when
      retry: {limit: 2}
      timeout: {remind_after: 30h, remind: "Still there?", remind_template: {name: appointment_reminder, params: {"1": "{{name}}"}}}
    next: b
  b: {end: {}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCmd(t, env, "flows", "validate", dir)
	if code != exitFailure || !strings.Contains(stderr, `remind.yaml: node "a": remind_template: Template "appointment_reminder" (en) takes 2 parameters; {{2}} not filled`) {
		t.Fatalf("validate with a parameter unfilled = %d: %s", code, stderr)
	}
}
