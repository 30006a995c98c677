package handlers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// BenchmarkWorkspace_FirstScreen times the workspace's first screen (GET
// /work, the view "all", signed in as a supervisor: session, CSRF, the
// list read and its page decrypted, the page rendered) through the real
// router over 10,000 conversations (PARLEY_BENCH_CONVERSATIONS). Each
// person wrote through the ingest path production uses (sealed address,
// name and body, blind indexes), half were answered (a hundredth of the
// answers failed), and their conversations are spread over the states the
// badges show (a tenth handed off, some held by the reader, some paused or
// ended).
func BenchmarkWorkspace_FirstScreen(b *testing.B) {
	n := 10_000
	if s := os.Getenv("PARLEY_BENCH_CONVERSATIONS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("PARLEY_BENCH_CONVERSATIONS=%q is not a positive number", s)
		}
	}
	site := newConsoleSite(b, nil)
	ctx := context.Background()
	hash, _ := auth.HashPassword("a long enough password")
	lead, err := site.staff.Create(ctx, "", "lead@example.org", models.RoleSupervisor, hash)
	if err != nil {
		b.Fatal(err)
	}
	seedWorkBench(b, site, n, lead.ID)
	cookie := benchSignIn(b, site, "lead@example.org", "a long enough password")

	get := func() time.Duration {
		req, _ := http.NewRequest("GET", site.base+"/work", nil)
		req.Header.Set("Cookie", "parley_session="+cookie)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != 200 || strings.Count(string(body), `data-testid="work-row"`) != min(n, 100) {
			b.Fatalf("the workspace: %d, %d rows", resp.StatusCode, strings.Count(string(body), `data-testid="work-row"`))
		}
		return took
	}
	first := get()
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		took = append(took, get())
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(took[len(took)*95/100].Microseconds())/1000, "p95_ms")
	b.ReportMetric(float64(first.Microseconds())/1000, "first_ms")
}

// seedWorkBench writes n people's first messages in batches through the
// Ingestor (as webhooks are stored), an answer to every second one, and a
// conversation for each.
func seedWorkBench(b *testing.B, site *consoleSite, n int, staffID string) {
	ctx := context.Background()
	ingest := store.NewIngestor(site.db, site.crypto)
	const batch = 500
	for from := 0; from < n; from += batch {
		items := make([]store.IngestItem, 0, batch)
		for i := from; i < min(n, from+batch); i++ {
			it := store.IngestItem{From: fmt.Sprintf("whatsapp:+9198%08d", i), Provider: "bench", ProviderMessageID: fmt.Sprintf("bench-%d", i),
				Body: fmt.Sprintf("hello, this is message %d about an appointment", i)}
			if i%3 != 0 {
				it.ProfileName = fmt.Sprintf("Person %d", i)
			}
			items = append(items, it)
		}
		if err := pgx.BeginFunc(ctx, site.db.Pool, func(tx pgx.Tx) error {
			_, err := ingest.Write(ctx, tx, items)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	type written struct {
		ID      int64
		Channel string
	}
	rows, err := site.db.Pool.Query(ctx, `SELECT id, channel FROM contacts ORDER BY id`)
	if err != nil {
		b.Fatal(err)
	}
	contacts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[written])
	if err != nil {
		b.Fatal(err)
	}
	messages := store.NewMessageStore(site.db, site.crypto)
	var replies []*models.Message
	for i, c := range contacts {
		if i%2 == 1 {
			status := models.StatusDelivered
			if i%100 == 1 {
				status = models.StatusFailed
			}
			replies = append(replies, &models.Message{ContactID: c.ID, Channel: models.Channel(c.Channel), Provider: "bench",
				Body: "What is your name?", Status: status})
		}
		if len(replies) == batch || i == len(contacts)-1 {
			if err := messages.InsertReplies(ctx, nil, replies); err != nil {
				b.Fatal(err)
			}
			replies = replies[:0]
		}
	}
	for _, q := range []string{
		`INSERT INTO conversations (contact_id, flow_id, flow_version, node, status, assigned_to, handoff_at, ended_at)
		 SELECT id, 'clinic', 'v1', 'ask_name',
		   CASE WHEN id % 10 = 0 THEN 'handoff' WHEN id % 10 = 1 THEN 'paused' WHEN id % 10 = 2 THEN 'ended' ELSE 'active' END,
		   CASE WHEN id % 20 = 0 OR id % 10 = 1 THEN $1::uuid END,
		   CASE WHEN id % 10 = 0 THEN now() - interval '1 hour' END, CASE WHEN id % 10 = 2 THEN now() END
		 FROM contacts`,
		`VACUUM ANALYZE contacts`, `VACUUM ANALYZE messages`, `VACUUM ANALYZE conversations`,
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, staffID)
		}
		if _, err := site.db.Pool.Exec(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSignIn signs in through the console's form and returns the session
// cookie's value.
func benchSignIn(b *testing.B, site *consoleSite, email, password string) string {
	form := url.Values{"email": {email}, "password": {password}, "next": {"/work"}}
	req, _ := http.NewRequest("POST", site.base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "parley_session" && resp.StatusCode == 303 {
			return c.Value
		}
	}
	b.Fatalf("sign-in: %d, no session", resp.StatusCode)
	return ""
}
