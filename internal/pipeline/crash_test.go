package pipeline_test

import (
	"context"
	"os"
	"testing"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
)

// dyingResponder is a processing step during which the worker is killed.
type dyingResponder struct{ entered chan struct{} }

func (d *dyingResponder) Respond(ctx context.Context, _ *gorm.DB, _ *models.Contact, _ *models.Message) (*pipeline.Outcome, error) {
	close(d.entered)
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestProcess_KilledMidwayReplaysExactlyOnce(t *testing.T) {
	e := newEnv(t)
	if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "hello")); err != nil {
		t.Fatal(err)
	}
	d := &dyingResponder{entered: make(chan struct{})}
	first := e.pipeline(t, d)
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-d.entered
	killed, kill := context.WithCancel(context.Background())
	kill()
	_ = first.Stop(killed) // cancels the running job mid-transaction

	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NOT NULL`); n != 0 {
		t.Fatalf("%d messages marked processed by the killed run", n)
	}
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out'`); n != 0 {
		t.Fatalf("the killed run left %d replies", n)
	}

	e.start(t, pipeline.Ack{Text: "ack"}) // the restart
	waitFor(t, "the replay", func() bool { return len(e.api.Sent()) == 1 && e.idle(t) })
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out'`); n != 1 {
		t.Fatalf("%d replies stored, want 1", n)
	}
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NOT NULL`); n != 1 {
		t.Fatalf("%d messages processed, want 1", n)
	}
}

func TestStatuses_NeverMoveBackwards(t *testing.T) {
	e := newEnv(t)
	e.start(t, pipeline.Ack{Text: "ack"})
	if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reply", func() bool { return len(e.api.Sent()) == 1 && e.idle(t) })
	sid := e.api.Sent()[0].SID
	p := e.pipeline(t, nil)
	apply := func(st models.MessageStatus, code string) {
		t.Helper()
		if err := p.ApplyStatuses(context.Background(), []channel.Status{{Provider: channel.Twilio, ProviderMessageID: sid, Status: st, ErrorCode: code}}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		apply    models.MessageStatus
		code     string
		want     string
		wantCode string
	}{
		{models.StatusDelivered, "", "delivered", ""},
		{models.StatusSent, "", "delivered", ""}, // late
		{models.StatusQueued, "", "delivered", ""},
		{models.StatusRead, "", "read", ""},
		{models.StatusDelivered, "", "read", ""},
		{models.StatusFailed, "30008", "failed", "30008"},
		{models.StatusRead, "", "failed", "30008"},
	}
	for i, s := range steps {
		apply(s.apply, s.code)
		status, code, _ := e.outbound(t)
		if status != s.want || code != s.wantCode {
			t.Fatalf("step %d (%s): status %q code %q, want %q %q", i, s.apply, status, code, s.want, s.wantCode)
		}
	}
	// A status for a message Parley never sent changes nothing.
	if err := p.ApplyStatuses(context.Background(), []channel.Status{{Provider: channel.Twilio, ProviderMessageID: "SMunknown", Status: models.StatusDelivered}}); err != nil {
		t.Fatal(err)
	}
}

func TestMedia_FetchedWithCredentialsCappedAndSealed(t *testing.T) {
	photo, err := os.ReadFile("testdata/appointment-card.jpg")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	good := e.api.AddMedia("card.jpg", photo)
	huge := e.api.AddMedia("huge.jpg", make([]byte, 2<<20))
	p, err := pipeline.New(pipeline.Deps{
		DB: e.db, Crypto: e.crypto, Responder: pipeline.Ack{},
		Senders: map[string]channel.Sender{channel.Twilio: e.twilio}, Fetchers: map[string]channel.MediaFetcher{channel.Twilio: e.twilio},
		Config: pipeline.Config{MediaMaxBytes: 1 << 20, FetchInterval: 100_000_000},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := sms("MM1", "whatsapp:+919876543210", "my card")
	in.Media = []channel.Media{{Ref: good, ContentType: "image/jpeg"}, {Ref: huge, ContentType: "image/jpeg"}, {Ref: e.api.URL + "/media/missing.jpg", ContentType: "image/jpeg"}}
	if _, err := p.Ingest(context.Background(), []channel.Inbound{in}); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	waitFor(t, "the media jobs", func() bool { return e.idle(t) })

	rows, err := e.db.Pool.Query(context.Background(), `SELECT position, size, error, data_enc IS NOT NULL FROM media ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type row struct {
		pos     int
		size    *int64
		errText string
		has     bool
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.pos, &r.size, &r.errText, &r.has); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 3 || !got[0].has || *got[0].size != int64(len(photo)) || got[1].has || got[1].errText == "" || got[2].has || got[2].errText == "" {
		t.Fatalf("media rows = %+v; want the card stored, the huge one refused, the missing one failed", got)
	}
	var ct []byte
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT data_enc FROM media WHERE position = 0`).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	if len(ct) < len(photo) || string(ct[len(ct)-100:]) == string(photo[len(photo)-100:]) {
		t.Fatal("stored media is not sealed")
	}
}
