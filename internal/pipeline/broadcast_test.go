package pipeline_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// broadcaster plans and runs the tests' broadcasts: a supervisor known by
// role alone (no staff row, so the broadcast's created_by stays empty).
var broadcaster = models.Actor{Role: models.RoleSupervisor, RequestID: "test"}

// visitReminder is the approved template the tests' broadcasts send, in
// English only.
var visitReminder = map[string]string{"visit_reminder": "Dear {{1}}, see you Saturday."}

// broadcastEnv is a pipeline sending through the fake Twilio, with the
// registry holding visitReminder.
func broadcastEnv(t *testing.T, rate float64) (*env, *pipeline.Pipeline) {
	t.Helper()
	e := newEnv(t)
	e.addTemplates(t, visitReminder)
	p := e.startWith(t, pipeline.Deps{
		Senders:   map[string]channel.Sender{channel.Twilio: e.twilio},
		Templates: envRegistry{e},
		Config:    pipeline.Config{SendRate: rate, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond},
	})
	return e, p
}

// number is the i-th test number, as an Indian mobile in E.164.
func number(i int) string { return fmt.Sprintf("+9198%08d", i) }

// waitLong polls cond until it holds, for as long as a broadcast of
// thousands takes on a loaded machine.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendsSettled reports whether no send or broadcast job is left to run:
// what was queued has been sent, failed or taken back.
func sendsSettled(t *testing.T, db *store.DB) bool {
	var n int
	if err := db.Gorm.Raw(`SELECT count(*) FROM river_job WHERE kind IN ('send_batch', 'send_message', 'broadcast_drive')
		AND state IN ('available', 'running', 'scheduled', 'retryable', 'pending')`).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n == 0
}

// A broadcast of 10,000 contacts from a CSV: opted-out contacts, bad
// numbers and a repeated line are excluded with their reasons; paused, it
// sends nothing more (what was queued but not begun is taken back);
// resumed, it finishes with each included contact messaged exactly once.
func TestBroadcast_TenThousand_PauseResume_ExactlyOnce(t *testing.T) {
	e, p := broadcastEnv(t, 2000)
	ctx := context.Background()
	const total, optedOut = 10000, 500
	contacts := store.NewContactStore(e.db, e.crypto)
	for i := 0; i < optedOut; i++ {
		c, _, err := contacts.FindOrCreate(ctx, "whatsapp:"+number(i*20))
		if err != nil {
			t.Fatal(err)
		}
		if err := contacts.SetOptedOut(ctx, nil, c.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	var csv strings.Builder
	csv.WriteString("phone,name\n")
	for i := 0; i < total; i++ {
		fmt.Fprintf(&csv, "%s,Person %d\n", number(i), i)
	}
	csv.WriteString("not a number,Nobody\n")   // line total+2
	fmt.Fprintf(&csv, "%s,Again\n", number(1)) // line total+3: a repeat
	plan, err := p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{
		Name: "Flu clinic", Channel: models.ChannelWhatsApp,
		Message: models.BroadcastMessage{Template: &models.TemplateRef{Name: "visit_reminder", Language: "en", Params: map[string]string{"1": "{{name}}"}}},
		CSV:     strings.NewReader(csv.String()),
	})
	if err != nil {
		t.Fatal(err)
	}
	pr := plan.Progress
	if pr.Reached != total-optedOut || pr.Excluded[models.ExcludedOptedOut] != optedOut || pr.Excluded[models.ExcludedInvalidNumber] != 1 ||
		pr.Excluded[models.ExcludedDuplicate] != 1 || pr.Pending != total-optedOut {
		t.Fatalf("plan = %+v, want %d reached, %d opted out, 1 invalid, 1 duplicate", pr, total-optedOut, optedOut)
	}
	if len(plan.BadLines) != 1 || plan.BadLines[0].Line != total+2 {
		t.Fatalf("bad lines = %+v, want line %d", plan.BadLines, total+2)
	}
	if len(e.api.Sent()) != 0 {
		t.Fatal("a draft sent messages before it was confirmed")
	}
	id := plan.Broadcast.ID
	if err := p.ConfirmBroadcast(ctx, broadcaster, id); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "a fifth of the broadcast sent", func() bool { return len(e.api.Sent()) >= total/5 })
	if err := p.PauseBroadcast(ctx, broadcaster, id); err != nil {
		t.Fatal(err)
	}
	// Paused: the sends that had begun finish, and nothing else goes.
	var begun int
	if err := e.db.Gorm.Raw(`SELECT count(*) FROM broadcast_recipients r JOIN messages m ON m.id = r.message_id
		WHERE r.broadcast_id = ? AND m.status <> 'queued'`, id).Scan(&begun).Error; err != nil {
		t.Fatal(err)
	}
	waitLong(t, "the sends begun before the pause to finish", func() bool { return sendsSettled(t, e.db) })
	atPause := len(e.api.Sent())
	if atPause != begun {
		t.Fatalf("%d messages reached Twilio while paused; %d had begun when the pause came", atPause, begun)
	}
	_, pr, err = p.Broadcast(ctx, broadcaster, id)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Pending == 0 || pr.Queued != 0 || pr.Sent != atPause || atPause >= total-optedOut {
		t.Fatalf("paused: %+v with %d at Twilio; want some pending, none queued, every sent one at Twilio", pr, atPause)
	}
	if err := p.ResumeBroadcast(ctx, broadcaster, id); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "the broadcast to finish", func() bool {
		b, pr, err := p.Broadcast(ctx, broadcaster, id)
		return err == nil && b.Status == models.BroadcastDone && pr.Queued == 0 && pr.Pending == 0
	})
	got := map[string]int{}
	for _, s := range e.api.Sent() {
		got[strings.TrimPrefix(s.To, "whatsapp:")]++
	}
	for i := 0; i < total; i++ {
		want := 1
		if i%20 == 0 && i/20 < optedOut {
			want = 0
		}
		if got[number(i)] != want {
			t.Fatalf("contact %d got %d messages, want %d", i, got[number(i)], want)
		}
	}
	if len(got) != total-optedOut {
		t.Fatalf("Twilio was sent to %d numbers, want %d", len(got), total-optedOut)
	}
	b, pr, err := p.Broadcast(ctx, broadcaster, id)
	if err != nil || pr.Sent != total-optedOut || b.FinishedAt == nil {
		t.Fatalf("finished: %+v %+v, %v", b, pr, err)
	}
	var actions []string
	if err := e.db.Gorm.Raw(`SELECT action FROM audit_events WHERE subject_type = 'broadcast' AND action <> 'broadcast.read' ORDER BY seq`).Scan(&actions).Error; err != nil {
		t.Fatal(err)
	}
	if strings.Join(actions, ",") != "broadcast.create,broadcast.confirm,broadcast.pause,broadcast.resume,broadcast.done" {
		t.Fatalf("audited %v", actions)
	}
}

// A filtered audience: contacts on the channel whose latest conversation
// runs the flow, stands at the node and has the variable (compared after
// decryption, in any case); of those, one in a hand-off, one who opted out
// and one whose language has no approved template are excluded with the
// reason. A filter on the last message's time narrows it to who wrote.
func TestBroadcast_FilterAudience(t *testing.T) {
	e, p := broadcastEnv(t, 100)
	ctx := context.Background()
	contacts := store.NewContactStore(e.db, e.crypto)
	convs := store.NewConversationStore(e.db, e.crypto)
	type person struct {
		addr, flow, node string
		status           models.ConversationStatus
		city, language   string
		optedOut         bool
	}
	people := []person{
		{addr: "whatsapp:+919800000001", flow: "clinic", node: "ask_age", status: models.ConversationActive, city: "Pune"},  // reached
		{addr: "whatsapp:+919800000002", flow: "clinic", node: "ask_age", status: models.ConversationActive, city: "Delhi"}, // not the city
		{addr: "whatsapp:+919800000003", flow: "clinic", node: "ask_age", status: models.ConversationHandoff, city: "pune"}, // hand-off
		{addr: "whatsapp:+919800000004", flow: "clinic", node: "ask_age", status: models.ConversationEnded, city: "Pune"},   // ended
		{addr: "whatsapp:+919800000005", flow: "clinic", node: "ask_age", status: models.ConversationActive, city: "PUNE", optedOut: true},
		{addr: "whatsapp:+919800000006", flow: "clinic", node: "ask_age", status: models.ConversationActive, city: "Pune", language: "hi"},
		{addr: "whatsapp:+919800000007", flow: "triage", node: "ask_age", status: models.ConversationActive, city: "Pune"}, // another flow
		{addr: "+919800000008", flow: "clinic", node: "ask_age", status: models.ConversationActive, city: "Pune"},          // SMS
	}
	for _, pp := range people {
		c, _, err := contacts.FindOrCreate(ctx, pp.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := contacts.SetOptedOut(ctx, nil, c.ID, pp.optedOut); err != nil {
			t.Fatal(err)
		}
		if err := e.db.Gorm.Exec(`UPDATE contacts SET language = ? WHERE id = ?`, pp.language, c.ID).Error; err != nil {
			t.Fatal(err)
		}
		conv := &models.Conversation{ContactID: c.ID, FlowID: pp.flow, FlowVersion: "v1", Node: pp.node, Status: pp.status, Variables: map[string]string{"city": pp.city}}
		if err := convs.Save(ctx, nil, conv); err != nil {
			t.Fatal(err)
		}
	}
	filter := models.Audience{FlowID: "clinic", State: "ask_age", Vars: map[string]string{"city": "pune"}}
	plan, err := p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{Name: "Pune", Channel: models.ChannelWhatsApp,
		Message: models.BroadcastMessage{Template: &models.TemplateRef{Name: "visit_reminder", Language: "en"}}, Audience: filter})
	if err != nil {
		t.Fatal(err)
	}
	pr := plan.Progress
	want := map[string]int{models.ExcludedHandoff: 1, models.ExcludedOptedOut: 1, models.ExcludedNoTemplate: 1}
	if pr.Reached != 1 || len(pr.Excluded) != len(want) || pr.Excluded[models.ExcludedHandoff] != 1 || pr.Excluded[models.ExcludedOptedOut] != 1 || pr.Excluded[models.ExcludedNoTemplate] != 1 {
		t.Fatalf("plan = %+v, want 1 reached and excluded %v", pr, want)
	}
	// Without a variable the database picks them with one statement: the
	// other city too, the same three excluded.
	plan, err = p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{Name: "Clinic, at ask_age", Channel: models.ChannelWhatsApp,
		Message:  models.BroadcastMessage{Template: &models.TemplateRef{Name: "visit_reminder", Language: "en"}},
		Audience: models.Audience{FlowID: "clinic", State: "ask_age"}})
	if err != nil {
		t.Fatal(err)
	}
	if pr := plan.Progress; pr.Reached != 2 || len(pr.Excluded) != len(want) || pr.Excluded[models.ExcludedHandoff] != 1 || pr.Excluded[models.ExcludedOptedOut] != 1 ||
		pr.Excluded[models.ExcludedNoTemplate] != 1 {
		t.Fatalf("without variables: %+v, want 2 reached and excluded %v", pr, want)
	}
	// Only the first and the third wrote lately.
	for i, n := range []int{1, 3} {
		in := channel.Inbound{Provider: channel.Twilio, ProviderMessageID: fmt.Sprintf("SMrecent%d", i), From: people[n-1].addr, To: "+15005550006", Body: "hi"}
		if _, err := p.Ingest(ctx, []channel.Inbound{in}); err != nil {
			t.Fatal(err)
		}
	}
	since := time.Now().Add(-time.Hour)
	filter.LastMessageAfter = &since
	plan, err = p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{Name: "Pune, lately", Channel: models.ChannelWhatsApp,
		Message: models.BroadcastMessage{Template: &models.TemplateRef{Name: "visit_reminder", Language: "en"}}, Audience: filter})
	if err != nil {
		t.Fatal(err)
	}
	if pr := plan.Progress; pr.Reached != 1 || pr.ExcludedTotal() != 1 || pr.Excluded[models.ExcludedHandoff] != 1 {
		t.Fatalf("with the last message's time: %+v, want the one who wrote reached and the hand-off excluded", pr)
	}
}

// A recipient whose variables do not fill the template is left out with
// the reason; the others are sent the registry's text.
func TestBroadcast_OneBadRecipientDoesNotStopTheOthers(t *testing.T) {
	e := newEnv(t)
	e.addTemplates(t, visitReminder)
	p := e.startWith(t, pipeline.Deps{
		Senders:   map[string]channel.Sender{channel.Twilio: e.twilio},
		Templates: envRegistry{e},
		Config:    pipeline.Config{SendRate: 100, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond},
	})
	ctx := context.Background()
	plan, err := p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{Name: "Saturday", Channel: models.ChannelWhatsApp,
		Message: models.BroadcastMessage{Template: &models.TemplateRef{Name: "visit_reminder", Language: "en", Params: map[string]string{"1": "{{name}}"}}},
		CSV:     strings.NewReader("phone,name\n+919800000001,Asha\n+919800000002,\n+919800000003,Ravi\n")})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ConfirmBroadcast(ctx, broadcaster, plan.Broadcast.ID); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "the broadcast to finish", func() bool {
		b, pr, err := p.Broadcast(ctx, broadcaster, plan.Broadcast.ID)
		return err == nil && b.Status == models.BroadcastDone && pr.Queued == 0
	})
	_, pr, _ := p.Broadcast(ctx, broadcaster, plan.Broadcast.ID)
	if pr.Sent != 2 || pr.Excluded[models.ExcludedBadParams] != 1 {
		t.Fatalf("progress %+v, want 2 sent and 1 left out for its parameters", pr)
	}
	var bodies []string
	for _, s := range e.api.Sent() {
		bodies = append(bodies, s.Body)
	}
	sort.Strings(bodies)
	if strings.Join(bodies, "|") != "Dear Asha, see you Saturday.|Dear Ravi, see you Saturday." {
		t.Fatalf("Twilio took %q", bodies)
	}
}
