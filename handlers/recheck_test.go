package handlers_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/models"
)

// active reports whether staff member id is active.
func (s *consoleSite) active(t *testing.T, id string) bool {
	t.Helper()
	u, err := s.staff.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u.Active
}

// One member whose look-up fails at Supabase is skipped: the members
// after them are still checked, and those deleted there deactivated.
func TestRecheck_OneFailingMemberDoesNotStopTheRest(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	site := supabaseSite(t, p)
	ctx := t.Context()
	adminID, admin := supabaseMember(t, site, p, "admin@example.org", models.RoleAdmin)
	// The lowest id there is: the walk by id meets them first.
	const brokenID = "00000000-0000-4000-8000-000000000000"
	if _, err := site.staff.Create(ctx, brokenID, "broken@example.org", models.RoleAgent, ""); err != nil {
		t.Fatal(err)
	}
	p.Break(brokenID)
	supa := auth.NewGoTrue(p.URL, authtest.AnonKey, nil).Admin(authtest.ServiceRoleKey)
	var goneIDs []string
	for i := range 2 {
		id, _ := supabaseMember(t, site, p, fmt.Sprintf("gone%d@example.org", i), models.RoleAgent)
		if err := supa.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		goneIDs = append(goneIDs, id)
	}
	if n, err := site.pipe.Recheck(ctx); err != nil || n != 2 {
		t.Fatalf("re-check with one member's look-up failing: %d deactivated, %v; want 2, no error", n, err)
	}
	for _, id := range goneIDs {
		if site.active(t, id) {
			t.Error("a member deleted at Supabase, after the failing one, is still active")
		}
	}
	if !site.active(t, brokenID) || !site.active(t, adminID) || !admin.signedIn(t) {
		t.Error("the member whose look-up failed, or the admin, lost access")
	}
}

// A wrong configuration cannot empty the staff: the last active admin is
// never deactivated, and more than MaxRemovedPerRun members found gone at
// once changes nobody.
func TestRecheck_NeverTheLastAdminNorTooMany(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	site := supabaseSite(t, p)
	ctx := t.Context()
	supa := auth.NewGoTrue(p.URL, authtest.AnonKey, nil).Admin(authtest.ServiceRoleKey)
	adminID, _ := supabaseMember(t, site, p, "admin@example.org", models.RoleAdmin)
	if err := supa.Delete(ctx, adminID); err != nil {
		t.Fatal(err)
	}
	if n, err := site.pipe.Recheck(ctx); err != nil || n != 0 || !site.active(t, adminID) {
		t.Fatalf("re-check with the only admin deleted at Supabase: %d deactivated, %v, admin active %v; want 0, kept",
			n, err, site.active(t, adminID))
	}

	var ids []string
	for i := range 4 {
		id, _ := supabaseMember(t, site, p, fmt.Sprintf("agent%d@example.org", i), models.RoleAgent)
		if err := supa.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if n, err := site.pipe.Recheck(ctx); models.ErrorCode(err) != models.ECONFLICT || n != 0 {
		t.Fatalf("re-check with 5 members gone at Supabase: %d deactivated, %v; want 0, conflict", n, err)
	}
	for _, id := range ids {
		if !site.active(t, id) {
			t.Fatal("a run that found too many members gone deactivated some")
		}
	}
}

// Look-ups failing three in a row stop the walk as an outage; the next
// run resumes after them, so members whose look-ups keep failing do not
// keep those after them from ever being checked.
func TestRecheck_ResumesAfterWhereTheLastRunStopped(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	site := supabaseSite(t, p)
	ctx := t.Context()
	supabaseMember(t, site, p, "admin@example.org", models.RoleAdmin)
	for i := 1; i <= 3; i++ { // the lowest ids: met first
		id := fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i)
		if _, err := site.staff.Create(ctx, id, fmt.Sprintf("broken%d@example.org", i), models.RoleAgent, ""); err != nil {
			t.Fatal(err)
		}
		p.Break(id)
	}
	goneID, _ := supabaseMember(t, site, p, "gone@example.org", models.RoleAgent)
	if err := auth.NewGoTrue(p.URL, authtest.AnonKey, nil).Admin(authtest.ServiceRoleKey).Delete(ctx, goneID); err != nil {
		t.Fatal(err)
	}
	if n, err := site.pipe.Recheck(ctx); models.ErrorCode(err) != models.EUNAVAILABLE || n != 0 {
		t.Fatalf("first run, three failing look-ups in a row: %d, %v; want 0, unavailable", n, err)
	}
	// It meets the failing ones again at the end of its round, and stops there.
	if n, err := site.pipe.Recheck(ctx); n != 1 || site.active(t, goneID) {
		t.Fatalf("second run: %d deactivated, %v; want the member after the failing ones deactivated", n, err)
	}
}
