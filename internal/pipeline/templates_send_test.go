package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// templateReplier answers each message with one template reply.
type templateReplier struct{ ref *models.TemplateRef }

func (r templateReplier) Respond(context.Context, *gorm.DB, *models.Contact, *models.Message) (*pipeline.Outcome, error) {
	return &pipeline.Outcome{Replies: []string{"rendered"}, ReplyTemplates: []*models.TemplateRef{r.ref}}, nil
}

// Each refusal of a template send that matters is shown on the message,
// with its code and a reason a person can act on; a throughput refusal
// only slows the send, which then goes.
func TestSend_TemplateRefusalsShownOnTheMessage(t *testing.T) {
	ref := &models.TemplateRef{Name: "results_ready", Language: "en", Params: map[string]string{"1": "Asha"}}
	cases := []struct {
		mk     func(*testing.T, *store.TemplateStore) *platform
		code   int
		reason string
	}{
		{metaPlatform, 132000, "parameters do not match"},
		{metaPlatform, 132001, "no approved template"},
		{metaPlatform, 132015, "paused"},
		{metaPlatform, 132016, "disabled"},
		{metaPlatform, 131026, "not on WhatsApp"},
		{metaPlatform, 131047, "More than 24 hours"},
		{twilioPlatform, 63016, "More than 24 hours"},
		{twilioPlatform, 63003, "not on WhatsApp"},
		{twilioPlatform, 63027, "no approved template"},
		{twilioPlatform, 63028, "parameters do not match"},
		{metaPlatform, 130429, ""},
	}
	for i, tc := range cases {
		e := newEnv(t)
		reg := store.NewTemplateStore(e.db)
		pl := tc.mk(t, reg)
		t.Run(fmt.Sprintf("%s %d", pl.name, tc.code), func(t *testing.T) {
			if _, err := pipeline.SyncTemplates(context.Background(), reg, map[string]pipeline.TemplateSource{pl.name: pl.source}); err != nil {
				t.Fatal(err)
			}
			p := e.startWith(t, pipeline.Deps{Responder: templateReplier{ref}, Senders: map[string]channel.Sender{pl.name: pl.sender},
				Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 20 * time.Millisecond, RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}})
			pl.refuse(tc.code)
			if _, err := p.Ingest(context.Background(), []channel.Inbound{pl.inbound(fmt.Sprintf("in%d", i), "+919876543210", "hi")}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the send to settle", func() bool {
				return e.idle(t) && e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status IN ('sent', 'failed')`) == 1
			})
			var status, code, reason string
			if err := e.db.Pool.QueryRow(context.Background(), `SELECT status, error_code, error_reason FROM messages WHERE direction = 'out'`).Scan(&status, &code, &reason); err != nil {
				t.Fatal(err)
			}
			if tc.reason == "" {
				if status != "sent" || len(pl.sent()) != 1 {
					t.Fatalf("throttled send = %s (%s), sent %d; want it sent after slowing down", status, code, len(pl.sent()))
				}
				return
			}
			if status != "failed" || code != fmt.Sprint(tc.code) || !strings.Contains(reason, tc.reason) {
				t.Fatalf("message = %s, %s, %q; want failed, %d, %q", status, code, reason, tc.code, tc.reason)
			}
		})
	}
}

// failingSource is a platform whose template list cannot be read.
type failingSource struct{}

func (failingSource) Templates(context.Context) ([]models.Template, error) {
	return nil, fmt.Errorf("no answer")
}

// The periodic job syncs the registry when the pipeline starts; a
// platform that fails leaves its templates as they were (not gone) while
// the others sync.
func TestTemplateSync_PeriodicJobSyncsAndAFailingPlatformKeepsItsTemplates(t *testing.T) {
	e := newEnv(t)
	reg := store.NewTemplateStore(e.db)
	ctx := context.Background()
	kept := []models.Template{{PlatformID: "HX1", Name: "results_ready", Language: "en", Body: "x", Status: models.TemplateApproved}}
	if _, err := reg.Sync(ctx, channel.Twilio, kept, time.Now()); err != nil {
		t.Fatal(err)
	}
	pl := metaPlatform(t, reg)
	e.startWith(t, pipeline.Deps{Responder: pipeline.Ack{}, TemplateSources: map[string]pipeline.TemplateSource{channel.Meta: pl.source, channel.Twilio: failingSource{}},
		Config: pipeline.Config{FetchInterval: 20 * time.Millisecond}})
	waitFor(t, "the sync job", func() bool {
		return e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'templates_sync' AND state IN ('completed', 'retryable', 'discarded')`) > 0
	})
	if tpl, err := reg.Find(ctx, channel.Meta, "appointment_reminder", "en"); err != nil || tpl.Status != models.TemplateApproved {
		t.Fatalf("Meta's template after the job = %+v, %v", tpl, err)
	}
	if tpl, err := reg.Find(ctx, channel.Twilio, "results_ready", "en"); err != nil || tpl.Status != models.TemplateApproved {
		t.Fatalf("the failing platform's template = %+v, %v; want kept as it was", tpl, err)
	}
}

// A template Twilio took (201) and WhatsApp refused afterwards comes back
// in a status callback: the message shows the code and its reason.
func TestStatus_ALateTemplateRefusalIsShownWithItsReason(t *testing.T) {
	e := newEnv(t)
	reg := store.NewTemplateStore(e.db)
	pl := twilioPlatform(t, reg)
	if _, err := pipeline.SyncTemplates(context.Background(), reg, map[string]pipeline.TemplateSource{pl.name: pl.source}); err != nil {
		t.Fatal(err)
	}
	p := e.startWith(t, pipeline.Deps{Responder: templateReplier{&models.TemplateRef{Name: "results_ready", Language: "en", Params: map[string]string{"1": "Asha"}}},
		Senders: map[string]channel.Sender{pl.name: pl.sender}, Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 20 * time.Millisecond}})
	if _, err := p.Ingest(context.Background(), []channel.Inbound{pl.inbound("in1", "+919876543210", "hi")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the send", func() bool { return len(pl.sent()) == 1 && e.idle(t) })
	var sid string
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT provider_message_id FROM messages WHERE direction = 'out'`).Scan(&sid); err != nil {
		t.Fatal(err)
	}
	st, ok, err := twilio.ParseStatus(map[string]string{"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "63027"})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := p.ApplyStatuses(context.Background(), []channel.Status{st}); err != nil {
		t.Fatal(err)
	}
	var status, code, reason string
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT status, error_code, error_reason FROM messages WHERE direction = 'out'`).Scan(&status, &code, &reason); err != nil {
		t.Fatal(err)
	}
	if status != "failed" || code != "63027" || !strings.Contains(reason, "no approved template") {
		t.Fatalf("message = %s, %s, %q; want failed with 63027's reason", status, code, reason)
	}
}

// A template the registry knows is not approved, or filled with other
// parameters than it takes, is refused before the platform is called:
// the message shows why, and nothing reached Meta.
func TestSend_TemplateRefusedBeforeTheCallFromTheRegistry(t *testing.T) {
	for _, tc := range []struct {
		ref    *models.TemplateRef
		code   string
		reason string
	}{
		{&models.TemplateRef{Name: "paused_one", Language: "en", Params: map[string]string{"1": "Asha"}}, channel.CodeTemplateNotApproved, "paused by WhatsApp"},
		{&models.TemplateRef{Name: "results_ready", Language: "en", Params: map[string]string{"1": "Asha", "2": "CBC"}}, channel.CodeTemplateParams, "it has no {{2}}"},
	} {
		e := newEnv(t)
		reg := store.NewTemplateStore(e.db)
		pl := metaPlatform(t, reg)
		ctx := context.Background()
		list, err := pl.source.Templates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, models.Template{PlatformID: "9", Name: "paused_one", Language: "en", Body: "Hi {{1}}", Status: models.TemplatePaused})
		if _, err := reg.Sync(ctx, pl.name, list, time.Now()); err != nil {
			t.Fatal(err)
		}
		p := e.startWith(t, pipeline.Deps{Responder: templateReplier{tc.ref}, Senders: map[string]channel.Sender{pl.name: pl.sender},
			Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 20 * time.Millisecond}})
		if _, err := p.Ingest(ctx, []channel.Inbound{pl.inbound("in1", "+919876543210", "hi")}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the send to settle", func() bool {
			return e.idle(t) && e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'failed'`) == 1
		})
		var code, reason string
		if err := e.db.Pool.QueryRow(ctx, `SELECT error_code, error_reason FROM messages WHERE direction = 'out'`).Scan(&code, &reason); err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(reason, tc.reason) || strings.Contains(reason, "Asha") || len(pl.sent()) != 0 {
			t.Fatalf("%s: %s, %q, Meta got %d; want %s before any call", tc.ref.Name, code, reason, len(pl.sent()), tc.code)
		}
	}
}
