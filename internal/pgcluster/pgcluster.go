// Package pgcluster runs a private PostgreSQL cluster from the local
// PostgreSQL binaries (initdb, pg_ctl): the embedded database of `parley dev`
// and of the test harness. It listens on loopback only, trusts local
// connections, and runs as the postgres user when started by root, because
// PostgreSQL refuses to run as root.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrNotInstalled means no PostgreSQL server binaries were found.
var ErrNotInstalled = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install them, e.g. `apt-get install postgresql` on Debian or Ubuntu, `brew install postgresql@15` on macOS")

// Superuser is the name of the cluster's superuser; it needs no password on
// loopback.
const Superuser = "postgres"

// Cluster is one PostgreSQL data directory and, while started, its server.
type Cluster struct {
	DataDir string
	Port    int
	// Throwaway turns off fsync: for test clusters whose data may be lost
	// in a machine crash.
	Throwaway bool
	// Options are more server options ("-c name=value ..."), appended to
	// the cluster's own.
	Options string

	bin     string // directory of initdb and pg_ctl
	runAs   *user.User
	running bool
}

// FindBinaries returns the directory holding initdb and pg_ctl: from PATH,
// else the newest /usr/lib/postgresql/*/bin.
func FindBinaries() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			// Follow links to the real bin folder, which holds the other
			// tools (pg_dump) too.
			if real, err := filepath.EvalSymlinks(p); err == nil {
				p = real
			}
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob(libGlob)
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&0o111 != 0
}

// New returns a cluster kept in dataDir, which need not exist yet.
func New(dataDir string) (*Cluster, error) {
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{DataDir: abs, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs an unprivileged user named postgres: create it (useradd --system postgres) or run as another user")
		}
		c.runAs = u
	}
	return c, nil
}

// Initialized reports whether the data directory holds a cluster.
func (c *Cluster) Initialized() bool {
	_, err := os.Stat(filepath.Join(c.DataDir, "PG_VERSION"))
	return err == nil
}

// Init creates the cluster unless it exists already.
func (c *Cluster) Init(ctx context.Context) error {
	if c.Initialized() {
		return nil
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return err
	}
	if err := c.own(c.DataDir); err != nil {
		return err
	}
	_, err := c.command(ctx, "initdb", "--pgdata", c.DataDir, "--username", Superuser,
		"--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync")
	return err
}

// Start starts the server on loopback: on Port when set (a restart keeps
// its port), else on a free port. It first stops a server left running on
// this data directory by an earlier, killed process.
func (c *Cluster) Start(ctx context.Context) error {
	if err := c.Init(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "postmaster.pid")); err == nil {
		_, _ = c.command(ctx, "pg_ctl", "stop", "-D", c.DataDir, "-m", "fast", "-w")
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := c.Port
		if port == 0 || attempt > 0 {
			var err error
			if port, err = freePort(); err != nil {
				return err
			}
		}
		opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200", port)
		if c.Throwaway {
			opts += " -c fsync=off -c full_page_writes=off"
		}
		if c.Options != "" {
			opts += " " + c.Options
		}
		_, err := c.command(ctx, "pg_ctl", "start", "-D", c.DataDir, "-w", "-t", "60",
			"-l", filepath.Join(c.DataDir, "server.log"), "-o", opts)
		if err == nil {
			c.Port, c.running = port, true
			return nil
		}
		lastErr = err
	}
	return lastErr
}

// Stop stops the server, letting it finish cleanly.
func (c *Cluster) Stop(ctx context.Context) error {
	if !c.running {
		if _, err := os.Stat(filepath.Join(c.DataDir, "postmaster.pid")); err != nil {
			return nil // not running
		}
	}
	_, err := c.command(ctx, "pg_ctl", "stop", "-D", c.DataDir, "-m", "fast", "-w")
	if err == nil {
		c.running = false
	}
	return err
}

// DSN returns a connection string for database db as the superuser.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, c.Port, db)
}

// own hands dir to the postgres user when running as root, and makes the
// folders above it traversable.
func (c *Cluster) own(dir string) error {
	if c.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.runAs.Uid)
	gid, _ := strconv.Atoi(c.runAs.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	for p := filepath.Dir(dir); p != "/"; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) (string, error) {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.runAs != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs.Username, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = os.TempDir()
	// Detach from our process group: a Ctrl-C in the terminal must reach
	// Parley, which then stops the server cleanly, not kill the server first.
	cmd.SysProcAttr = detached()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", name, err, lastLines(out.String(), 5))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// libGlob is where Debian and Ubuntu install the server binaries.
var libGlob = "/usr/lib/postgresql/*/bin"
