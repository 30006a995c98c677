package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// lockedBuffer collects logs written from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newServer returns the real app over a fresh database, and its log.
func newServer(t *testing.T) (*fiber.App, *lockedBuffer) {
	t.Helper()
	db := pgtest.Open(t)
	readiness, err := store.NewReadiness(db)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	app := handlers.NewServer(handlers.Deps{
		Logger:    slog.New(slog.NewJSONHandler(logs, nil)),
		Readiness: readiness,
		Registry:  prometheus.NewRegistry(),
		Version:   "test",
	})
	return app, logs
}

func do(t *testing.T, app *fiber.App, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestErrorHandler_AnswersEachCallerInItsLanguage(t *testing.T) {
	app, logs := newServer(t)
	fail := func(c *fiber.Ctx) error {
		switch c.Query("kind") {
		case "notfound":
			return models.Errorf(models.ENOTFOUND, "Conversation not found.")
		case "invalid":
			return models.Errorf(models.EINVALID, "Phone number is not valid.")
		case "conflict":
			return models.Errorf(models.ECONFLICT, "Already resolved.")
		case "forbidden":
			return models.Errorf(models.EFORBIDDEN, "Not allowed.")
		case "panic":
			panic("kaboom secret-detail")
		default:
			return errors.New("pq: connection refused to 10.0.0.1 secret-detail")
		}
	}
	app.Get("/api/v1/fail", fail)
	app.Get("/console/fail", fail)
	app.Post("/webhooks/fail", fail)

	tests := []struct {
		name        string
		method      string
		path        string
		headers     map[string]string
		wantStatus  int
		wantType    string
		wantBody    string
		wantHeaders map[string]string
	}{
		{"api not found", "GET", "/api/v1/fail?kind=notfound", nil, 404, "application/json", `{"error":{"code":"not_found","message":"Conversation not found."}}`, nil},
		{"api invalid", "GET", "/api/v1/fail?kind=invalid", nil, 400, "application/json", `"code":"invalid"`, nil},
		{"api conflict", "GET", "/api/v1/fail?kind=conflict", nil, 409, "application/json", `"code":"conflict"`, nil},
		{"api internal hides details", "GET", "/api/v1/fail", nil, 500, "application/json", `{"error":{"code":"internal","message":"Internal error."}}`, nil},
		{"api panic is internal", "GET", "/api/v1/fail?kind=panic", nil, 500, "application/json", `"message":"Internal error."`, nil},
		{"browser gets a page", "GET", "/console/fail?kind=forbidden", map[string]string{"Accept": "text/html"}, 403, "text/html", `data-testid="error-message">Not allowed.</p>`, nil},
		{"htmx gets an alert fragment", "GET", "/console/fail?kind=conflict", map[string]string{"HX-Request": "true"}, 409, "text/html", `role="alert"`, map[string]string{"HX-Retarget": "#alerts"}},
		{"webhook gets a plain status", "POST", "/webhooks/fail?kind=invalid", nil, 400, "text/plain", "Phone number is not valid.", nil},
		{"unknown route", "GET", "/nowhere", map[string]string{"Accept": "text/html"}, 404, "text/html", "Page not found.", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, body := do(t, app, req)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("Content-Type = %q, want %s", ct, tt.wantType)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body = %q, want it to contain %q", body, tt.wantBody)
			}
			if strings.Contains(body, "secret-detail") {
				t.Errorf("body leaks the internal error: %q", body)
			}
			for k, v := range tt.wantHeaders {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}

	// Internal failures are logged once each, with the request id; the
	// others are not errors of ours.
	var internal int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "request failed" {
			internal++
			if id, _ := rec["request_id"].(string); id == "" {
				t.Errorf("error log without request_id: %s", line)
			}
		}
	}
	if internal != 2 {
		t.Errorf("logged %d internal failures, want 2 (the plain error and the panic)", internal)
	}
}

func TestRequestID_KeepsAWellFormedOneAndReplacesOthers(t *testing.T) {
	app, _ := newServer(t)
	tests := []struct {
		in       string
		wantSame bool
	}{
		{"abc-123.X_y", true},
		{"", false},
		{"has space", false},
		{strings.Repeat("a", 65), false},
		{"line\nbreak", false},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "/healthz", nil)
		if tt.in != "" {
			req.Header["X-Request-Id"] = []string{tt.in}
		}
		resp, _ := do(t, app, req)
		got := resp.Header.Get("X-Request-ID")
		if got == "" {
			t.Errorf("in %q: no X-Request-ID in the answer", tt.in)
		}
		if (got == tt.in) != tt.wantSame {
			t.Errorf("in %q: answered %q, want same=%v", tt.in, got, tt.wantSame)
		}
	}
}

func TestHome_RendersTheConsolePage(t *testing.T) {
	app, _ := newServer(t)
	resp, body := do(t, app, httptest.NewRequest("GET", "/", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	for _, want := range []string{`data-testid="version">test<`, `data-testid="database-status">ready<`, `href="/static/app.css"`} {
		if !strings.Contains(body, want) {
			t.Errorf("home page lacks %s", want)
		}
	}
	for _, asset := range []string{"/static/app.css", "/static/htmx.min.js"} {
		resp, body := do(t, app, httptest.NewRequest("GET", asset, nil))
		if resp.StatusCode != 200 || len(body) < 1000 {
			t.Errorf("GET %s = %d with %d bytes", asset, resp.StatusCode, len(body))
		}
	}
}

func TestServer_ShutdownLetsInFlightRequestsFinish(t *testing.T) {
	app, _ := newServer(t)
	entered, release := make(chan struct{}), make(chan struct{})
	app.Get("/slow", func(c *fiber.Ctx) error {
		close(entered)
		<-release
		return c.SendString("finished")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-entered
	shutdown := make(chan error, 1)
	go func() { shutdown <- app.ShutdownWithContext(context.Background()) }()
	// Shutdown has begun once the listener refuses new connections.
	for {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		conn.Close()
		runtime.Gosched()
	}
	close(release)

	r := <-got
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request during shutdown: body %q, err %v; want it to finish", r.body, r.err)
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("listener: %v", err)
	}
}
