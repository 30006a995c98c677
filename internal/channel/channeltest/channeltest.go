// Package channeltest holds what the platform adapters' tests share: HTTP
// servers that fail the way a platform's API can, and the check of how a
// send error is classified.
package channeltest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/parley-chat/parley/internal/channel"
)

// Stalling starts a server that reads each request whole and then never
// answers, as a platform that took the message and then hung; with
// headersFirst it sends a 200 status before hanging. It returns its URL.
func Stalling(t testing.TB, headersFirst bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		if headersFirst {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Closed returns the URL of a server that is no longer there: nothing
// reaches the platform.
func Closed(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

// CheckUncertain fails t unless err is a *channel.SendError that is
// uncertain (and not retryable) when uncertain is set, or retryable (and
// not uncertain) when not.
func CheckUncertain(t testing.TB, err error, uncertain bool) {
	t.Helper()
	se := channel.AsSendError(err)
	if se == nil || se.Uncertain != uncertain || se.Retryable == uncertain {
		t.Fatalf("err = %+v, want uncertain %v (and retryable %v)", se, uncertain, !uncertain)
	}
}
