package accounts_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/parley-chat/parley/internal/accounts"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is the service in Supabase mode over a real database and a fake
// Supabase Auth speaking its admin API.
type fixture struct {
	db  *store.DB
	sb  *authtest.Project
	svc *accounts.Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ring, err := crypt.NewKeyRing([]crypt.Key{{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ix, _ := crypt.NewIndexer(bytes.Repeat([]byte{2}, 32))
	db := pgtest.Open(t)
	sb := authtest.NewProject()
	t.Cleanup(sb.Close)
	c := store.Crypto{Ring: ring, Index: ix, Phones: phone.New("GB")}
	svc := &accounts.Service{Staff: store.NewStaffStore(db), Audit: store.NewAuditStore(db, c),
		Remote: auth.NewGoTrue(sb.URL, authtest.AnonKey, nil).Admin(authtest.ServiceRoleKey)}
	return &fixture{db: db, sb: sb, svc: svc}
}

func (f *fixture) entries(t *testing.T) string {
	t.Helper()
	var s string
	if err := f.db.Pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(action || ':' || coalesce(actor_role, '-'), ',' ORDER BY seq), '')
		FROM audit_events WHERE subject_type = 'staff'`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// One member's life in Supabase mode: added (by invitation), promoted,
// deactivated and back, each change mirrored at Supabase and audited by
// who made it; the changes nobody may make are refused before Supabase is
// touched.
func TestService_ChangesAreMirroredAtSupabaseAndAudited(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin, err := f.svc.Create(ctx, models.Actor{}, accounts.NewMember{Email: "root@example.org", Role: models.RoleAdmin, Password: "a long password"})
	if err != nil {
		t.Fatal(err)
	}
	actor := models.Actor{ID: admin.ID, Role: models.RoleAdmin, RequestID: "req-1"}
	kiran, err := f.svc.Create(ctx, actor, accounts.NewMember{Email: "kiran@example.org", Role: models.RoleAgent})
	if err != nil || !f.sb.HasUser(kiran.ID) || f.sb.AppRole(kiran.ID) != "agent" {
		t.Fatalf("invited: %+v %v", kiran, err)
	}
	if _, err := f.svc.Create(ctx, actor, accounts.NewMember{Email: "kiran@example.org", Role: models.RoleAdmin, UserID: kiran.ID}); models.ErrorCode(err) != models.ECONFLICT ||
		f.sb.AppRole(kiran.ID) != "agent" {
		t.Fatalf("giving a member access again: %v, role there %q (must stay agent)", err, f.sb.AppRole(kiran.ID))
	}
	if _, err := f.svc.Create(ctx, actor, accounts.NewMember{Email: "x@example.org", Role: "owner"}); models.ErrorCode(err) != models.EINVALID {
		t.Fatalf("a role that is not one: %v", err)
	}
	supervisor, off, on := models.RoleSupervisor, false, true
	if u, err := f.svc.Change(ctx, actor, kiran.ID, &supervisor, nil); err != nil || u.Role != supervisor || f.sb.AppRole(kiran.ID) != "supervisor" {
		t.Fatalf("promoted: %+v %v", u, err)
	}
	if u, err := f.svc.Change(ctx, actor, kiran.ID, nil, &off); err != nil || u.Active || !f.sb.Banned(kiran.ID) {
		t.Fatalf("deactivated: %+v %v", u, err)
	}
	if u, err := f.svc.Change(ctx, actor, kiran.ID, nil, &on); err != nil || !u.Active || f.sb.Banned(kiran.ID) {
		t.Fatalf("reactivated: %+v %v", u, err)
	}
	if _, err := f.svc.Change(ctx, actor, admin.ID, nil, &off); models.ErrorCode(err) != models.ECONFLICT || f.sb.Banned(admin.ID) {
		t.Fatalf("deactivating oneself: %v", err)
	}
	if err := f.svc.Delete(ctx, actor, kiran.ID); err != nil || f.sb.HasUser(kiran.ID) {
		t.Fatalf("deleted: %v", err)
	}
	want := "staff.create:,staff.create:admin,staff.role_change:admin,staff.deactivate:admin,staff.reactivate:admin,staff.delete:admin"
	if got := f.entries(t); got != want {
		t.Fatalf("entries:\n got %s\nwant %s", got, want)
	}
}

// A change whose entry cannot be written here is undone at Supabase: the
// role there is the one the member still has here, and nobody is left
// banned or made.
func TestService_ChangeAtSupabaseUndoneWhenTheChangeHereFails(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.svc.Via = "cli"
	kiran, err := f.svc.Create(ctx, models.Actor{}, accounts.NewMember{Email: "kiran@example.org", Role: models.RoleAgent, Password: "a long password"})
	if err != nil {
		t.Fatal(err)
	}
	var n string
	if err := f.db.Pool.QueryRow(ctx, `SELECT count(*)::text FROM audit_events WHERE action = 'staff.create'`).Scan(&n); err != nil || n != "1" {
		t.Fatalf("create entries: %s %v", n, err)
	}
	if _, err := f.db.Pool.Exec(ctx, `CREATE FUNCTION refuse_test() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit refused for the test'; END; $$;
		CREATE TRIGGER refuse_test BEFORE INSERT ON audit_events FOR EACH ROW WHEN (NEW.action LIKE 'staff.%') EXECUTE FUNCTION refuse_test();`); err != nil {
		t.Fatal(err)
	}
	admin, off := models.RoleAdmin, false
	if _, err := f.svc.Change(ctx, models.Actor{}, kiran.ID, &admin, nil); err == nil || f.sb.AppRole(kiran.ID) != "agent" {
		t.Fatalf("role change: %v, role there %q", err, f.sb.AppRole(kiran.ID))
	}
	if _, err := f.svc.Change(ctx, models.Actor{}, kiran.ID, nil, &off); err == nil || f.sb.Banned(kiran.ID) {
		t.Fatalf("deactivation: %v, banned there %v", err, f.sb.Banned(kiran.ID))
	}
	if _, err := f.svc.Create(ctx, models.Actor{}, accounts.NewMember{Email: "lata@example.org", Role: models.RoleAgent, Password: "a long password"}); err == nil ||
		f.sb.HasEmail("lata@example.org") {
		t.Fatalf("create: %v, made there %v", err, f.sb.HasEmail("lata@example.org"))
	}
}
