package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// postFake sends one message through the fake as twilio-go does and
// returns the status and the decoded body.
func postFake(t *testing.T, base, to string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"To": {to}, "From": {"+14155550000"}, "Body": {"hi"}}
	req, _ := http.NewRequest("POST", base+"/2010-04-01/Accounts/"+e2eAccountSID+"/Messages.json", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(e2eAccountSID, "token0123")
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	return resp.StatusCode, body
}

// The benchmark's Twilio refuses past its cap as Twilio does (429 with
// code 20429 in Twilio's error body), takes again once the cap allows,
// and keeps each accepted message.
func TestBenchFakeTwilio_RefusesPastItsCapWithTwiliosBody(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	f := newFakeTwilio(e2eAccountSID, "token0123", 0, 2)
	f.cap = newTokenBucket(2, func() time.Time { return now })
	srv := httptest.NewServer(f.routes())
	t.Cleanup(srv.Close)

	for i, want := range []int{201, 201, 429} {
		status, body := postFake(t, srv.URL, benchNumber(i))
		if status != want {
			t.Fatalf("send %d: %d, want %d (%v)", i+1, status, want, body)
		}
		if status == 429 && (body["code"] != float64(20429) || body["status"] != float64(429) || body["message"] == "" ||
			body["more_info"] != "https://www.twilio.com/docs/errors/20429") {
			t.Errorf("the 429's body is %v, want Twilio's error with code 20429", body)
		}
	}
	now = now.Add(500 * time.Millisecond) // one more send's worth at 2/s
	if status, body := postFake(t, srv.URL, benchNumber(3)); status != 201 {
		t.Errorf("half a second on: %d, want 201 (%v)", status, body)
	}
	s := fakeStatsOf(t, srv.URL)
	if s.Accepted != 3 || s.Limited != 1 || len(s.Answered[benchNumber(2)]) != 0 || len(s.Answered[benchNumber(3)]) != 1 {
		t.Errorf("stats %+v, want 3 accepted (not the refused one) and 1 limited", s)
	}
}

// The fake counts the requests it holds at once and keeps the most.
func TestBenchFakeTwilio_CountsRequestsInFlight(t *testing.T) {
	f := newFakeTwilio(e2eAccountSID, "token0123", 0, 0)
	release := make(chan struct{})
	f.hold = func(ctx context.Context) bool {
		select {
		case <-release:
			return true
		case <-ctx.Done():
			return false
		}
	}
	srv := httptest.NewServer(f.routes())
	t.Cleanup(srv.Close)
	const n = 7
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, body := postFake(t, srv.URL, benchNumber(i)); status != 201 {
				t.Errorf("send %d: %d (%v)", i, status, body)
			}
		}()
	}
	waitFor(t, "every send to be held", func() bool { return fakeStatsOf(t, srv.URL).InFlight == n })
	close(release)
	wg.Wait()
	if s := fakeStatsOf(t, srv.URL); s.InFlight != 0 || s.MaxInFlight != n || s.Accepted != n {
		t.Errorf("after: %d in flight, %d at most, %d accepted; want 0, %d, %d", s.InFlight, s.MaxInFlight, s.Accepted, n, n)
	}
}

// The fake runs as a process of its own, answers, and ends when the
// benchmark closes its input.
func TestBenchFakeTwilio_RunsAsItsOwnProcess(t *testing.T) {
	p := startFakeTwilio(t, e2eAccountSID, "token0123", 0, 0)
	if status, _ := postFake(t, p.URL, benchNumber(1)); status != 201 {
		t.Fatalf("send: %d", status)
	}
	if s, err := p.stats(true); err != nil || s.Accepted != 1 || len(s.Answered[benchNumber(1)]) != 1 {
		t.Fatalf("stats %+v, %v", s, err)
	}
	p.stop()
	select {
	case <-p.done:
	default:
		t.Error("the fake still runs after stop")
	}
}

func fakeStatsOf(t *testing.T, base string) fakeStats {
	t.Helper()
	p := &fakeProcess{URL: base}
	s, err := p.stats(true)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
