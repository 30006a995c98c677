package pipeline_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
)

// gated holds every message it is asked about until let is called,
// counting how many it holds at once.
type gated struct {
	open chan struct{}
	once sync.Once
	mu   sync.Mutex
	in   int // holding now
	most int // held at once, at most
}

// newGated returns a gated responder that lets go of everything when the
// test ends, before the pipeline started after it is stopped.
func newGated() *gated { return &gated{open: make(chan struct{})} }

func (g *gated) let() { g.once.Do(func() { close(g.open) }) }

func (g *gated) Respond(ctx context.Context, _ *gorm.DB, _ *models.Contact, _ *models.Message) (*pipeline.Outcome, error) {
	g.mu.Lock()
	g.in++
	g.most = max(g.most, g.in)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.in--
		g.mu.Unlock()
	}()
	select {
	case <-g.open:
		return &pipeline.Outcome{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *gated) counts() (in, most int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.in, g.most
}

// waitHolding waits until g holds n messages at once.
func (g *gated) waitHolding(t *testing.T, what string, n int) {
	t.Helper()
	waitFor(t, what, func() bool {
		in, _ := g.counts()
		return in == n
	})
}

// finish lets go and waits until n inbound messages are processed.
func (g *gated) finish(t *testing.T, e *env, n int) {
	t.Helper()
	g.let()
	waitFor(t, "every message processed", func() bool {
		return e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NOT NULL`) == n
	})
}

// holdSends pauses the send queue, so what waits in it stays, and puts
// there a batch of replies (none: nothing).
func holdSends(t *testing.T, e *env, replies int) {
	t.Helper()
	if _, err := e.db.Pool.Exec(context.Background(), `INSERT INTO river_queue (name, created_at, metadata, paused_at, updated_at)
		VALUES ('send', now(), '{}', now(), now())`); err != nil {
		t.Fatal(err)
	}
	if replies == 0 {
		return
	}
	if _, err := e.db.Pool.Exec(context.Background(), `INSERT INTO river_job (kind, queue, args, state, max_attempts)
		VALUES ('send_batch', 'send', jsonb_build_object('provider', 'twilio', 'runs', jsonb_build_array(to_jsonb(array(SELECT generate_series(1, $1::int))))), 'available', 8)`, replies); err != nil {
		t.Fatal(err)
	}
}

// ingestEach ingests a message from each of n contacts, one webhook each
// (a processing job each), and with together a webhook of two more
// contacts (one batch job for both).
func ingestEach(t *testing.T, p *pipeline.Pipeline, n int, together bool) {
	t.Helper()
	for i := range n {
		if _, err := p.Ingest(context.Background(), []channel.Inbound{sms(fmt.Sprintf("SM%d", i), fmt.Sprintf("+9198765432%02d", i), "hi")}); err != nil {
			t.Fatal(err)
		}
	}
	if together {
		if _, err := p.Ingest(context.Background(), []channel.Inbound{sms("SMa", "+919812300001", "hi"), sms("SMb", "+919812300002", "hi")}); err != nil {
			t.Fatal(err)
		}
	}
}

// Processing runs no further ahead of sending than PARLEY_PROCESS_AHEAD:
// with more replies waiting in the send queue than the send rate clears in
// that time, two processing jobs run at a time however many workers are
// free, and the others wait their turn; every message is still processed.
// Without such a queue the same jobs all run at once.
func TestProcessing_SlowsWhileSendingIsBehind(t *testing.T) {
	// Four contacts' jobs and a batch job of two more (one message at a
	// time in it): five jobs, six messages.
	const workers, jobs, contacts = 6, 5, 6
	for _, behind := range []bool{true, false} {
		t.Run(fmt.Sprintf("behind=%v", behind), func(t *testing.T) {
			e := newEnv(t)
			// 30 replies at 10 a second are three seconds of sending, and
			// a job of another shape counts one reply more (it does not
			// fail the read).
			replies := 0
			if behind {
				replies = 30
			}
			holdSends(t, e, replies)
			if behind {
				if _, err := e.db.Pool.Exec(context.Background(), `INSERT INTO river_job (kind, queue, args, state, max_attempts)
					VALUES ('send_message', 'send', '{"provider": "twilio", "message_ids": "not a list"}', 'available', 8)`); err != nil {
					t.Fatal(err)
				}
			}
			g := newGated()
			reg := prometheus.NewRegistry()
			p := e.startWith(t, pipeline.Deps{Responder: g, Metrics: pipeline.NewMetrics(reg),
				Senders: map[string]channel.Sender{channel.Twilio: e.twilio},
				Config: pipeline.Config{Workers: workers, SendRate: 10, ProcessAhead: time.Second,
					ProcessHold: 10 * time.Minute, JobTimeout: 30 * time.Minute, FetchInterval: 20 * time.Millisecond}})
			t.Cleanup(g.let) // runs before the pipeline stops
			ingestEach(t, p, jobs-1, true)
			if behind {
				waitFor(t, "two jobs processing and three waiting their turn", func() bool {
					in, _ := g.counts()
					return in == 2 && metricValue(t, reg, "parley_process_waiting") == jobs-2
				})
				if got := metricValue(t, reg, "parley_sends_ahead_seconds"); got != 3.1 {
					t.Fatalf("sends ahead = %v s, want 3.1 (31 replies at 10 a second)", got)
				}
			} else {
				g.waitHolding(t, "every job processing at once", jobs)
			}
			g.finish(t, e, contacts)
			_, most := g.counts()
			paced := metricValue(t, reg, "parley_process_paced_total")
			switch {
			case behind && (most != 2 || paced != jobs-2):
				t.Fatalf("sending behind: %d jobs processed at once, %v waited their turn; want 2 and %d", most, paced, jobs-2)
			case !behind && (most != jobs || paced != 0):
				t.Fatalf("sending not behind: %d jobs processed at once, %v waited their turn; want %d and 0", most, paced, jobs)
			}
		})
	}
}

// A processing job waits for its turn no longer than Config.ProcessHold:
// pacing slows processing, it never stops it, whatever the send queue
// holds (a provider that is down keeps its replies there).
func TestProcessing_PacedJobsGoOnAfterTheHold(t *testing.T) {
	e := newEnv(t)
	holdSends(t, e, 30)
	const contacts = 4
	g := newGated()
	reg := prometheus.NewRegistry()
	p := e.startWith(t, pipeline.Deps{Responder: g, Metrics: pipeline.NewMetrics(reg),
		Senders: map[string]channel.Sender{channel.Twilio: e.twilio},
		Config: pipeline.Config{Workers: contacts, SendRate: 10, ProcessAhead: time.Second,
			ProcessHold: 50 * time.Millisecond, FetchInterval: 20 * time.Millisecond}})
	t.Cleanup(g.let)
	ingestEach(t, p, contacts, false)
	// Two hold the turns and stay (the gate is shut); the others, past
	// their hold, go on beside them.
	g.waitHolding(t, "every job processing, two of them past their hold", contacts)
	g.finish(t, e, contacts)
	if paced := metricValue(t, reg, "parley_process_paced_total"); paced != contacts-2 {
		t.Fatalf("%v jobs waited their turn, want %d", paced, contacts-2)
	}
}
