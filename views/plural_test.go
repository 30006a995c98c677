package views

import (
	"context"
	"strings"
	"testing"
)

// The inbox's headline counts read as English: one active conversation,
// two active conversations.
func TestInbox_CountsInTheSingularAndThePlural(t *testing.T) {
	for n, want := range map[int64]string{1: ">1</span> <span class=\"text-slate-600\">active conversation</span>", 2: ">2</span> <span class=\"text-slate-600\">active conversations</span>"} {
		var b strings.Builder
		if err := Inbox(InboxProps{Staff: &StaffBadge{}, Counts: &InboxCounts{Active: n}}).Render(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("%d active: no %q", n, want)
		}
	}
}
