package pipeline_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/pipeline"
)

// A batch keeps its contacts' conversations in memory between their
// messages and writes them when it ends: each contact's messages still
// walk one conversation after another, as they would one by one. Here,
// in one commit, each of four contacts starts a conversation, ends it
// (under 18) and starts the next; the fourth first finds its old
// conversation expired, which closes before the new one opens.
func TestProcess_ABatchCarriesEachConversationThroughItsMessages(t *testing.T) {
	e := newEnv(t)
	p := e.flows(t, pipeline.Config{SendRate: 1000, SendBurst: 100})
	const n = 4
	number := func(c int) string { return fmt.Sprintf("+9198765%05d", c) }
	for i, text := range []string{"hello", "Asha"} {
		if _, err := p.Ingest(context.Background(), []channel.Inbound{sms(fmt.Sprintf("SMold-%d", i), number(n-1), text)}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the old conversation to move on", func() bool { return e.idle(t) })
	}
	if _, err := e.db.Pool.Exec(context.Background(), `UPDATE conversations SET updated_at = now() - interval '4 days'`); err != nil {
		t.Fatal(err)
	}
	before := len(e.api.Sent())
	var batch []channel.Inbound
	for c := range n {
		for i, text := range []string{"hello", "Asha", "12", "hi again"} {
			batch = append(batch, sms(fmt.Sprintf("SM%d-%d", c, i), number(c), text))
		}
	}
	if _, err := p.Ingest(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every reply to be sent", func() bool { return len(e.api.Sent()) == before+n*7 && e.idle(t) })

	want := append(append(append([]string{}, greeting...), "How old are you, Asha?", "A parent or guardian needs to book for you.", "Thank you, goodbye!"), greeting...)
	got := map[string][]string{}
	for _, s := range e.api.Sent()[before:] {
		got[s.To] = append(got[s.To], s.Body)
	}
	for c := range n {
		if fmt.Sprint(got[number(c)]) != fmt.Sprint(want) {
			t.Errorf("contact %d got %q, want %q", c, got[number(c)], want)
		}
	}
	if k := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'process_contacts'`); k != 1 {
		t.Fatalf("%d batch jobs, want the one", k)
	}
	if k := e.count(t, `SELECT count(*) FROM conversations WHERE status = 'ended' AND node = 'goodbye' AND variables_enc IS NOT NULL`); k != n {
		t.Errorf("%d conversations ended at goodbye, want %d", k, n)
	}
	if k := e.count(t, `SELECT count(*) FROM conversations WHERE status = 'active' AND node = 'ask_name'`); k != n {
		t.Errorf("%d conversations open at the first question, want %d", k, n)
	}
	if k := e.count(t, `SELECT count(*) FROM conversations c JOIN contacts k ON k.id = c.contact_id WHERE c.status = 'ended' AND c.error LIKE 'expired%'`); k != 1 {
		t.Errorf("%d expired conversations closed, want 1", k)
	}
	// Every reply names the conversation it was written in.
	if k := e.count(t, `SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id AND c.contact_id = m.contact_id
		WHERE m.direction = 'out'`); k != before+n*7 {
		t.Errorf("%d replies name their contact's conversation, want %d", k, before+n*7)
	}
}
