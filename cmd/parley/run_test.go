package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/internal/pgcluster"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeTwilioEnv) != "" { // the end-to-end benchmark's Twilio
		os.Exit(serveFakeTwilio())
	}
	pgtest.Main(m, removeBuilt)
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// instance is one `parley` process run in-test through run().
type instance struct {
	base           string
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	exit           chan int
}

func baseEnv(t testing.TB, dsn string) map[string]string {
	t.Helper()
	return map[string]string{
		"DATABASE_URL":           dsn,
		"PARLEY_ADDR":            fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"PARLEY_ENCRYPTION_KEYS": newEncryptionKey(),
		"PARLEY_BLIND_INDEX_KEY": newSecret(),
		"PARLEY_SESSION_KEYS":    newSessionKeyPair(),
		"PARLEY_AUTH_MODE":       "local",
		"PARLEY_SHUTDOWN_GRACE":  "1s", // the tests stop many instances
	}
}

// start calls run with args and env, and waits until /healthz answers.
func start(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{
		base:   "http://" + env["PARLEY_ADDR"],
		stdout: &syncBuffer{}, stderr: &syncBuffer{},
		cancel: cancel, exit: make(chan int, 1),
	}
	getenv := func(k string) string { return env[k] }
	go func() { in.exit <- run(ctx, append([]string{"parley"}, args...), getenv, in.stdout, in.stderr) }()
	t.Cleanup(func() { in.stop(t) })

	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case code := <-in.exit:
			in.exit <- code
			t.Fatalf("run exited with %d before serving; stderr:\n%s", code, in.stderr)
		default:
		}
		if resp, err := http.Get(in.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer 200 within a minute; stderr:\n%s", in.stderr)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// stop cancels the run (as SIGTERM would) and returns its exit code.
func (in *instance) stop(t *testing.T) int {
	t.Helper()
	in.cancel()
	select {
	case code := <-in.exit:
		in.exit <- code
		return code
	case <-time.After(time.Minute):
		t.Fatal("run did not return within a minute of cancellation")
		return -1
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// metricValue returns the value of the sample with exactly these labels.
func metricValue(t *testing.T, metrics, name, labels string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`)
	m := re.FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no sample %s{%s} in /metrics", name, labels)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRun_ServeAnswersHealthReadinessAndCountsRequests(t *testing.T) {
	env := baseEnv(t, pgtest.DSN(t))
	env["PARLEY_METRICS_TOKEN"] = testMetricsToken
	in := start(t, env, "serve")

	// start saw one 200 from /healthz; make two more.
	for range 2 {
		if code, _ := get(t, in.base+"/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz = %d, want 200", code)
		}
	}
	if code, body := get(t, in.base+"/readyz"); code != http.StatusOK || !strings.Contains(body, `"ready"`) {
		t.Fatalf("/readyz = %d %s, want 200 ready", code, body)
	}
	if code, _ := get(t, in.base+"/no/such/page?phone=%2B919876543210"); code != http.StatusNotFound {
		t.Fatalf("unknown path = %d, want 404", code)
	}

	code, metrics := getMetrics(t, in.base, testMetricsToken)
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	if got := metricValue(t, metrics, "parley_http_requests_total", `method="GET",route="/healthz",status="200"`); got != 3 {
		t.Errorf("healthz requests counted = %v, want 3", got)
	}
	if got := metricValue(t, metrics, "parley_http_requests_total", `method="GET",route="/readyz",status="200"`); got != 1 {
		t.Errorf("readyz requests counted = %v, want 1", got)
	}
	if got := metricValue(t, metrics, "parley_http_requests_total", `method="GET",route="unmatched",status="404"`); got != 1 {
		t.Errorf("unmatched requests counted = %v, want 1", got)
	}
	if got := metricValue(t, metrics, "parley_http_request_duration_seconds_count", `method="GET",route="/healthz",status="200"`); got != 3 {
		t.Errorf("healthz latency observations = %v, want 3", got)
	}

	if code := in.stop(t); code != exitOK {
		t.Fatalf("exit code after shutdown = %d, want 0; stderr:\n%s", code, in.stderr)
	}
	logs := in.stdout.String()
	for _, want := range []string{`"msg":"http request"`, `"request_id":"`, `"route":"/readyz"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if strings.Contains(logs, "9876543210") || strings.Contains(logs, "/no/such/page") {
		t.Error("logs contain a request path or query; only route patterns may be logged")
	}
}

// Without PARLEY_AUTH_MODE, serve signs in through Supabase when
// SUPABASE_URL is set, and says so at start.
func TestRun_ServeWithoutAuthModeChoosesSupabaseWhenConfigured(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	env := baseEnv(t, pgtest.DSN(t))
	env["PARLEY_AUTH_MODE"], env["SUPABASE_URL"], env["SUPABASE_ANON_KEY"] = "", p.URL, authtest.AnonKey
	in := start(t, env, "serve")
	if !strings.Contains(in.stdout.String(), "staff sign-in: supabase (PARLEY_AUTH_MODE is unset and SUPABASE_URL is set)") {
		t.Fatalf("the start does not say which sign-in it chose:\n%s", in.stdout.String())
	}
	if code, body := get(t, in.base+"/auth/v1/.well-known/jwks.json"); code != http.StatusNotFound {
		t.Fatalf("the local provider's key set is served (%d %s): local sign-in is on", code, body)
	}
}

func TestRun_BadConfigurationExitsTwoNamingTheVariable(t *testing.T) {
	good := baseEnv(t, "postgres://u@127.0.0.1:1/x")
	with := func(k, v string) map[string]string {
		env := map[string]string{}
		for key, val := range good {
			env[key] = val
		}
		env[k] = v
		return env
	}
	withTwilio := func(env map[string]string) map[string]string {
		env["PARLEY_TWILIO_ACCOUNT_SID"], env["PARLEY_TWILIO_AUTH_TOKEN"] = "AC00000000000000000000000000000001", "token123"
		return env
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"serve without DATABASE_URL", []string{"serve"}, with("DATABASE_URL", ""), "DATABASE_URL is not set"},
		{"malformed DATABASE_URL", []string{"serve"}, with("DATABASE_URL", "postgres://u@h:notaport/x"), "DATABASE_URL is not a valid"},
		{"encryption key not base64", []string{"serve"}, with("PARLEY_ENCRYPTION_KEYS", "k1:not-base64!!"), "PARLEY_ENCRYPTION_KEYS entry 1"},
		{"encryption key too short", []string{"serve"}, with("PARLEY_ENCRYPTION_KEYS", "k1:c2hvcnQ="), "PARLEY_ENCRYPTION_KEYS entry 1 (key id \"k1\") is not base64 of exactly 32 bytes"},
		{"encryption key without id", []string{"serve"}, with("PARLEY_ENCRYPTION_KEYS", newSecret()), "PARLEY_ENCRYPTION_KEYS entry 1 has no valid key id"},
		{"missing blind index key", []string{"serve"}, with("PARLEY_BLIND_INDEX_KEY", ""), "PARLEY_BLIND_INDEX_KEY is not set"},
		{"bad listen address", []string{"serve"}, with("PARLEY_ADDR", "8080"), "PARLEY_ADDR is not a listen address"},
		{"bad public URL", []string{"serve"}, with("PARLEY_PUBLIC_URL", "parley.example.org"), "PARLEY_PUBLIC_URL is not an absolute http(s) URL"},
		{"Twilio without a public URL", []string{"serve"}, withTwilio(with("PARLEY_PUBLIC_URL", "")), "PARLEY_PUBLIC_URL is required when PARLEY_TWILIO_ACCOUNT_SID is set"},
		{"serve without PARLEY_AUTH_MODE", []string{"serve"}, with("PARLEY_AUTH_MODE", ""), "PARLEY_AUTH_MODE is not set"},
		{"migrate without DATABASE_URL", []string{"migrate", "up"}, with("DATABASE_URL", ""), "DATABASE_URL is not set"},
		{"unknown command", []string{"frobnicate"}, good, `unknown command "frobnicate"`},
		{"migrate without action", []string{"migrate"}, good, "migrate needs one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"parley"}, tt.args...), func(k string) string { return tt.env[k] }, &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.want)
			}
			if strings.Contains(stderr.String(), "goroutine") || strings.Contains(stderr.String(), "panic") {
				t.Errorf("stderr holds a stack trace: %s", stderr.String())
			}
			// Secrets never appear in the message.
			if v := tt.env["PARLEY_ENCRYPTION_KEYS"]; strings.Contains(stderr.String(), v) {
				t.Error("stderr repeats the key material")
			}
		})
	}
}

func TestRun_ReadyzFollowsTheDatabase(t *testing.T) {
	ctx := context.Background()
	cluster, err := pgcluster.New(filepath.Join(t.TempDir(), "pg"))
	if err != nil {
		t.Fatal(err)
	}
	cluster.Throwaway = true
	if err := cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	dsn := cluster.DSN("postgres")
	if err := migrateUp(ctx, dsn, newLogger(io.Discard, "error")); err != nil {
		t.Fatal(err)
	}
	in := start(t, baseEnv(t, dsn), "serve")

	if code, _ := get(t, in.base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with the database up = %d, want 200", code)
	}
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, in.base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "Database unreachable") {
		t.Fatalf("/readyz with the database stopped = %d %s, want 503 naming the database", code, body)
	}
	if code, _ := get(t, in.base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz with the database stopped = %d, want 200 (the process is up)", code)
	}
	if err := cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The pool reconnects on its next use; allow it a few tries.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := get(t, in.base+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after the database came back = %d %s, want 200", code, body)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

func TestRun_ReadyzReportsPendingMigrations(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := store.NewMigrator(db.SQL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Down(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()

	in := start(t, baseEnv(t, dsn), "serve")
	if code, body := get(t, in.base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "migrations pending") {
		t.Fatalf("/readyz with a migration rolled back = %d %s, want 503 naming migrations", code, body)
	}

	var out, errOut bytes.Buffer
	env := map[string]string{"DATABASE_URL": dsn}
	if code := run(ctx, []string{"parley", "migrate", "up"}, func(k string) string { return env[k] }, &out, &errOut); code != exitOK {
		t.Fatalf("migrate up = %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "applied 0") {
		t.Errorf("migrate up printed %q, want the applied file", out.String())
	}
	if code, _ := get(t, in.base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after migrate up = %d, want 200", code)
	}
	out.Reset()
	if code := run(ctx, []string{"parley", "migrate", "status"}, func(k string) string { return env[k] }, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "00001_core.sql") || !strings.Contains(out.String(), "applied") {
		t.Fatalf("migrate status = %d %q", code, out.String())
	}
}

func TestRun_DevStartsEmbeddedPostgresAndReusesItsData(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{
		"PARLEY_DATA_DIR": dataDir,
		"PARLEY_ADDR":     fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	first := start(t, env, "dev")
	if code, body := get(t, first.base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz under dev = %d %s", code, body)
	}
	if !strings.Contains(first.stderr.String(), "console at http://") {
		t.Errorf("dev did not print the console URL; stderr:\n%s", first.stderr)
	}
	// A second dev on the same folder is refused before it touches the
	// first one's database.
	again := map[string]string{"PARLEY_DATA_DIR": dataDir, "PARLEY_ADDR": fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	if code, _, stderr := runCmd(t, again, "dev"); code != exitFailure || !strings.Contains(stderr, "already running on "+dataDir) {
		t.Errorf("a second dev on the same folder: exit %d, stderr %q", code, stderr)
	}
	if code, body := get(t, first.base+"/readyz"); code != http.StatusOK {
		t.Fatalf("the first dev after the second was refused: /readyz = %d %s", code, body)
	}
	// The database URL is kept for the other commands.
	if env, err := os.ReadFile(filepath.Join(dataDir, "dev-database.env")); err != nil || !strings.Contains(string(env), "DATABASE_URL=postgres://") ||
		!strings.Contains(string(env), "PARLEY_DEFAULT_REGION=GB") {
		t.Errorf("dev-database.env: %q, %v", env, err)
	}
	keys, err := os.ReadFile(filepath.Join(dataDir, "dev-keys.env"))
	if err != nil {
		t.Fatal(err)
	}
	dsn := devDSN(t, first.stdout.String())
	writeMarker(t, dsn)
	if code := first.stop(t); code != exitOK {
		t.Fatalf("dev exit code = %d; stderr:\n%s", code, first.stderr)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "postgres", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("PostgreSQL still running after dev stopped (postmaster.pid: %v)", err)
	}

	env["PARLEY_ADDR"] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	second := start(t, env, "dev")
	keysAgain, _ := os.ReadFile(filepath.Join(dataDir, "dev-keys.env"))
	if !bytes.Equal(keys, keysAgain) {
		t.Error("second dev run made new development keys; it must keep them")
	}
	if !hasMarker(t, devDSN(t, second.stdout.String())) {
		t.Error("second dev run lost the data of the first")
	}
}

// devDSN finds the embedded cluster's port in dev's log and returns a DSN.
func devDSN(t *testing.T, logs string) string {
	t.Helper()
	m := regexp.MustCompile(`"database_port":(\d+)`).FindStringSubmatch(logs)
	if m == nil {
		t.Fatalf("dev did not log the embedded database port; logs:\n%s", logs)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%s/parley?sslmode=disable", m[1])
}

func writeMarker(t *testing.T, dsn string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO staff_users (email, role) VALUES ('marker@example.org', 'admin')`); err != nil {
		t.Fatal(err)
	}
}

func hasMarker(t *testing.T, dsn string) bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM staff_users WHERE email = 'marker@example.org'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// `parley migrate up` from two processes at once: one applies, the other
// waits on the advisory lock and finds nothing left; no migration runs
// twice.
func TestMigrate_TwoAtOnceApplyEachMigrationOnce(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := store.NewMigrator(db.SQL)
	if err != nil {
		t.Fatal(err)
	}
	for {
		file, err := m.Down(ctx)
		if err != nil || file == "" {
			break
		}
	}
	if current, _ := m.Current(ctx); current {
		t.Fatal("the database still holds migrations")
	}
	env := map[string]string{"DATABASE_URL": dsn}
	type result struct {
		code int
		out  string
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			var out, errOut bytes.Buffer
			code := run(ctx, []string{"parley", "migrate", "up"}, func(k string) string { return env[k] }, &out, &errOut)
			results <- result{code, out.String() + errOut.String()}
		}()
	}
	applied := 0
	for range 2 {
		r := <-results
		if r.code != exitOK {
			t.Fatalf("a concurrent migrate up = %d: %s", r.code, r.out)
		}
		applied += strings.Count(r.out, "applied 000") // a line per file applied
	}
	var rows, versions int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0 AND is_applied`).
		Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	if current, _ := m.Current(ctx); !current || rows != versions || applied != versions {
		t.Fatalf("current %v; %d version rows for %d versions; the two applied %d together", current, rows, versions, applied)
	}
}
