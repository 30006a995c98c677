package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// BenchmarkDashboard_MillionMessages times the dashboard's 30 days through
// the real router (HTTP, bearer check, counting, JSON) over a million
// messages (PARLEY_BENCH_MESSAGES) written in time order across those
// days, with a conversation for every ten (a tenth of them handed off, a
// hundredth of the sends failed). The first request counts the settled
// days and keeps them (reported as first_ms); each timed one counts today
// and reads the rest.
func BenchmarkDashboard_MillionMessages(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("PARLEY_BENCH_MESSAGES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("PARLEY_BENCH_MESSAGES=%q is not a positive number", s)
		}
	}
	db := pgtest.Open(b)
	ctx := context.Background()
	seed := []string{
		`INSERT INTO contacts (channel, address_enc, address_bidx) SELECT 'whatsapp', '\x00', int8send(g) FROM generate_series(1, 10000) g`,
		// Written in time order, as ingest writes them: now - 30 days to now.
		`INSERT INTO messages (contact_id, direction, channel, provider, provider_message_id, status, error_code, created_at)
		 SELECT c.first + (g % 10000) * 64, CASE WHEN g % 2 = 0 THEN 'in' ELSE 'out' END, 'whatsapp', 'twilio', 'SM' || g,
		   CASE WHEN g % 200 = 1 THEN 'failed' WHEN g % 2 = 0 THEN 'received' ELSE 'delivered' END,
		   CASE WHEN g % 200 = 1 THEN (ARRAY['21211', '63016', '21610', ''])[g % 4 + 1] ELSE '' END,
		   now() - interval '30 days' + g * (interval '30 days' / $1)
		 FROM generate_series(1, $1) g, (SELECT min(id) AS first FROM contacts) c`,
		`INSERT INTO conversations (contact_id, flow_id, flow_version, node, status, started_at, ended_at, handoff_at, handoff_answered_at, nodes_visited)
		 SELECT c.first + (g % 10000) * 64, (ARRAY['clinic', 'triage'])[g % 2 + 1], 'v1',
		   (ARRAY['booked', 'goodbye', 'handoff', 'ask_need'])[g % 4 + 1], CASE WHEN g > $1 / 10 - 10000 THEN 'active' ELSE 'ended' END,
		   t, CASE WHEN g <= $1 / 10 - 10000 THEN t + interval '5 minutes' END,
		   CASE WHEN g % 10 = 0 THEN t END, CASE WHEN g % 10 = 0 THEN t + (g % 900) * interval '1 second' END,
		   '["welcome", "ask_name", "ask_age"]'
		 FROM generate_series(1, $1 / 10) g, (SELECT min(id) AS first FROM contacts) c,
		   LATERAL (SELECT now() - interval '30 days' + g * (interval '30 days' / ($1 / 10))) AS at(t)`,
		`VACUUM ANALYZE messages`, `VACUUM ANALYZE conversations`,
	}
	for _, q := range seed {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, n)
		}
		if _, err := db.Pool.Exec(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
	}
	base, token := dashboardServer(b, db)
	get := func() time.Duration {
		req, _ := http.NewRequest("GET", base+"/api/v1/dashboard?range=30d", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"messages_in"`) {
			b.Fatalf("dashboard: %d %s", resp.StatusCode, body)
		}
		return took
	}
	first := get() // counts the settled days and keeps them
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		took = append(took, get())
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(took[len(took)*95/100].Microseconds())/1000, "p95_ms")
	b.ReportMetric(float64(first.Milliseconds()), "first_ms")
}

// dashboardServer serves the API over db and returns its address and an
// admin's access token.
func dashboardServer(b *testing.B, db *store.DB) (base, token string) {
	crypto := newCryptoForTest(b)
	staff := store.NewStaffStore(db)
	issuer, err := auth.NewLocalIssuer(localIssuerURL, []byte(strings.Repeat("k", 32)), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	verifier, _ := auth.NewVerifier(auth.VerifierConfig{Issuer: localIssuerURL, Keys: issuer.Keys()})
	readiness, _ := store.NewReadiness(db)
	app := handlers.NewServer(handlers.Deps{Logger: slog.New(slog.DiscardHandler), Readiness: readiness, Version: "bench", Registry: prometheus.NewRegistry(),
		Access:    &handlers.Access{Verifier: verifier, Staff: staff, Audit: store.NewAuditStore(db, crypto)},
		Dashboard: &handlers.Dashboard{Counts: store.NewDashboardStore(db), Flows: engine.Builtin()}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	b.Cleanup(func() { _ = app.Shutdown() })
	u, err := staff.Create(context.Background(), "", "bench@example.org", models.RoleAdmin, "")
	if err != nil {
		b.Fatal(err)
	}
	if token, _, err = issuer.Issue(u, ""); err != nil {
		b.Fatal(err)
	}
	return "http://" + ln.Addr().String(), token
}
