package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/pipeline"
)

// One commit of 129 new contacts queues their processing in the commit
// itself, a job for each 64 of them in arrival order, and every one of
// them is answered once.
func TestIngest_OneCommitQueuesAJobPerChunkOfContacts(t *testing.T) {
	e := newEnv(t)
	const n = 129
	msgs := make([]channel.Inbound, n)
	for i := range msgs {
		msgs[i] = sms(fmt.Sprintf("SMchunk%03d", i), fmt.Sprintf("+9198766%05d", i), "hi")
	}
	if stored, err := e.pipelineIngest(t, msgs...); err != nil || stored != n {
		t.Fatalf("Ingest = %d, %v; want %d stored", stored, err, n)
	}
	rows, err := e.db.Pool.Query(context.Background(), `SELECT kind, state::text,
		coalesce(jsonb_array_length(args->'contact_ids'), 1), coalesce(args->'contact_ids'->>0, args->>'contact_id')::bigint
		FROM river_job ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var firsts []int64
	for rows.Next() {
		var kind, state string
		var size int
		var first int64
		if err := rows.Scan(&kind, &state, &size, &first); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %d", kind, state, size))
		firsts = append(firsts, first)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"process_contacts available 64", "process_contacts available 64", "process_contacts available 1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("jobs queued: %q, want %q", got, want)
	}
	for j, first := range firsts {
		if from := e.count(t, `SELECT count(*) FROM messages WHERE contact_id = $1 AND provider_message_id = $2`,
			first, fmt.Sprintf("SMchunk%03d", 64*j)); from != 1 {
			t.Fatalf("job %d starts with contact %d, not the sender of message %d", j, first, 64*j)
		}
	}

	e.start(t, pipeline.Ack{Text: "Thanks, we got it."})
	waitFor(t, "every contact answered", func() bool { return len(e.api.Sent()) >= n && e.idle(t) })
	answered := map[string]int{}
	for _, s := range e.api.Sent() {
		answered[s.To]++
	}
	for _, m := range msgs {
		if answered[m.From] != 1 {
			t.Fatalf("%d replies to one contact, want 1", answered[m.From])
		}
	}
}

// A write refused after its statements ran (a contact's truncated index
// collides with another number's) stores and queues nothing, twice, and
// the webhooks after it are stored and answered: no connection went back
// to the pool inside the failed transaction.
func TestIngest_AWriteRefusedAfterItsStatementsLeavesNothingBehind(t *testing.T) {
	e := newEnv(t)
	p := e.start(t, pipeline.Ack{Text: "Thanks, we got it."})
	ctx := context.Background()
	if stored, err := p.Ingest(ctx, []channel.Inbound{sms("SMfirst", "+919876500001", "hi")}); err != nil || stored != 1 {
		t.Fatalf("Ingest = %d, %v", stored, err)
	}
	waitFor(t, "the first reply", func() bool { return len(e.api.Sent()) == 1 && e.idle(t) })
	// The first contact's row now carries the second number's index, as a
	// collision of the truncated index would.
	if _, err := e.db.Pool.Exec(ctx, `UPDATE contacts SET address_bidx = $1`, e.crypto.Index.Exact(crypt.DomainAddress, "+919876500002")); err != nil {
		t.Fatal(err)
	}
	jobs := e.count(t, `SELECT count(*) FROM river_job`)
	for try := range 2 {
		if _, err := p.Ingest(ctx, []channel.Inbound{sms("SMcollides", "+919876500002", "hi")}); err == nil {
			t.Fatalf("delivery %d of a message whose index collides was stored", try+1)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM messages WHERE provider_message_id = 'SMcollides'`); n != 0 {
		t.Fatalf("%d messages stored under another number's contact", n)
	}
	if n := e.count(t, `SELECT count(*) FROM river_job`); n != jobs {
		t.Fatalf("%d jobs queued by refused writes", n-jobs)
	}
	// River's own maintenance opens short transactions now and then: a
	// connection left in one by a refused write stays.
	waitFor(t, "no connection idle in a transaction", func() bool {
		return e.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`) == 0
	})
	for i := range 3 {
		from := fmt.Sprintf("+91987650010%d", i)
		if stored, err := p.Ingest(ctx, []channel.Inbound{sms(fmt.Sprintf("SMafter%d", i), from, "hi")}); err != nil || stored != 1 {
			t.Fatalf("webhook %d after the refused ones: %d, %v", i, stored, err)
		}
		waitFor(t, "its reply", func() bool { return len(e.api.Sent()) == 2+i && e.idle(t) })
		if to := e.api.Sent()[1+i].To; to != from {
			t.Fatalf("reply %d went to another number", i)
		}
	}
}

// The workers are woken by the jobs' notices, not their poll: with the
// poll an hour apart, webhooks one after the other are each answered. The
// second of a pair has its reply queued a few tens of milliseconds after
// the first's notice, which River's default spacing of notices (100 ms)
// left unsent, so that reply waited for the poll. A pair whose second
// reply came later than 80 ms after the first (a slow machine) did not
// test that, and another pair is tried.
func TestIngest_WakesTheWorkersWithoutTheirPoll(t *testing.T) {
	e := newEnv(t)
	p := e.startWith(t, pipeline.Deps{Responder: pipeline.Ack{Text: "Thanks, we got it."},
		Senders: map[string]channel.Sender{channel.Twilio: e.twilio},
		Config:  pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: time.Hour}})
	n := 0
	answer := func() time.Time {
		t.Helper()
		n++
		if stored, err := p.Ingest(context.Background(), []channel.Inbound{sms(fmt.Sprintf("SMwake%d", n), fmt.Sprintf("+9198765%05d", n), "hi")}); err != nil || stored != 1 {
			t.Fatalf("Ingest %d = %d, %v", n, stored, err)
		}
		waitFor(t, fmt.Sprintf("reply %d", n), func() bool { return len(e.api.Sent()) == n })
		return time.Now()
	}
	for range 5 {
		first := answer()
		// Past the spacing of notices Parley sets (10 ms) since the first
		// reply's: the precondition of the case, not a wait for anything.
		time.Sleep(20 * time.Millisecond)
		if answer().Sub(first) < 80*time.Millisecond {
			return
		}
	}
	t.Skip("no pair of replies came within 80 ms of each other: too slow a machine to show the notices' spacing")
}
