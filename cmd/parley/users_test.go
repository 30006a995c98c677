package main

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// withStdin runs fn with input as the commands' standard input.
func withStdin(t *testing.T, input string, fn func()) {
	t.Helper()
	old := stdin
	stdin = strings.NewReader(input)
	defer func() { stdin = old }()
	fn()
}

func TestUsers_CreateListChangeDeactivate(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	withStdin(t, "a long enough password\n", func() {
		if code, out, stderr := runCmd(t, env, "users", "create", "--email", "asha@example.org", "--role", "agent"); code != exitOK || !strings.Contains(out, "created asha@example.org (agent)") {
			t.Fatalf("create: %d %s %s", code, out, stderr)
		}
	})
	withStdin(t, "another long password\n", func() {
		if code, _, stderr := runCmd(t, env, "users", "create", "--email", "ASHA@example.org", "--role", "viewer"); code != exitFailure || !strings.Contains(stderr, "already exists") {
			t.Fatalf("the same email again: %d %s", code, stderr)
		}
	})
	withStdin(t, "short\n", func() {
		if code, _, stderr := runCmd(t, env, "users", "create", "--email", "b@example.org", "--role", "viewer"); code == exitOK || !strings.Contains(stderr, "at least 12 characters") {
			t.Fatalf("a short password: %d %s", code, stderr)
		}
	})
	if code, _, stderr := runCmd(t, env, "users", "set-role", "--email", "asha@example.org", "--role", "supervisor"); code != exitOK {
		t.Fatalf("set-role: %d %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, env, "users", "deactivate", "--email", "asha@example.org"); code != exitOK {
		t.Fatalf("deactivate: %d %s", code, stderr)
	}
	code, out, _ := runCmd(t, env, "users", "list")
	if code != exitOK || !regexp.MustCompile(`asha@example.org\s+supervisor\s+false`).MatchString(out) {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if code, _, stderr := runCmd(t, env, "users", "set-role", "--email", "asha@example.org", "--role", "owner"); code == exitOK || !strings.Contains(stderr, "not a role") {
		t.Fatalf("an unknown role: %d %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, env, "users", "set-role", "--role", "agent"); code != exitUsage || !strings.Contains(stderr, "email") {
		t.Fatalf("without --email: %d %s", code, stderr)
	}
	// Each change is audited, and the chain holds.
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var actions string
	if err := db.Pool.QueryRow(context.Background(), `SELECT string_agg(action, ',' ORDER BY seq) FROM audit_events`).Scan(&actions); err != nil {
		t.Fatal(err)
	}
	if actions != "staff.create,staff.role_change,staff.deactivate" {
		t.Fatalf("audited %q", actions)
	}
	if code, out, _ := runCmd(t, env, "audit", "verify"); code != exitOK || !strings.Contains(out, "3 entries") {
		t.Fatalf("audit verify: %d %s", code, out)
	}
}

func TestAuditVerify_NamesTheFirstBrokenLink(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	if code, out, stderr := runCmd(t, env, "audit", "verify"); code != exitOK || !strings.Contains(out, "intact: 0 entries") {
		t.Fatalf("empty log: %d %s %s", code, out, stderr)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := testConfig(t, env)
	c, err := newCrypto(cfg, newLogger(&strings.Builder{}, "error"))
	if err != nil {
		t.Fatal(err)
	}
	audit := store.NewAuditStore(db, c)
	for i := range 4 {
		if err := db.Gorm.Transaction(func(tx *gorm.DB) error {
			return audit.Append(ctx, tx, &models.AuditEvent{Action: "test", SubjectID: string(rune('a' + i))})
		}); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, _ := runCmd(t, env, "audit", "verify"); code != exitOK || !strings.Contains(out, "intact: 4 entries") {
		t.Fatalf("four entries: %d %s", code, out)
	}
	conn, _ := db.Pool.Acquire(ctx)
	defer conn.Release()
	_, _ = conn.Exec(ctx, `SET session_replication_role = replica`)
	if _, err := conn.Exec(ctx, `UPDATE audit_events SET action = 'edited' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, env, "audit", "verify"); code != exitFailure || !strings.Contains(stderr, "broken at entry 3") || !strings.Contains(stderr, "2 entries before it hold") {
		t.Fatalf("an edited entry: %d %s", code, stderr)
	}
}

// The first admin `parley dev` prints can sign in.
func TestDev_FirstAdminCanSignIn(t *testing.T) {
	env := map[string]string{"PARLEY_DATA_DIR": t.TempDir(), "PARLEY_ADDR": "127.0.0.1:" + itoa(freePort(t))}
	in := start(t, env, "dev")
	m := regexp.MustCompile(`email:\s+(\S+)\s+password:\s+(\S+)`).FindStringSubmatch(in.stderr.String())
	if m == nil {
		t.Fatalf("dev printed no first admin:\n%s", in.stderr)
	}
	resp, err := http.Post(in.base+"/auth/v1/token?grant_type=password", "application/json",
		strings.NewReader(`{"email":"`+m[1]+`","password":"`+m[2]+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("signing in with the printed credentials: %d", resp.StatusCode)
	}
	if strings.Contains(in.stdout.String(), m[2]) {
		t.Error("the password is in the log")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// testConfig loads env as the commands do.
func testConfig(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] }, config.Requirements{Database: true, Keys: true})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// In Supabase mode the same commands go through Supabase Auth's admin API.
func TestUsers_InSupabaseMode(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	env["PARLEY_AUTH_MODE"], env["SUPABASE_URL"], env["SUPABASE_ANON_KEY"] = "supabase", p.URL, authtest.AnonKey
	if code, _, stderr := runCmd(t, env, "users", "list"); code != exitFailure || !strings.Contains(stderr, "SUPABASE_SERVICE_ROLE_KEY") {
		t.Fatalf("without the service-role key: %d %s", code, stderr)
	}
	env["SUPABASE_SERVICE_ROLE_KEY"] = authtest.ServiceRoleKey
	withStdin(t, "kiran's password\n", func() {
		if code, _, stderr := runCmd(t, env, "users", "create", "--email", "kiran@example.org", "--role", "agent"); code != exitOK {
			t.Fatalf("create: %d %s", code, stderr)
		}
	})
	if code, _, stderr := runCmd(t, env, "users", "create", "--email", "lata@example.org", "--role", "viewer", "--invite"); code != exitOK {
		t.Fatalf("invite: %d %s", code, stderr)
	}
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	staff := store.NewStaffStore(db)
	kiran, _, err := staff.ByEmail(context.Background(), "kiran@example.org")
	if err != nil || p.AppRole(kiran.ID) != "agent" {
		t.Fatalf("kiran: %+v %v, app role %q", kiran, err, p.AppRole(kiran.ID))
	}
	if _, err := auth.NewGoTrue(p.URL, authtest.AnonKey, nil).SignIn(context.Background(), "kiran@example.org", "kiran's password"); err != nil {
		t.Fatalf("kiran signs in at Supabase: %v", err)
	}
	if code, _, stderr := runCmd(t, env, "users", "set-role", "--email", "kiran@example.org", "--role", "supervisor"); code != exitOK || p.AppRole(kiran.ID) != "supervisor" {
		t.Fatalf("set-role: %d %s, mirrored %q", code, stderr, p.AppRole(kiran.ID))
	}
	if code, _, stderr := runCmd(t, env, "users", "deactivate", "--email", "kiran@example.org"); code != exitOK || !p.Banned(kiran.ID) {
		t.Fatalf("deactivate: %d %s, banned %v", code, stderr, p.Banned(kiran.ID))
	}
}

// An operator keeps the head outside the database; verify against it
// notices a cut tail, which the chain alone cannot.
func TestAuditCheckpoint_VerifyFromItFindsACutTail(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	if code, _, stderr := runCmd(t, env, "audit", "checkpoint"); code == exitOK || !strings.Contains(stderr, "empty") {
		t.Fatalf("a checkpoint of an empty log: %d %s", code, stderr)
	}
	for _, who := range []string{"a@example.org", "b@example.org", "c@example.org"} {
		withStdin(t, "a long enough password\n", func() {
			if code, _, stderr := runCmd(t, env, "users", "create", "--email", who, "--role", "agent"); code != exitOK {
				t.Fatalf("create: %d %s", code, stderr)
			}
		})
	}
	code, out, stderr := runCmd(t, env, "audit", "checkpoint")
	cp := strings.TrimSpace(out)
	if code != exitOK || !regexp.MustCompile(`^3:[0-9a-f]{64}:0$`).MatchString(cp) {
		t.Fatalf("checkpoint: %d %q %s", code, out, stderr)
	}
	if code, out, stderr := runCmd(t, env, "audit", "verify", "--from-checkpoint", cp); code != exitOK || !strings.Contains(out, "intact: 3 entries, all keyed") {
		t.Fatalf("verify from an intact checkpoint: %d %s %s", code, out, stderr)
	}
	// A checkpoint the log does not match says so, and not that the
	// entries before some break hold: the chain itself is whole.
	other := cp[:2] + strings.Repeat("0", 64) + cp[66:]
	if code, _, stderr := runCmd(t, env, "audit", "verify", "--from-checkpoint", other); code != exitFailure ||
		!strings.Contains(stderr, "does not match the checkpoint") || strings.Contains(stderr, "before it hold") {
		t.Fatalf("verify from another MAC: %d %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, env, "audit", "verify", "--from-checkpoint", "3:nothex"); code != exitUsage {
		t.Fatalf("a malformed checkpoint: %d %s", code, stderr)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, _ := db.Pool.Acquire(ctx)
	defer conn.Release()
	_, _ = conn.Exec(ctx, `SET session_replication_role = replica`)
	if _, err := conn.Exec(ctx, `DELETE FROM audit_events WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCmd(t, env, "audit", "verify"); code != exitOK {
		t.Fatalf("plain verify of a cut tail: %d; a cut tail is expected to pass it", code)
	}
	if code, _, stderr := runCmd(t, env, "audit", "verify", "--from-checkpoint", cp); code != exitFailure || !strings.Contains(stderr, "before the checkpoint at 3") {
		t.Fatalf("verify from the checkpoint after a cut: %d %s", code, stderr)
	}
}

// A change made from the command line and its audit entry are one
// transaction: a refused entry leaves the member as they were.
func TestUsers_ChangesRollBackWhenTheirEntryFails(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	withStdin(t, "a long enough password\n", func() {
		if code, _, stderr := runCmd(t, env, "users", "create", "--email", "asha@example.org", "--role", "agent"); code != exitOK {
			t.Fatalf("create: %d %s", code, stderr)
		}
	})
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Pool.Exec(ctx, `CREATE FUNCTION refuse_test() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit refused for the test'; END; $$;
		CREATE TRIGGER refuse_test BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_test();`); err != nil {
		t.Fatal(err)
	}
	withStdin(t, "a long enough password\n", func() {
		if code, _, _ := runCmd(t, env, "users", "create", "--email", "ravi@example.org", "--role", "agent"); code == exitOK {
			t.Fatal("create succeeded with its entry refused")
		}
	})
	for _, args := range [][]string{{"set-role", "--email", "asha@example.org", "--role", "admin"}, {"deactivate", "--email", "asha@example.org"}} {
		if code, _, _ := runCmd(t, env, append([]string{"users"}, args...)...); code == exitOK {
			t.Fatalf("%v succeeded with its entry refused", args)
		}
	}
	staff := store.NewStaffStore(db)
	if _, _, err := staff.ByEmail(ctx, "ravi@example.org"); models.ErrorCode(err) != models.ENOTFOUND {
		t.Errorf("the member was created unaudited: %v", err)
	}
	if u, _, err := staff.ByEmail(ctx, "asha@example.org"); err != nil || u.Role != models.RoleAgent || !u.Active {
		t.Errorf("asha after refused changes: %+v, %v; want an active agent", u, err)
	}
}

// In Supabase mode a command whose audit entry cannot be written leaves
// Supabase as it was: the user made is deleted again, the role and the
// ban restored.
func TestUsers_InSupabaseModeUndoneWhenTheEntryFails(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	dsn := pgtest.DSN(t)
	env := baseEnv(t, dsn)
	env["PARLEY_AUTH_MODE"], env["SUPABASE_URL"], env["SUPABASE_ANON_KEY"] = "supabase", p.URL, authtest.AnonKey
	env["SUPABASE_SERVICE_ROLE_KEY"] = authtest.ServiceRoleKey
	withStdin(t, "kiran's password\n", func() {
		if code, _, stderr := runCmd(t, env, "users", "create", "--email", "kiran@example.org", "--role", "agent"); code != exitOK {
			t.Fatalf("create: %d %s", code, stderr)
		}
	})
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kiran, _, err := store.NewStaffStore(db).ByEmail(context.Background(), "kiran@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(context.Background(), `CREATE FUNCTION refuse_test() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit refused for the test'; END; $$;
		CREATE TRIGGER refuse_test BEFORE INSERT ON audit_events FOR EACH ROW WHEN (NEW.action LIKE 'staff.%') EXECUTE FUNCTION refuse_test();`); err != nil {
		t.Fatal(err)
	}
	withStdin(t, "lata's password\n", func() {
		if code, _, _ := runCmd(t, env, "users", "create", "--email", "lata@example.org", "--role", "agent"); code == exitOK {
			t.Error("create went through with its entry refused")
		}
	})
	if code, _, _ := runCmd(t, env, "users", "set-role", "--email", "kiran@example.org", "--role", "supervisor"); code == exitOK {
		t.Error("set-role went through with its entry refused")
	}
	if code, _, _ := runCmd(t, env, "users", "deactivate", "--email", "kiran@example.org"); code == exitOK {
		t.Error("deactivate went through with its entry refused")
	}
	if p.HasEmail("lata@example.org") || p.AppRole(kiran.ID) != "agent" || p.Banned(kiran.ID) {
		t.Fatalf("Supabase after refused commands: lata there %v, kiran's role %q, banned %v; want none, agent, not banned",
			p.HasEmail("lata@example.org"), p.AppRole(kiran.ID), p.Banned(kiran.ID))
	}
}
