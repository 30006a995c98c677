package pipeline_test

import (
	"context"
	"strings"
	"testing"

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
// it goes on in the flow; someone who opted out is left out at the plan;
// someone already in a conversation is left out when their turn comes.
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

	broadcast := func(name string) *models.BroadcastProgress {
		t.Helper()
		plan, err := p.PlanBroadcast(ctx, broadcaster, pipeline.BroadcastRequest{Name: name, Channel: models.ChannelWhatsApp,
			Message: models.BroadcastMessage{FlowID: "reminder", Template: opening}, CSV: strings.NewReader(csv)})
		if err != nil {
			t.Fatal(err)
		}
		if pr := plan.Progress; pr.Reached != 3 || pr.ExcludedTotal() != 1 || pr.Excluded[models.ExcludedOptedOut] != 1 {
			t.Fatalf("%s planned %+v, want 3 reached and the opted-out one left out", name, pr)
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
	pr := broadcast("Reminders")
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
	pr = broadcast("Reminders, again")
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
