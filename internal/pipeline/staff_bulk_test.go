package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/models"
)

// A bulk resend counts, sends and reports on the days it was given, the
// last included, and nothing of the day after (the console's count of
// what was left once took a day more than the go itself); a second go
// sends nothing again; an opted-out contact's message is refused and
// stays, not counted as more to come.
func TestBulkResend_OneRangeCountedSentAndReportedAlike(t *testing.T) {
	e := newEnv(t)
	p := e.pipeline(t, nil)
	ctx := context.Background()
	if _, err := e.pipelineIngest(t, sms("SMa", "+919876543210", "hello"), sms("SMb", "+919876543211", "hi")); err != nil {
		t.Fatal(err)
	}
	day := func(d int) time.Time { return time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, d) }
	failed := func(number string, at time.Time) {
		t.Helper()
		if _, err := e.db.Pool.Exec(ctx, `INSERT INTO messages (id, contact_id, direction, channel, provider, status, error_code, created_at)
			SELECT nextval(pg_get_serial_sequence('messages', 'id')), contact_id, 'out', 'sms', 'twilio', 'failed', '20500', $2
			FROM messages WHERE provider_message_id = $1`, number, at); err != nil {
			t.Fatal(err)
		}
	}
	failed("SMa", day(-3).Add(time.Hour))
	failed("SMa", day(-3).Add(2*time.Hour))
	failed("SMb", day(-3).Add(3*time.Hour))
	failed("SMa", day(-2).Add(time.Hour)) // the day after the range
	if _, err := e.db.Pool.Exec(ctx, `UPDATE contacts SET opted_out_at = now() WHERE id = (SELECT contact_id FROM messages WHERE provider_message_id = 'SMb')`); err != nil {
		t.Fatal(err)
	}
	agent := models.Actor{Role: models.RoleAgent}

	dry, err := p.BulkResend(ctx, agent, day(-3), day(-2), true)
	if err != nil || dry.Found != 3 || len(dry.Resent) != 0 || dry.More || e.count(t, `SELECT count(*) FROM messages WHERE resend_of IS NOT NULL`) != 0 {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	r, err := p.BulkResend(ctx, agent, day(-3), day(-2), false)
	if err != nil || r.Found != 3 || len(r.Resent) != 2 || r.Refused != 1 || r.Left != 1 || r.More {
		t.Fatalf("first go: %+v %v (want 2 resent, 1 refused and left, nothing more)", r, err)
	}
	again, err := p.BulkResend(ctx, agent, day(-3), day(-2), false)
	if err != nil || len(again.Resent) != 0 || again.Found != 1 || again.Refused != 1 || again.More {
		t.Fatalf("second go: %+v %v", again, err)
	}
	if n := e.count(t, `SELECT count(*) FROM messages WHERE resend_of IS NOT NULL`); n != 2 {
		t.Fatalf("%d resends, want 2", n)
	}
	if n := e.count(t, `SELECT count(*) FROM audit_events WHERE action = 'messages.bulk_resend'`); n != 2 {
		t.Fatalf("%d bulk resend entries, want one a go (the dry run writes none)", n)
	}
	if _, err := p.BulkResend(ctx, agent, day(-2), day(-3), false); models.ErrorCode(err) != models.EINVALID {
		t.Fatalf("a range backwards: %v", err)
	}
	if _, err := p.BulkResend(ctx, agent, day(-2), time.Time{}, true); models.ErrorCode(err) != models.EINVALID {
		t.Fatalf("a range without its end: %v", err)
	}
}
