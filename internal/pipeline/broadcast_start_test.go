package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// A broadcast that starts the reminder flow on WhatsApp, from a CSV with
// each person's doctor and time: someone who wrote lately is inside the
// 24-hour window and gets the flow's own words; someone who never wrote
// gets the opening template, filled with their variables, and answering
// it goes on in the flow; someone who opted out or is already in a
// conversation is left out at the plan (and would be when their turn came).
// Sent again, it starts the flow afresh for the one whose conversation
// ended (in the flow's words: their answer opened the window), and leaves
// out the two still in theirs.
func TestBroadcast_StartsAFlow(t *testing.T) {
	e, p, rec := startEnv(t)
	ctx := context.Background()
	const (
		lately  = "+919800000001"
		never   = "+919800000002"
		stopped = "+919800000003"
		busy    = "+919800000004"
	)
	if _, err := p.Ingest(ctx, []channel.Inbound{{Provider: channel.Twilio, ProviderMessageID: "SMlately", From: "whatsapp:" + lately, To: "whatsapp:+15005550006", Body: "hi"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first conversation", func() bool { return e.idle(t) })
	contacts := store.NewContactStore(e.db, e.crypto)
	c, _, err := contacts.FindOrCreate(ctx, "whatsapp:"+lately)
	if err != nil {
		t.Fatal(err)
	}
	var conv int64
	if err := e.db.Pool.QueryRow(ctx, `SELECT id FROM conversations WHERE contact_id = $1`, c.ID).Scan(&conv); err != nil {
		t.Fatal(err)
	}
	if err := p.Override(ctx, supervisor, conv, engine.Override{Kind: engine.OverrideEnd}); err != nil {
		t.Fatal(err)
	}
	o, _, err := contacts.FindOrCreate(ctx, "whatsapp:"+stopped)
	if err != nil {
		t.Fatal(err)
	}
	if err := contacts.SetOptedOut(ctx, nil, o.ID, true); err != nil {
		t.Fatal(err)
	}
	opening := &models.TemplateRef{Name: "appointment_reminder", Language: "en", Params: map[string]string{"1": "{{doctor}}", "2": "{{appointment_at}}"}}
	if _, _, err := p.StartConversation(ctx, supervisor, pipeline.StartByPhone{Phone: busy,
		StartRequest: pipeline.StartRequest{Flow: "reminder", Template: &models.TemplateRef{Name: "appointment_reminder", Language: "en",
			Params: map[string]string{"1": "Dr Rao", "2": "09:00"}}, Variables: map[string]string{"doctor": "Dr Rao", "appointment_at": "09:00"}}}, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the busy one's opening", func() bool { return e.idle(t) })
	csv := "phone,doctor,appointment_at\n" + lately + ",Dr Rao,10:00\n" + never + ",Dr Iyer,11:00\n" + stopped + ",Dr Rao,12:00\n" + busy + ",Dr Rao,13:00\n"

	broadcast := func(name string, inFlow int) *models.BroadcastProgress {
		t.Helper()
		plan, err := p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{Name: name, Channel: models.ChannelWhatsApp,
			Message: models.BroadcastMessage{FlowID: "reminder", Template: opening}, CSV: strings.NewReader(csv)})
		if err != nil {
			t.Fatal(err)
		}
		if pr := plan.Progress; pr.Reached != 3-inFlow || pr.ExcludedTotal() != 1+inFlow || pr.Excluded[models.ExcludedOptedOut] != 1 || pr.Excluded[models.ExcludedInFlow] != inFlow {
			t.Fatalf("%s planned %+v, want the opted-out one and %d in a conversation left out", name, pr, inFlow)
		}
		if err := p.ConfirmBroadcast(ctx, broadcaster, plan.Broadcast.ID); err != nil {
			t.Fatal(err)
		}
		var pr *models.BroadcastProgress
		waitLong(t, name+" to finish", func() bool {
			b, got, err := p.Broadcast(ctx, broadcaster, plan.Broadcast.ID)
			pr = got
			return err == nil && b.Status == models.BroadcastDone && got.Queued == 0 && e.idle(t)
		})
		return pr
	}
	to := func(number string, from int) []channel.Outbound {
		var out []channel.Outbound
		for _, m := range rec.sent()[from:] {
			if m.To == "whatsapp:"+number {
				out = append(out, m)
			}
		}
		return out
	}

	mark := len(rec.sent())
	pr := broadcast("Reminders", 1)
	if pr.Sent != 2 || pr.Excluded[models.ExcludedInFlow] != 1 {
		t.Fatalf("progress %+v, want 2 sent and the one in a conversation left out", pr)
	}
	got := to(lately, mark)
	if len(got) != 2 || got[0].Template != nil || got[0].Body != "Hello! Your appointment with Dr Rao is at 10:00." || got[1].Body != "Will you come? (yes/no)" {
		t.Fatalf("inside the window, the flow's words: %+v", got)
	}
	got = to(never, mark)
	if len(got) != 1 || got[0].Template == nil || got[0].Template.Name != "appointment_reminder" || got[0].Template.Params["1"] != "Dr Iyer" || got[0].Template.Params["2"] != "11:00" {
		t.Fatalf("outside the window, the opening template: %+v", got)
	}
	if got := to(busy, mark); len(got) != 0 {
		t.Fatalf("the one in a conversation was sent %+v", got)
	}
	var templated int
	for _, s := range e.api.Sent() {
		if s.To == "whatsapp:"+never && s.ContentSID != "" && s.Body == "Hello! Your appointment with Dr Iyer is at 11:00." {
			templated++
		}
	}
	if templated != 1 {
		t.Fatalf("Twilio took the template, filled, %d times", templated)
	}

	// The one who got the template answers; the flow goes on.
	mark = len(rec.sent())
	if _, err := p.Ingest(ctx, []channel.Inbound{{Provider: channel.Twilio, ProviderMessageID: "SMyes", From: "whatsapp:" + never, To: "whatsapp:+15005550006", Body: "yes"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the answer's reply", func() bool { return len(to(never, mark)) == 1 && e.idle(t) })
	if got := to(never, mark); got[0].Body != "Thank you!" {
		t.Fatalf("after yes: %+v", got)
	}

	mark = len(rec.sent())
	pr = broadcast("Reminders, again", 2)
	if pr.Sent != 1 || pr.Excluded[models.ExcludedInFlow] != 2 {
		t.Fatalf("sent again: %+v, want 1 sent and 2 in their conversations", pr)
	}
	if got := to(never, mark); len(got) != 2 || got[0].Template != nil || got[0].Body != "Hello! Your appointment with Dr Iyer is at 11:00." {
		t.Fatalf("the ended one, again (inside the window since their yes): %+v", got)
	}
	if n := len(to(lately, mark)) + len(to(busy, mark)); n != 0 {
		t.Fatalf("%d messages to those in their conversations", n)
	}
}

// Pausing a flow broadcast stops further starts and takes back nothing:
// each conversation it started keeps its opening, which goes out; resumed,
// it starts the rest, and everyone got exactly one opening.
func TestBroadcast_FlowPausedKeepsWhatItStarted(t *testing.T) {
	e := newEnv(t)
	e.addTemplates(t, map[string]string{"appointment_reminder": "Hello! Your appointment with {{1}} is at {{2}}."})
	f, err := engine.Parse("reminder.yaml", []byte(reminderFlow))
	if err != nil {
		t.Fatal(err)
	}
	p := e.startWith(t, pipeline.Deps{
		Responder: pipeline.NewFlows(engine.NewLibrary(f), e.db, e.crypto),
		Senders:   map[string]channel.Sender{channel.Twilio: e.twilio}, Templates: envRegistry{e}, TemplateSources: e.sources(),
		// Batches of two (rate × job timeout / 4), so that at the pause
		// some are queued and not begun; a batch has four times the time
		// it needs, as a loaded machine may want.
		Config: pipeline.Config{SendRate: 2, SendBurst: 1, JobTimeout: 4 * time.Second, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond},
	})
	ctx := context.Background()
	const people = 24
	var csv strings.Builder
	csv.WriteString("phone,doctor,appointment_at\n")
	for i := range people {
		fmt.Fprintf(&csv, "%s,Dr Rao,10:%02d\n", number(i), i)
	}
	plan, err := p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{Name: "Reminders", Channel: models.ChannelWhatsApp,
		Message: models.BroadcastMessage{FlowID: "reminder", Template: &models.TemplateRef{Name: "appointment_reminder", Language: "en",
			Params: map[string]string{"1": "{{doctor}}", "2": "{{appointment_at}}"}}}, CSV: strings.NewReader(csv.String())})
	if err != nil {
		t.Fatal(err)
	}
	id := plan.Broadcast.ID
	if err := p.ConfirmBroadcast(ctx, broadcaster, id); err != nil {
		t.Fatal(err)
	}
	// Paused with openings queued and not begun: those a pause would take
	// back from a template broadcast.
	waitLong(t, "openings sent and others queued", func() bool {
		return len(e.api.Sent()) >= 1 && e.count(t, `SELECT count(*) FROM messages WHERE status = 'queued'`) >= 2
	})
	if err := p.PauseBroadcast(ctx, broadcaster, id); err != nil {
		t.Fatal(err)
	}
	started := e.count(t, `SELECT count(*) FROM conversations`)
	waitLong(t, "the started ones' openings", func() bool { return sendsSettled(t, e.db) })
	if started >= people {
		t.Skipf("all %d started before the pause: nothing left to test", people)
	}
	if got := len(e.api.Sent()); got != started || e.count(t, `SELECT count(*) FROM conversations`) != started {
		t.Fatalf("paused with %d conversations started: Twilio took %d openings", started, got)
	}
	if n := e.count(t, `SELECT count(*) FROM broadcast_recipients WHERE status = 'pending'`); n != people-started {
		t.Fatalf("%d pending after the pause, want %d", n, people-started)
	}
	if err := p.ResumeBroadcast(ctx, broadcaster, id); err != nil {
		t.Fatal(err)
	}
	var pr *models.BroadcastProgress
	waitLong(t, "the broadcast to finish", func() bool {
		b, got, err := p.Broadcast(ctx, broadcaster, id)
		pr = got
		return err == nil && b.Status == models.BroadcastDone && got.Queued == 0 && sendsSettled(t, e.db)
	})
	each := map[string]int{}
	for _, s := range e.api.Sent() {
		each[s.To]++
	}
	if len(each) != people || pr.Sent != people {
		t.Fatalf("%d people got an opening, want %d (progress %+v)", len(each), people, pr)
	}
	for to, n := range each {
		if n != 1 {
			t.Fatalf("%s got %d openings", to, n)
		}
	}
}

// A provider that lists no templates into the registry (Siren, Meta
// without a business account ID) is not asked about them: its broadcast
// reaches its audience, the platform judges the template.
func TestBroadcast_ProviderWithoutTemplateListing(t *testing.T) {
	e := newEnv(t)
	e.addTemplates(t, visitReminder)
	p := e.startWith(t, pipeline.Deps{
		Senders:   map[string]channel.Sender{channel.Twilio: e.twilio},
		Templates: envRegistry{e}, // no TemplateSources: Twilio here lists nothing
		Config:    pipeline.Config{SendRate: 100, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond},
	})
	plan, err := p.PlanBroadcast(context.Background(), broadcaster, pipeline.BroadcastRequest{Name: "SMS", Channel: models.ChannelWhatsApp,
		Message: models.BroadcastMessage{Template: &models.TemplateRef{Name: "not_in_the_registry", Language: "en"}},
		CSV:     strings.NewReader("phone\n+919800000001\n+919800000002\n")})
	if err != nil {
		t.Fatal(err)
	}
	if pr := plan.Progress; pr.Reached != 2 || pr.ExcludedTotal() != 0 {
		t.Fatalf("plan %+v, want both reached", pr)
	}
}

// An audience is a CSV or a filter: an empty CSV, a CSV audience without
// one, or both at once are refused, never taken for "everyone".
func TestBroadcast_AudienceIsACSVOrAFilter(t *testing.T) {
	_, p := broadcastEnv(t, 100)
	ctx := context.Background()
	if _, err := p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{Name: "Everyone?", Channel: models.ChannelWhatsApp,
		Message: models.BroadcastMessage{Template: &models.TemplateRef{Name: "visit_reminder", Language: "en", Params: map[string]string{"1": "friend"}}}}); err != nil {
		t.Fatalf("a filter naming nothing (everyone on the channel): %v", err)
	}
	for name, req := range map[string]pipeline.BroadcastRequest{
		"an empty CSV":                 {CSV: strings.NewReader("")},
		"a CSV audience without a CSV": {Audience: models.Audience{CSV: true}},
		"a CSV and a filter":           {CSV: strings.NewReader("phone\n+919800000001\n"), Audience: models.Audience{FlowID: "clinic"}},
	} {
		req.Name, req.Channel = name, models.ChannelWhatsApp
		req.Message = models.BroadcastMessage{Template: &models.TemplateRef{Name: "visit_reminder", Language: "en", Params: map[string]string{"1": "friend"}}}
		if _, err := p.PlanBroadcast(ctx, broadcaster, req); models.ErrorCode(err) != models.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}

// A provider asked for by name must send the channel and be configured,
// and the refusal names it.
func TestBroadcast_ProviderAskedFor(t *testing.T) {
	_, p := broadcastEnv(t, 100)
	for provider, want := range map[string]string{"meta": `"meta" is not configured`, "simulator": `"simulator" does not send whatsapp`} {
		_, err := p.PlanBroadcast(context.Background(), broadcaster, pipeline.BroadcastRequest{Name: "x", Channel: models.ChannelWhatsApp, Provider: provider,
			Message: models.BroadcastMessage{Template: &models.TemplateRef{Name: "visit_reminder", Language: "en"}}})
		if models.ErrorCode(err) != models.EINVALID || !strings.Contains(models.ErrorMessage(err), want) {
			t.Errorf("provider %s: %v, want %q", provider, err, want)
		}
	}
}

// A start refused by a conflict none of its checks names (a unique key
// another writer took at that moment) is tried once more before its
// recipient is left out: one whose conversation conflicts once is started
// and sent its opening; one whose conflicts every time is left out as
// refused, once, and the third is started as if nothing happened.
func TestBroadcast_StartConflictTriedOnceMore(t *testing.T) {
	e, p, _ := startEnv(t)
	ctx := context.Background()
	numbers := []string{"+919800000011", "+919800000012", "+919800000013"}
	contacts := store.NewContactStore(e.db, e.crypto)
	ids := make([]int64, len(numbers))
	for i, n := range numbers {
		c, _, err := contacts.FindOrCreate(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = c.ID
	}
	// A sequence, as a savepoint's rollback takes back any row written.
	e.exec(t, `CREATE SEQUENCE conflict_once;
		CREATE FUNCTION conflict_test() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.contact_id = `+itoa(ids[1])+` OR (NEW.contact_id = `+itoa(ids[0])+` AND nextval('conflict_once') = 1) THEN
				RAISE unique_violation USING MESSAGE = 'taken by the test';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER conflict_test BEFORE INSERT ON conversations FOR EACH ROW EXECUTE FUNCTION conflict_test();`)
	csv := "phone,doctor,appointment_at\n" + numbers[0] + ",Dr Rao,10:00\n" + numbers[1] + ",Dr Rao,11:00\n" + numbers[2] + ",Dr Rao,12:00\n"
	plan, err := p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{Name: "Reminders", Channel: models.ChannelSMS,
		Message: models.BroadcastMessage{FlowID: "reminder"}, CSV: strings.NewReader(csv)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ConfirmBroadcast(ctx, broadcaster, plan.Broadcast.ID); err != nil {
		t.Fatal(err)
	}
	var pr *models.BroadcastProgress
	waitLong(t, "the broadcast to finish", func() bool {
		b, got, err := p.Broadcast(ctx, broadcaster, plan.Broadcast.ID)
		pr = got
		return err == nil && b.Status == models.BroadcastDone && got.Queued == 0 && e.idle(t)
	})
	if pr.Sent != 2 || pr.ExcludedTotal() != 1 || pr.Excluded[models.ExcludedRefused] != 1 {
		t.Fatalf("progress %+v, want 2 sent and the one that always conflicts left out as refused", pr)
	}
	got := map[string]int{}
	for _, s := range e.api.Sent() {
		got[s.To]++
	}
	if got[numbers[0]] != 2 || got[numbers[1]] != 0 || got[numbers[2]] != 2 {
		t.Fatalf("sent %v; want the opening and its question to the first and the third", got)
	}
	if n := e.count(t, `SELECT count(*) FROM broadcast_recipients WHERE contact_id = $1 AND status = 'excluded'`, ids[1]); n != 1 {
		t.Fatalf("the one that always conflicts: %d excluded rows", n)
	}
}
