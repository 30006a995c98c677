package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/siren"
	"github.com/parley-chat/parley/internal/channel/siren/sirentest"
	"github.com/parley-chat/parley/internal/pipeline"
)

// TestSirenStatuses_PolledUntilFinal sends a reply through Siren, which
// pushes no delivery statuses, and follows the message as the poll job
// asks Siren's status route: each answer moves it forward, a final one
// ends the polling.
func TestSirenStatuses_PolledUntilFinal(t *testing.T) {
	for _, final := range []struct{ status, code, want string }{{"READ", "", "read"}, {"UNDELIVERED", "470", "failed"}} {
		t.Run(final.want, func(t *testing.T) {
			e := newEnv(t)
			api := sirentest.NewAPI("siren-key")
			t.Cleanup(api.Close)
			sc, err := siren.NewClient(siren.Config{APIKey: "siren-key", BaseURL: api.URL})
			if err != nil {
				t.Fatal(err)
			}
			p := e.startWith(t, pipeline.Deps{
				Responder: pipeline.Ack{Text: "Thanks!"},
				Senders:   map[string]channel.Sender{channel.Siren: sc},
				Config:    pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 100 * time.Millisecond},
			})
			in := channel.Inbound{Provider: channel.Siren, ProviderMessageID: "m-1", From: "whatsapp:+919876543210", To: "+15005550006", Body: "hello"}
			if _, err := p.Ingest(context.Background(), []channel.Inbound{in}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the reply to be sent", func() bool { return len(api.Sent()) == 1 })
			id := api.Sent()[0].ID
			status := func() string {
				var s string
				_ = e.db.Pool.QueryRow(context.Background(), `SELECT status || ':' || error_code FROM messages WHERE direction = 'out'`).Scan(&s)
				return s
			}
			waitFor(t, "the send to be recorded", func() bool { return status() == "sent:" })
			if n := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'poll_status' AND state = 'scheduled' AND scheduled_at > now()`); n != 1 {
				t.Fatalf("%d status polls scheduled, want one, a minute after the send", n)
			}
			// Each step: Siren's answer changes, the poll comes due.
			for _, step := range []struct{ status, code, want string }{{"SENT", "", "sent:"}, {"DELIVERED", "", "delivered:"}, {final.status, final.code, final.want + ":" + final.code}} {
				api.SetStatus(id, step.status, step.code)
				waitFor(t, "Siren's "+step.status+" to be applied", func() bool {
					_, _ = e.db.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'available', scheduled_at = now() WHERE kind = 'poll_status' AND state = 'scheduled'`)
					return status() == step.want
				})
			}
			waitFor(t, "the polling to end", func() bool {
				return e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'poll_status' AND state = 'completed'`) == 1
			})
		})
	}
}
