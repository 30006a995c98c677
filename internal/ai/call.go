package ai

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
)

// CallError is a failed call to an AI provider, described by status and
// code only: a provider's message may quote the person's words back.
type CallError struct {
	Provider string
	Status   int    // HTTP status; 0 when there was no answer
	Code     string // the provider's error code or status name, if any
	// Permanent says trying again will not help: a bad key, input the
	// provider refuses, an answer blocked by its safety rules.
	Permanent bool
	// RetryAfter is how long the provider asked callers to wait (0: it
	// did not say).
	RetryAfter time.Duration
	Reason     string // what went wrong, in Parley's words
}

func (e *CallError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ai: %s: %s", e.Provider, e.Reason)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.Status)
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		b.WriteString(")")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, "; retry after %s", e.RetryAfter)
	}
	return b.String()
}

// Permanent reports whether err says trying again will not help.
func Permanent(err error) bool {
	var ce *CallError
	return errors.As(err, &ce) && ce.Permanent
}

var retryAfterText = regexp.MustCompile(`retry after ([0-9.hms]+)$`)

// RetryAfterIn finds the wait a provider asked for in a failed call's
// error text (as a job's recorded error keeps it).
func RetryAfterIn(errText string) (time.Duration, bool) {
	m := retryAfterText.FindStringSubmatch(errText)
	if m == nil {
		return 0, false
	}
	d, err := time.ParseDuration(m[1])
	return d, err == nil && d > 0
}

// statusError classifies an HTTP failure: 429 and 5xx are worth trying
// again (after the provider's Retry-After, when it gives one), other 4xx
// are not.
func statusError(provider string, status int, code string, retryAfter time.Duration) *CallError {
	e := &CallError{Provider: provider, Status: status, Code: code, RetryAfter: retryAfter}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Reason, e.Permanent = "the API key was refused", true
	case status == http.StatusTooManyRequests:
		e.Reason = "rate limited or out of quota"
	case status >= 500:
		e.Reason = "the service failed"
	case status == http.StatusRequestEntityTooLarge:
		e.Reason, e.Permanent = "the file is too large for the service", true
	default:
		e.Reason, e.Permanent = "the service refused the request", true
	}
	return e
}

// transportError describes a call that got no answer.
func transportError(provider string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &CallError{Provider: provider, Reason: "timed out"}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &CallError{Provider: provider, Reason: "could not be reached"}
}

// retryAfterHeader reads Retry-After in seconds or as an HTTP date.
func retryAfterHeader(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// withRetries runs call, trying again after a failure worth retrying, at
// most retries more times: after the wait the provider asked for, else a
// short backoff; never past ctx's deadline (it gives up with the error
// instead, for the caller's queue to retry later).
func withRetries[T any](ctx context.Context, retries int, call func(context.Context) (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := call(ctx)
		var ce *CallError
		if err == nil || attempt >= retries || !errors.As(err, &ce) || ce.Permanent || ce.Reason == "timed out" {
			return v, err
		}
		wait := ce.RetryAfter
		if wait == 0 {
			wait = time.Duration(250<<attempt) * time.Millisecond
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait+time.Second {
			return v, err // no time left to wait for: the queue retries later
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
	}
}

// newBreaker rests a provider after breakAfter failures in a row; a
// refused input (the person's, not the provider's fault) and the caller
// giving up do not count.
func newBreaker[T any](name string, rest time.Duration, breakAfter uint32) *gobreaker.CircuitBreaker[T] {
	if rest <= 0 {
		rest = 30 * time.Second
	}
	if breakAfter == 0 {
		breakAfter = 5
	}
	return gobreaker.NewCircuitBreaker[T](gobreaker.Settings{
		Name:        name,
		Timeout:     rest,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= breakAfter },
		IsExcluded:  func(err error) bool { return errors.Is(err, context.Canceled) },
		IsSuccessful: func(err error) bool {
			var ce *CallError
			return err == nil || (errors.As(err, &ce) && ce.Permanent && ce.Status != http.StatusUnauthorized && ce.Status != http.StatusForbidden)
		},
	})
}

// breakerError turns the breaker's refusal into a CallError worth retrying
// later.
func breakerError(provider string, err error) error {
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return &CallError{Provider: provider, Reason: "failed repeatedly; it is left alone for a while"}
	}
	return err
}

// maxAnswer bounds what Parley reads of a provider's answer.
const maxAnswer = 1 << 20

// boundedBodies is a transport whose answers read at most limit bytes:
// past it the read fails, so a client library reading "everything" reads
// a bounded amount.
type boundedBodies struct {
	next  http.RoundTripper
	limit int64
}

func (b boundedBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(r)
	if err == nil {
		resp.Body = &limitedBody{rc: resp.Body, left: b.limit}
	}
	return resp, err
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

var errAnswerTooLarge = errors.New("ai: the answer is larger than Parley reads")

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.rc.Read(one[:]); n > 0 {
			return 0, errAnswerTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// boundedClient wraps c's transport so no answer is read past limit, and
// follows no redirect: the providers' keys travel in headers of their own
// (api-subscription-key, x-goog-api-key), which Go's client would copy to
// wherever a redirect points.
func boundedClient(c *http.Client, limit int64) *http.Client {
	if c == nil {
		c = &http.Client{}
	}
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	out := *c
	out.Transport = boundedBodies{next: next, limit: limit}
	out.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &out
}
