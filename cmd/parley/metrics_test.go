package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/pgtest"
)

// testMetricsToken guards /metrics in the tests that read it.
const testMetricsToken = "metrics-token-of-the-tests-0123456789abcdef"

// getMetrics reads base's /metrics with the given bearer token ("" sends
// none).
func getMetrics(t *testing.T, base, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(body)
}

// The service's address is public: `serve` shows its metrics there only
// to the bearer of PARLEY_METRICS_TOKEN, or on a listener of their own
// (PARLEY_METRICS_ADDR), and with neither not at all.
func TestRun_ServeGuardsMetrics(t *testing.T) {
	dsn := pgtest.DSN(t)
	const sample = "parley_http_requests_total"

	t.Run("neither", func(t *testing.T) {
		in := start(t, baseEnv(t, dsn), "serve")
		if code, _ := getMetrics(t, in.base, ""); code != http.StatusNotFound {
			t.Fatalf("/metrics with no guard configured = %d, want 404", code)
		}
		if !strings.Contains(in.stdout.String(), "metrics are not served: set PARLEY_METRICS_TOKEN") {
			t.Errorf("the start does not say metrics are off and how to turn them on:\n%s", in.stdout.String())
		}
	})
	t.Run("token", func(t *testing.T) {
		env := baseEnv(t, dsn)
		env["PARLEY_METRICS_TOKEN"] = testMetricsToken
		in := start(t, env, "serve")
		for _, token := range []string{"", "wrong-token-wrong-token-wrong-token-wrong"} {
			if code, body := getMetrics(t, in.base, token); code != http.StatusUnauthorized || strings.Contains(body, sample) {
				t.Fatalf("/metrics with token %q = %d, want 401 and no metrics", token, code)
			}
		}
		if code, body := getMetrics(t, in.base, testMetricsToken); code != http.StatusOK || !strings.Contains(body, sample) {
			t.Fatalf("/metrics with the token = %d", code)
		}
	})
	t.Run("own listener", func(t *testing.T) {
		env := baseEnv(t, dsn)
		env["PARLEY_METRICS_ADDR"] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		in := start(t, env, "serve")
		if code, _ := getMetrics(t, in.base, ""); code != http.StatusNotFound {
			t.Fatalf("/metrics on the service's address = %d, want 404", code)
		}
		if code, body := getMetrics(t, "http://"+env["PARLEY_METRICS_ADDR"], ""); code != http.StatusOK || !strings.Contains(body, sample) {
			t.Fatalf("/metrics on PARLEY_METRICS_ADDR = %d", code)
		}
	})
}
