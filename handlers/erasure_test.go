package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/simulator"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
)

// eventSink is an events receiver that can be down: it answers 503 while
// down, and keeps what it accepted when up.
type eventSink struct {
	mu       sync.Mutex
	down     bool
	accepted []string
}

func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	s.accepted = append(s.accepted, string(body))
	w.WriteHeader(http.StatusNoContent)
}

func (s *eventSink) set(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// The erasure as a new operator measured it: personal events on and the
// receiver down, a contact walks the clinic flow, staff search for them by
// number and words, an admin erases them, the receiver comes back. No
// event about them is delivered, a pg_dump holds nothing of them (the
// queue included), and the audit log read through the API names nothing
// of them either.
func TestErase_WithPersonalEventsQueuedAndSearchesMade(t *testing.T) {
	site := newConsoleSite(t, nil)
	doc := loadAPIDoc(t, site.base)
	ctx := context.Background()
	sink := &eventSink{down: true}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	start := func() *pipeline.Pipeline {
		p, err := pipeline.New(pipeline.Deps{DB: site.db, Crypto: site.crypto, Logger: slog.New(slog.DiscardHandler),
			Responder: pipeline.NewFlows(engine.Builtin(), site.db, site.crypto), Senders: map[string]channel.Sender{channel.Simulator: simulator.Sender{}},
			Events: &pipeline.Events{URL: srv.URL, Secret: []byte(strings.Repeat("s", 32)), Personal: true},
			Config: pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, FetchInterval: 20 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(context.Background()) })
		return p
	}
	p := start()
	for i, in := range []struct{ from, body string }{
		{"+919876543210", "hello my knee hurts"}, {"+14155550100", "hello"}, {"+919876543210", "Asha Verma"}, {"+919876543210", "34"},
	} {
		if _, err := p.Ingest(ctx, []channel.Inbound{{Provider: channel.Simulator, ProviderMessageID: "SIM" + itoa(int64(i)),
			From: in.from, To: "+15005550006", Body: in.body}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the flow's replies", func() bool {
			return site.count(t, `SELECT count(*) FROM river_job WHERE kind <> 'event' AND state NOT IN ('completed', 'discarded', 'cancelled')
				AND NOT (state = 'scheduled' AND scheduled_at > now() + interval '30 seconds')`) == 0
		})
	}
	var asha int64
	if err := site.db.Pool.QueryRow(ctx, `SELECT contact_id FROM messages WHERE provider_message_id = 'SIM0'`).Scan(&asha); err != nil {
		t.Fatal(err)
	}
	if n := site.count(t, `SELECT count(*) FROM river_job WHERE kind = 'event' AND args::text LIKE '%9876543210%' AND state <> 'completed'`); n < 5 {
		t.Fatalf("%d undelivered events carry the number: the test would prove little", n)
	}
	agent := site.api(t, models.RoleAgent, doc)
	for _, q := range []string{"+919876543210", "knee", "Asha"} {
		var found struct{ Conversations []apiHit }
		agent.get(t, "/api/v1/conversations?q="+url.QueryEscape(q), &found)
		if len(found.Conversations) == 0 {
			t.Fatalf("a search for %q found nothing", q)
		}
	}

	// The erasure, then the receiver back. The queue is stopped meanwhile
	// so that no delivery is on its way when the receiver comes back (an
	// event being delivered during an erasure: the pipeline's tests).
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	admin := site.api(t, models.RoleAdmin, doc)
	if status, raw := admin.call(t, "DELETE", "/api/v1/contacts/"+itoa(asha), nil); status != 200 {
		t.Fatalf("the erasure: %d %s", status, raw)
	}
	sink.set(false)
	start()
	waitFor(t, "the queue to drain", func() bool {
		return site.count(t, `SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'discarded', 'cancelled')
			AND NOT (state = 'scheduled' AND scheduled_at > now() + interval '30 seconds')`) == 0
	})
	sink.mu.Lock()
	delivered := strings.Join(sink.accepted, "\n")
	sink.mu.Unlock()
	if !strings.Contains(delivered, "4155550100") {
		t.Fatal("the contact who stays had no event delivered: the test would prove nothing")
	}
	secrets := []string{"9876543210", "Asha", "Verma", "knee", `"contact_id":` + itoa(asha) + `,`}
	for _, s := range secrets {
		if strings.Contains(delivered, s) {
			t.Errorf("an event delivered after the erasure holds %q", s)
		}
	}
	dump := pgtest.Dump(t, site.db)
	if !strings.Contains(dump, "INSERT INTO public.river_job") {
		t.Fatal("the dump holds no jobs: the test would prove nothing of the queue")
	}
	for _, s := range secrets[:4] {
		if strings.Contains(dump, s) {
			t.Errorf("the dump holds %q", s)
		}
	}
	t.Run("audit", func(t *testing.T) {
		// Audit details are encrypted, so the dump cannot show them: read
		// the log back as an admin would.
		status, raw := admin.call(t, "GET", "/api/v1/audit?limit=200", nil)
		if status != 200 || !strings.Contains(string(raw), "messages.search") || !strings.Contains(string(raw), "contact.erase") {
			t.Fatalf("the audit log: %d %s", status, raw)
		}
		for _, s := range secrets[:4] {
			if strings.Contains(string(raw), s) {
				t.Errorf("the audit log read through the API holds %q", s)
			}
		}
	})
}

func (site *consoleSite) count(t *testing.T, sql string) int {
	t.Helper()
	var n int
	if err := site.db.Pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
