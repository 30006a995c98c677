package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
)

// The benchmarks' load generator works as wrk does: every webhook of a
// round is built and signed before the clock starts (a platform signs its
// own requests, on its own machines), and each connection writes them raw
// over one kept-alive HTTP/1.1 connection, reading each answer before the
// next. The machine's two cores are shared with what is measured: a Go
// http.Client signing as it went took a quarter of a core at 4,000
// webhooks a second.

// benchRequests returns the signed webhook of each contact numbered from
// first, as bytes ready to write to base's host.
func benchRequests(base, token string, first, n int) ([][]byte, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for i := range n {
		c := first + i
		params := map[string]string{"MessageSid": fmt.Sprintf("SMbe%030d", c), "AccountSid": e2eAccountSID, "From": benchNumber(c),
			"To": "+14155550000", "Body": "hi", "NumMedia": "0"}
		form := url.Values{}
		for k, v := range params {
			form.Set(k, v)
		}
		body := form.Encode()
		out[i] = fmt.Appendf(nil, "POST /webhooks/twilio HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
			"X-Twilio-Signature: %s\r\nContent-Length: %d\r\n\r\n%s",
			u.Host, twiliotest.Sign(token, base+"/webhooks/twilio", params), len(body), body)
	}
	return out, nil
}

// benchConn is one load-generating connection.
type benchConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
}

func newBenchConn(base string) (*benchConn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	return &benchConn{addr: u.Host}, nil
}

// post writes one prepared request and returns the answer's status (0:
// no answer; the connection is dialled again for the next).
func (bc *benchConn) post(req []byte) int {
	if bc.c == nil {
		c, err := net.DialTimeout("tcp", bc.addr, 10*time.Second)
		if err != nil {
			return 0
		}
		bc.c, bc.r = c, bufio.NewReaderSize(c, 4096)
	}
	_ = bc.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := bc.c.Write(req); err != nil {
		bc.close()
		return 0
	}
	resp, err := http.ReadResponse(bc.r, nil)
	if err != nil {
		bc.close()
		return 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.Close || strings.EqualFold(resp.Header.Get("Connection"), "close") {
		bc.close()
	}
	return resp.StatusCode
}

func (bc *benchConn) close() {
	if bc.c != nil {
		_ = bc.c.Close()
		bc.c, bc.r = nil, nil
	}
}

// firing is what one round of prepared webhooks measured.
type firing struct {
	took   time.Duration // first request to last answer
	acks   []float64     // each request's answer in ms, from when it was due
	sent   []int64       // when each request was due, Unix ns
	non2xx int
}

// fire posts reqs to base over conns connections, each request as soon as
// a connection is free or, with rate above 0, not before i/rate seconds
// from the start (open loop: its answer is timed from then, so a stall
// counts for every request it delays).
func fire(base string, reqs [][]byte, conns int, rate float64) (firing, error) {
	f := firing{acks: make([]float64, len(reqs)), sent: make([]int64, len(reqs))}
	var next, non2xx atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		bc, err := newBenchConn(base)
		if err != nil {
			return f, err
		}
		wg.Go(func() {
			defer bc.close()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				due := time.Now()
				if rate > 0 {
					due = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					time.Sleep(time.Until(due)) // pacing the load, not synchronisation
				}
				f.sent[i] = due.UnixNano()
				if status := bc.post(reqs[i]); status < 200 || status > 299 {
					non2xx.Add(1)
				}
				f.acks[i] = float64(time.Since(due)) / 1e6
			}
		})
	}
	wg.Wait()
	f.took, f.non2xx = time.Since(start), int(non2xx.Load())
	return f, nil
}
