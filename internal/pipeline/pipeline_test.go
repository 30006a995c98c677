package pipeline_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	accountSID = "AC00000000000000000000000000000001"
	authToken  = "secrettoken123"
)

// env is a database, a fake Twilio and what a pipeline needs over them.
type env struct {
	db     *store.DB
	crypto store.Crypto
	api    *twiliotest.API
	twilio *twilio.Client
	ai     pipeline.AI // the AI layer pipelines get; nil: off

	templates int // content templates given to the fake Twilio
}

func newEnv(t *testing.T) *env { return newEnvTB(t) }

func newEnvTB(t testing.TB) *env {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ring, err := crypt.NewKeyRing([]crypt.Key{{ID: "k1", Secret: key}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ix, _ := crypt.NewIndexer(bytes.Repeat([]byte{3}, 32))
	api := twiliotest.NewAPI(accountSID, authToken)
	t.Cleanup(api.Close)
	e := &env{db: pgtest.Open(t), crypto: store.Crypto{Ring: ring, Index: ix, Phones: phone.New("IN")}, api: api}
	tc, err := twilio.NewClient(twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: "+15005550006", APIBaseURL: api.URL,
		Templates: envRegistry{e}})
	if err != nil {
		t.Fatal(err)
	}
	e.twilio = tc
	return e
}

// envRegistry is the template registry in the env's database (whichever
// the test ends up using), as the env's Twilio client reads it.
type envRegistry struct{ e *env }

func (r envRegistry) Find(ctx context.Context, provider, name, language string) (*models.Template, error) {
	return store.NewTemplateStore(r.e.db).Find(ctx, provider, name, language)
}

// sources are the env's platforms that list templates into the registry
// (its Twilio), as parley serve wires them beside the registry.
func (e *env) sources() map[string]pipeline.TemplateSource {
	return map[string]pipeline.TemplateSource{channel.Twilio: e.twilio}
}

// addTemplates gives the fake Twilio these approved WhatsApp content
// templates (English, utility) and syncs them into the registry, as
// `parley templates sync` does.
func (e *env) addTemplates(t testing.TB, bodies map[string]string) {
	t.Helper()
	for name, body := range bodies {
		e.templates++
		e.api.AddContent(twiliotest.Content{SID: fmt.Sprintf("HX%032d", e.templates), FriendlyName: name, Language: "en", Body: body, Status: "approved", Category: "utility"})
	}
	if _, err := pipeline.SyncTemplates(context.Background(), store.NewTemplateStore(e.db), e.sources()); err != nil {
		t.Fatal(err)
	}
}

// start runs a pipeline until the test ends.
func (e *env) start(t *testing.T, responder pipeline.Responder) *pipeline.Pipeline {
	t.Helper()
	p := e.pipeline(t, responder)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p
}

func (e *env) pipeline(t *testing.T, responder pipeline.Responder) *pipeline.Pipeline {
	t.Helper()
	p, err := pipeline.New(pipeline.Deps{
		DB: e.db, Crypto: e.crypto, Responder: responder, AI: e.ai,
		Senders:  map[string]channel.Sender{channel.Twilio: e.twilio},
		Fetchers: map[string]channel.MediaFetcher{channel.Twilio: e.twilio},
		Logger:   slog.New(slog.DiscardHandler),
		Config:   pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startWith runs a pipeline of d (over the env's database and keys) until
// the test ends.
func (e *env) startWith(t *testing.T, d pipeline.Deps) *pipeline.Pipeline {
	t.Helper()
	d.DB, d.Crypto, d.Logger = e.db, e.crypto, slog.New(slog.DiscardHandler)
	p, err := pipeline.New(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p
}

func sms(id, from, body string) channel.Inbound {
	return channel.Inbound{Provider: channel.Twilio, ProviderMessageID: id, From: from, To: "+15005550006", Body: body}
}

// waitFor polls cond until it holds or a deadline passes. Polling a
// condition is how a test waits for background jobs; it never sleeps a
// fixed time in place of one.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// idle reports whether every job due within the minute has finished; a
// conversation's timeouts, hours ahead, do not count.
func (e *env) idle(t *testing.T) bool {
	return e.count(t, `SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'discarded', 'cancelled')
		AND NOT (state = 'scheduled' AND scheduled_at > now() + interval '1 minute')`) == 0
}

func TestPipeline_InboundToReplyThroughTwilio(t *testing.T) {
	e := newEnv(t)
	e.start(t, pipeline.Ack{Text: "Thanks, we got it."})
	stored, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "hello"))
	if err != nil || stored != 1 {
		t.Fatalf("Ingest = %d, %v", stored, err)
	}
	waitFor(t, "the reply to be sent", func() bool { return len(e.api.Sent()) == 1 && e.idle(t) })
	sent := e.api.Sent()[0]
	if sent.To != "+919876543210" || sent.Body != "Thanks, we got it." || sent.From != "+15005550006" {
		t.Fatalf("Twilio received %+v", sent)
	}
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'sent' AND provider_message_id = $1`, sent.SID); n != 1 {
		t.Fatalf("%d outbound messages recorded as sent with Twilio's SID", n)
	}
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NOT NULL`); n != 1 {
		t.Fatalf("%d inbound messages processed, want 1", n)
	}
}

// A message without an address is refused on its own (its address is
// read before it joins a shared transaction) and stores nothing; the
// next webhook is stored as usual.
func TestPipeline_AMessageWithoutAnAddressIsRefused(t *testing.T) {
	e := newEnv(t)
	if _, err := e.pipelineIngest(t, sms("SMnoaddr", "", "hello")); models.ErrorCode(err) != models.EINVALID {
		t.Fatalf("Ingest without an address: %v, want EINVALID", err)
	}
	if stored, err := e.pipelineIngest(t, sms("SMaddr", "+919876543210", "hello")); err != nil || stored != 1 {
		t.Fatalf("Ingest after it = %d, %v", stored, err)
	}
	if n := e.count(t, `SELECT count(*) FROM messages`); n != 1 {
		t.Fatalf("%d messages stored, want only the one with an address", n)
	}
}

// pipelineIngest ingests through a pipeline that is not started.
func (e *env) pipelineIngest(t *testing.T, ins ...channel.Inbound) (int, error) {
	t.Helper()
	return e.pipeline(t, nil).Ingest(context.Background(), ins)
}

// recorder answers each message with its own body and records the order
// it saw messages in, failing the test if two calls overlap.
type recorder struct {
	mu       sync.Mutex
	inFlight int
	seen     []string
	overlap  bool
}

func (r *recorder) Respond(_ context.Context, _ *gorm.DB, _ *models.Contact, in *models.Message) (*pipeline.Outcome, error) {
	r.mu.Lock()
	r.inFlight++
	if r.inFlight > 1 {
		r.overlap = true
	}
	r.seen = append(r.seen, in.Body)
	r.mu.Unlock()
	defer func() { r.mu.Lock(); r.inFlight--; r.mu.Unlock() }()
	return &pipeline.Outcome{Replies: []string{"re: " + in.Body}}, nil
}

func (r *recorder) snapshot() ([]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...), r.overlap
}

func TestPipeline_OneContactsMessagesAreHandledInOrder(t *testing.T) {
	e := newEnv(t)
	// Fifty messages arrive at once, in shuffled order, each with the
	// platform's timestamp; then the workers start.
	base := time.Now().Add(-time.Hour).UTC()
	var ins []channel.Inbound
	for i := range 50 {
		ts := base.Add(time.Duration(i) * time.Second)
		in := channel.Inbound{Provider: channel.Twilio, ProviderMessageID: fmt.Sprintf("SM%03d", i), From: "+919876543210", Body: fmt.Sprintf("m%02d", i), Timestamp: &ts}
		ins = append(ins, in)
	}
	var wg sync.WaitGroup
	p := e.pipeline(t, nil)
	for _, i := range randPerm(50) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Ingest(context.Background(), []channel.Inbound{ins[i]}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rec := &recorder{}
	e.start(t, rec)
	waitFor(t, "all 50 replies", func() bool { return len(e.api.Sent()) == 50 && e.idle(t) })
	seen, overlap := rec.snapshot()
	if overlap {
		t.Fatal("two jobs processed the contact at once")
	}
	for i, body := range seen {
		if want := fmt.Sprintf("m%02d", i); body != want {
			t.Fatalf("message %d handled was %q, want %q; order: %v", i, body, want, seen)
		}
	}
	// Replies went out, one each; Twilio saw each once.
	bodies := map[string]int{}
	for _, s := range e.api.Sent() {
		bodies[s.Body]++
	}
	for i := range 50 {
		if n := bodies[fmt.Sprintf("re: m%02d", i)]; n != 1 {
			t.Fatalf("reply to m%02d sent %d times", i, n)
		}
	}
	// One run took all fifty: their replies left in order, from one send
	// job (not fifty, each waiting on the one before).
	for i, s := range e.api.Sent() {
		if want := fmt.Sprintf("re: m%02d", i); s.Body != want {
			t.Fatalf("reply %d sent was %q, want %q", i, s.Body, want)
		}
	}
	var sendJobs int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'send_message'`).Scan(&sendJobs); err != nil || sendJobs != 1 {
		t.Fatalf("send jobs: %d %v; want one for the run", sendJobs, err)
	}
}

func TestPipeline_ConcurrentArrivalsAreEachProcessedOnce(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	p := e.start(t, rec)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Ingest(context.Background(), []channel.Inbound{sms(fmt.Sprintf("SM%d", i), "+919876543210", fmt.Sprintf("m%d", i))}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	waitFor(t, "all 50 replies", func() bool { return len(e.api.Sent()) == 50 && e.idle(t) })
	seen, overlap := rec.snapshot()
	if overlap {
		t.Fatal("two jobs processed the contact at once")
	}
	if len(seen) != 50 {
		t.Fatalf("responder saw %d messages, want 50", len(seen))
	}
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NULL`); n != 0 {
		t.Fatalf("%d messages left unprocessed", n)
	}
}

func randPerm(n int) []int {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(b[i]) % (i + 1)
		perm[i], perm[j] = perm[j], perm[i]
	}
	return perm
}
