package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/pgtest"
)

// The profiler is served only on PARLEY_PPROF_ADDR, never on the service's
// public address, and not at all without it.
func TestRun_ServeProfilesOnlyOnItsOwnLoopbackListener(t *testing.T) {
	dsn := pgtest.DSN(t)
	t.Run("off", func(t *testing.T) {
		in := start(t, baseEnv(t, dsn), "serve")
		if code, body := get(t, in.base+"/debug/pprof/"); code == http.StatusOK && strings.Contains(body, "goroutine") {
			t.Fatalf("the service's address serves the profiler (%d)", code)
		}
	})
	t.Run("on", func(t *testing.T) {
		env := baseEnv(t, dsn)
		env["PARLEY_PPROF_ADDR"] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		in := start(t, env, "serve")
		if code, body := get(t, "http://"+env["PARLEY_PPROF_ADDR"]+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
			t.Fatalf("/debug/pprof/ on PARLEY_PPROF_ADDR = %d", code)
		}
		if code, body := get(t, "http://"+env["PARLEY_PPROF_ADDR"]+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
			t.Fatalf("a goroutine profile = %d", code)
		}
		if code, body := get(t, in.base+"/debug/pprof/"); code == http.StatusOK && strings.Contains(body, "goroutine") {
			t.Fatalf("the service's address serves the profiler too (%d)", code)
		}
	})
}
