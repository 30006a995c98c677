// Package pgtest gives tests a real PostgreSQL: one throwaway cluster per
// test process, started from the local binaries on first use (or the server
// at PARLEY_TEST_DATABASE_URL), and a fresh, migrated database per test,
// cloned from a template so it takes milliseconds.
//
// A test package that uses it runs its tests through Main:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/pgcluster"
	"github.com/parley-chat/parley/internal/store"
)

var (
	once     sync.Once
	setupErr error
	server   struct {
		cluster  *pgcluster.Cluster
		tmpDir   string
		adminDSN string // a maintenance database on the server
		template string
	}
	counter atomic.Int64
)

// Main runs the package's tests, then the cleanups, and then stops the
// cluster, if one was started. It calls os.Exit.
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	teardown()
	os.Exit(code)
}

func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server.template = fmt.Sprintf("parley_tpl_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)

	if dsn := os.Getenv("PARLEY_TEST_DATABASE_URL"); dsn != "" {
		server.adminDSN = dsn
	} else {
		reapOrphans(ctx)
		dir, err := os.MkdirTemp("", "parley-pgtest-")
		if err != nil {
			return err
		}
		server.tmpDir = dir
		if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return err
		}
		c, err := pgcluster.New(filepath.Join(dir, "data"))
		if err != nil {
			return err
		}
		c.Throwaway, c.Options = true, os.Getenv("PARLEY_PG_OPTS")
		if err := c.Start(ctx); err != nil {
			return err
		}
		server.cluster = c
		server.adminDSN = c.DSN("postgres")
	}

	if err := adminExec(ctx, "CREATE DATABASE "+server.template); err != nil {
		return err
	}
	// MigrateUp closes its connections: a template with one open cannot
	// be cloned.
	_, err := store.MigrateUp(ctx, withDatabase(server.adminDSN, server.template))
	return err
}

// reapOrphans stops and removes the clusters of test processes that died
// without stopping theirs (killed by a timeout, say), so they do not pile up.
func reapOrphans(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "parley-pgtest-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || syscall.Kill(pid, 0) == nil {
			continue // its owner still runs
		}
		if c, err := pgcluster.New(filepath.Join(dir, "data")); err == nil {
			_ = c.Stop(ctx) // pg_ctl stop on a server it did not start
		}
		_ = os.RemoveAll(dir)
	}
}

func teardown() {
	if server.adminDSN == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if server.cluster != nil {
		_ = server.cluster.Stop(ctx)
		_ = os.RemoveAll(server.tmpDir)
		return
	}
	_ = adminExec(ctx, "DROP DATABASE IF EXISTS "+server.template+" WITH (FORCE)")
}

// DSN returns the connection string of a fresh database holding every
// migration. It is dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	once.Do(func() { setupErr = setup() })
	if setupErr != nil {
		t.Fatalf("pgtest: start PostgreSQL: %v", setupErr)
	}
	name := fmt.Sprintf("%s_t%d", server.template, counter.Add(1))
	ctx := context.Background()
	if err := adminExec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, server.template)); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		if err := adminExec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	return withDatabase(server.adminDSN, name)
}

// Open returns a *store.DB on a fresh database, closed when the test ends.
func Open(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), DSN(t), store.Options{})
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

func adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, server.adminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns dsn with its database name replaced by name.
func withDatabase(dsn, name string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		// A keyword/value DSN: a later dbname wins.
		return dsn + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}

// OpenDurable starts a cluster of its own with fsync on, as production
// runs, migrates a database on it and returns it; both go when the test
// ends. Benchmarks of durable commits use it: the shared test cluster runs
// with fsync off.
func OpenDurable(t testing.TB) *store.DB {
	t.Helper()
	ctx := context.Background()
	c, err := pgcluster.New(filepath.Join(t.TempDir(), "durable"))
	if err != nil {
		t.Fatal(err)
	}
	c.Options = os.Getenv("PARLEY_PG_OPTS")
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	if _, err := store.MigrateUp(ctx, c.DSN("postgres")); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, c.DSN("postgres"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// CommitCeiling measures single-row commits per second on db with this
// many concurrent writers: the yardstick benchmarks put their own rates
// beside, measured in the same run on the same machine.
func CommitCeiling(t testing.TB, db *store.DB, n, workers int) float64 {
	t.Helper()
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, body text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := db.Pool.Exec(ctx, `INSERT INTO bench_commit (body) VALUES ($1)`, "a message-sized body of text"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// Census counts the statements db's server runs from now on, when it was
// started with pg_stat_statements loaded (PARLEY_PG_OPTS="-c
// shared_preload_libraries=pg_stat_statements -c
// pg_stat_statements.track=all"); otherwise it does nothing. The function
// it returns logs the statements run most often since, per unit of work
// (n units), with the time they took, on standard error (a benchmark's
// log keeps ten lines).
func Census(t testing.TB, db *store.DB, n int) func() {
	t.Helper()
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return func() {}
	}
	if _, err := db.Pool.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		return func() {}
	}
	return func() {
		rows, err := db.Pool.Query(ctx, `SELECT calls, total_exec_time, left(regexp_replace(query, '\s+', ' ', 'g'), 110)
			FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC LIMIT 40`)
		if err != nil {
			t.Log(err)
			return
		}
		defer rows.Close()
		var b strings.Builder
		var all, ms float64
		for rows.Next() {
			var calls int64
			var exec float64
			var query string
			if err := rows.Scan(&calls, &exec, &query); err != nil {
				t.Log(err)
				return
			}
			all, ms = all+float64(calls), ms+exec
			fmt.Fprintf(&b, "%7.2f %7.3f ms  %s\n", float64(calls)/float64(n), exec/float64(n), query)
		}
		fmt.Fprintf(os.Stderr, "statements per unit (top 40: %.1f a unit, %.2f ms):\n%s", all/float64(n), ms/float64(n), b.String())
	}
}
