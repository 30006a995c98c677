package pipeline_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/engine/enginetest"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
)

// TestFlows_TranscriptsThroughThePipeline replays the engine's golden
// transcripts through the whole pipeline: signed-off ingest, processing
// under the contact's lock, conversation state in Postgres, replies sent
// through twilio-go to the fake Twilio, timeouts as queued jobs.
func TestFlows_TranscriptsThroughThePipeline(t *testing.T) {
	files, _ := filepath.Glob("../engine/testdata/transcripts/*.txt")
	if len(files) < 12 {
		t.Fatalf("found %d transcripts", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			tr, err := enginetest.Read(file)
			if err != nil {
				t.Fatal(err)
			}
			replayThroughPipeline(t, tr)
		})
	}
}

func replayThroughPipeline(t *testing.T, tr *enginetest.Transcript) {
	e := newEnv(t)
	e.ai = fakeAI(enginetest.AI)
	var lib *engine.Library
	for _, f := range engine.Builtin().Flows() {
		if f.File == tr.Flow {
			lib = engine.NewLibrary(f) // the transcript's flow is the one new conversations start on
		}
	}
	if lib == nil {
		t.Fatalf("no built-in flow in %s", tr.Flow)
	}
	flows := pipeline.NewFlows(lib, e.db, e.crypto)
	p := e.start(t, flows)
	const from = "+919876543210"
	contact, _, err := store.NewContactStore(e.db, e.crypto).FindOrCreate(context.Background(), from)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Lang != "" {
		if _, err := e.db.Pool.Exec(context.Background(), `UPDATE contacts SET language = $1`, tr.Lang); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0 // replies already matched
	var pending []string
	settle := func() {
		waitFor(t, "the pipeline to settle", func() bool { return e.idle(t) })
		sent := e.api.Sent()
		for _, s := range sent[seen:] {
			pending = append(pending, s.Body)
		}
		seen = len(sent)
	}
	for i, l := range tr.Lines {
		if l.Kind != enginetest.Reply && len(pending) > 0 {
			t.Fatalf("line %d: unexpected replies %q", l.N, pending)
		}
		switch l.Kind {
		case enginetest.Say:
			if _, err := p.Ingest(context.Background(), []channel.Inbound{sms(fmt.Sprintf("SM%d", i), from, l.Text)}); err != nil {
				t.Fatal(err)
			}
			settle()
		case enginetest.Timeout:
			// Time passes: the wait that was scheduled comes due now.
			if _, err := e.db.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'available', scheduled_at = now()
				WHERE kind = 'conversation_wait' AND state = 'scheduled' AND args->>'input' = $1`, l.Text); err != nil {
				t.Fatal(err)
			}
			settle()
		case enginetest.Reply:
			if len(pending) == 0 || pending[0] != l.Text {
				t.Fatalf("line %d: reply %q, want %q (all pending: %q)", l.N, first(pending), l.Text, pending)
			}
			pending = pending[1:]
		case enginetest.Assert:
			if got := e.stateValue(t, contact.ID, l.Key); got != l.Value {
				t.Fatalf("line %d: %s = %q, want %q", l.N, l.Key, got, l.Value)
			}
		}
	}
	if len(pending) > 0 {
		t.Fatalf("unexpected replies at the end: %q", pending)
	}
}

// fakeAI is the deterministic AI layer of the transcripts.
type fakeAI func(engine.AIRequest) engine.AIResult

func (f fakeAI) Answer(_ context.Context, req engine.AIRequest) (engine.AIResult, error) {
	return f(req), nil
}

func first(s []string) string {
	if len(s) == 0 {
		return "(nothing)"
	}
	return s[0]
}

// stateValue reads the contact's newest conversation from the database.
func (e *env) stateValue(t *testing.T, contactID int64, key string) string {
	t.Helper()
	ctx := context.Background()
	if key == "opted_out" {
		return fmt.Sprint(e.count(t, `SELECT count(*) FROM contacts WHERE id = $1 AND opted_out_at IS NOT NULL`, contactID) == 1)
	}
	var id int64
	if err := e.db.Pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM conversations WHERE contact_id = $1`, contactID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if id == 0 {
		return ""
	}
	conv, err := store.NewConversationStore(e.db, e.crypto).Get(ctx, nil, id)
	if err != nil {
		t.Fatal(err)
	}
	switch key {
	case "node":
		return conv.Node
	case "status":
		return string(conv.Status)
	}
	if name, ok := strings.CutPrefix(key, "var "); ok {
		return conv.Variables[name]
	}
	return "unknown key " + key
}
