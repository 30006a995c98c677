package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
)

// The end-to-end benchmark's Twilio runs in a process of its own, as the
// real one runs on other machines: the test binary started again with
// fakeTwilioEnv set (TestMain hands it to serveFakeTwilio). In the
// benchmark's own process its work would share the load generator's
// scheduler and be counted against Parley's.
const fakeTwilioEnv = "PARLEY_BENCH_FAKE_TWILIO"

// fakeTwilio is Twilio's Messages API as a benchmark needs it: it answers
// each send after a set latency, refuses with Twilio's own 429 (code 20429)
// past its rate cap, and keeps when each contact's messages were answered
// and the most requests it held at once.
type fakeTwilio struct {
	accountSID, authToken string
	// hold keeps a request for the provider's latency; false when the
	// caller gave up first.
	hold func(ctx context.Context) bool
	cap  *tokenBucket // nil: no cap

	inFlight, maxInFlight, limited, seq atomic.Int64

	mu   sync.Mutex
	sent map[string][]fakeSent // by To
	all  int
}

// fakeSent is one message the fake took.
type fakeSent struct {
	SID, From, Body string
	Created         time.Time
	Answered        int64 // unix nanoseconds when its 201 was written
}

func newFakeTwilio(accountSID, authToken string, latency time.Duration, rate float64) *fakeTwilio {
	f := &fakeTwilio{accountSID: accountSID, authToken: authToken, sent: map[string][]fakeSent{}}
	f.hold = func(ctx context.Context) bool {
		if latency <= 0 {
			return true
		}
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if rate > 0 {
		f.cap = newTokenBucket(rate, time.Now)
	}
	return f
}

func (f *fakeTwilio) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", f.create)
	mux.HandleFunc("GET /2010-04-01/Accounts/{sid}/Messages.json", f.list)
	mux.HandleFunc("GET /bench/stats", f.stats)
	return mux
}

func (f *fakeTwilio) create(w http.ResponseWriter, r *http.Request) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for m := f.maxInFlight.Load(); n > m && !f.maxInFlight.CompareAndSwap(m, n); m = f.maxInFlight.Load() {
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != f.accountSID || pass != f.authToken || r.PathValue("sid") != f.accountSID {
		twilioError(w, twiliotest.Failure{HTTPStatus: 401, Code: 20003, Message: "Authenticate"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		twilioError(w, twiliotest.Failure{HTTPStatus: 400, Code: 21100, Message: "Invalid form"})
		return
	}
	to, from, body := r.PostForm.Get("To"), r.PostForm.Get("From"), r.PostForm.Get("Body")
	if to == "" || body == "" || (from == "" && r.PostForm.Get("MessagingServiceSid") == "") {
		twilioError(w, twiliotest.Failure{HTTPStatus: 400, Code: 21604, Message: "To, From and Body are required."})
		return
	}
	if f.cap != nil && !f.cap.take() {
		f.limited.Add(1)
		twilioError(w, twiliotest.RateLimited)
		return
	}
	s := fakeSent{SID: fmt.Sprintf("SM%032d", f.seq.Add(1)), From: from, Body: body, Created: time.Now().UTC().Truncate(time.Second)}
	f.mu.Lock()
	f.sent[to] = append(f.sent[to], s) // taken: reconciliation finds it even if the caller stops waiting
	i := len(f.sent[to]) - 1
	f.mu.Unlock()
	if !f.hold(r.Context()) {
		return // the caller gave up
	}
	f.mu.Lock()
	f.sent[to][i].Answered = time.Now().UnixNano()
	f.all++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sid": s.SID, "account_sid": f.accountSID, "to": to, "from": from, "body": body, "status": "queued",
		"num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
		"uri": fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s.json", f.accountSID, s.SID),
	})
}

// list answers Parley's reconciliation (a send whose outcome it could not
// know) as Twilio does: the newest messages to To, one page.
func (f *fakeTwilio) list(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != f.accountSID || pass != f.authToken {
		twilioError(w, twiliotest.Failure{HTTPStatus: 401, Code: 20003, Message: "Authenticate"})
		return
	}
	to := r.URL.Query().Get("To")
	f.mu.Lock()
	sent := append([]fakeSent(nil), f.sent[to]...)
	f.mu.Unlock()
	page := []map[string]any{}
	for i := len(sent) - 1; i >= 0 && len(page) < 50; i-- {
		s := sent[i]
		page = append(page, map[string]any{"sid": s.SID, "account_sid": f.accountSID, "to": to, "from": s.From, "body": s.Body,
			"status": "sent", "direction": "outbound-api", "date_created": s.Created.Format(time.RFC1123Z),
			"date_sent": s.Created.Format(time.RFC1123Z)})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"messages": page, "page": 0, "page_size": 50, "start": 0, "end": max(len(page)-1, 0),
		"first_page_uri": r.URL.RequestURI(), "next_page_uri": nil, "previous_page_uri": nil, "uri": r.URL.RequestURI()})
}

// fakeStats is what the fake tells the benchmark: GET /bench/stats, with
// ?answered=1 each contact's answer times too.
type fakeStats struct {
	Accepted    int                `json:"accepted"` // answered 201
	Limited     int64              `json:"limited"`  // answered 429
	InFlight    int64              `json:"in_flight"`
	MaxInFlight int64              `json:"max_in_flight"`
	Answered    map[string][]int64 `json:"answered,omitempty"` // To → unix nanoseconds of each 201
}

func (f *fakeTwilio) stats(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	s := fakeStats{Accepted: f.all, Limited: f.limited.Load(), InFlight: f.inFlight.Load(), MaxInFlight: f.maxInFlight.Load()}
	if r.URL.Query().Get("answered") != "" {
		s.Answered = make(map[string][]int64, len(f.sent))
		for to, sent := range f.sent {
			for _, m := range sent {
				if m.Answered != 0 {
					s.Answered[to] = append(s.Answered[to], m.Answered)
				}
			}
		}
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

// twilioError writes Twilio's error body.
func twilioError(w http.ResponseWriter, f twiliotest.Failure) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.HTTPStatus)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": f.Code, "message": f.Message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", f.Code), "status": f.HTTPStatus})
}

// tokenBucket caps requests at rate a second, allowing a burst of one
// second's worth, as an account's API limit does.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newTokenBucket(rate float64, now func() time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, tokens: max(rate, 1), last: now(), now: now}
}

func (b *tokenBucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	b.tokens = min(max(b.rate, 1), b.tokens+t.Sub(b.last).Seconds()*b.rate)
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// serveFakeTwilio is the fake's process: it prints the URL it listens on
// and serves until its standard input closes (the benchmark closed it, or
// died), then returns the exit code.
func serveFakeTwilio() int {
	latency, err := time.ParseDuration(os.Getenv("PARLEY_BENCH_FAKE_LATENCY"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake Twilio: latency:", err)
		return 2
	}
	rate, _ := strconv.ParseFloat(os.Getenv("PARLEY_BENCH_FAKE_RATE"), 64)
	f := newFakeTwilio(os.Getenv("PARLEY_BENCH_FAKE_SID"), os.Getenv("PARLEY_BENCH_FAKE_TOKEN"), latency, rate)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake Twilio:", err)
		return 1
	}
	srv := &http.Server{Handler: f.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	fmt.Printf("listening http://%s\n", l.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return 0
}

// fakeProcess is the fake Twilio running as its own process.
type fakeProcess struct {
	URL    string
	cmd    *exec.Cmd
	stdin  io.Closer
	stderr *syncBuffer
	done   chan struct{}
}

// startFakeTwilio starts the fake in a process of its own; it is stopped
// when the benchmark ends, however it ends.
func startFakeTwilio(tb testing.TB, accountSID, authToken string, latency time.Duration, rate float64) *fakeProcess {
	tb.Helper()
	p := &fakeProcess{cmd: exec.Command(os.Args[0], "-test.run=^$"), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), fakeTwilioEnv+"=1", "PARLEY_BENCH_FAKE_LATENCY="+latency.String(),
		"PARLEY_BENCH_FAKE_RATE="+strconv.FormatFloat(rate, 'f', -1, 64), "PARLEY_BENCH_FAKE_SID="+accountSID, "PARLEY_BENCH_FAKE_TOKEN="+authToken)
	p.cmd.Stderr = p.stderr
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p.stdin = stdin
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	tb.Cleanup(p.stop)
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(io.LimitReader(stdout, 1<<10)).ReadString('\n')
		first <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-first:
		u, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
		if !ok {
			tb.Fatalf("the fake Twilio did not start: %q\n%s", line, p.stderr)
		}
		p.URL = u
	case <-time.After(30 * time.Second):
		tb.Fatalf("the fake Twilio did not start within 30 s:\n%s", p.stderr)
	}
	return p
}

// stop closes the fake's input, which ends it, and kills it if it has not
// ended within five seconds.
func (p *fakeProcess) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stats asks the fake what it has seen; answered adds each contact's
// answer times.
func (p *fakeProcess) stats(answered bool) (fakeStats, error) {
	q := url.Values{}
	if answered {
		q.Set("answered", "1")
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(p.URL + "/bench/stats?" + q.Encode())
	if err != nil {
		return fakeStats{}, err
	}
	defer resp.Body.Close()
	var s fakeStats
	err = json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&s)
	return s, err
}
