package channel

import (
	"context"
	"net/http/httptrace"
	"sync/atomic"
	"time"
)

// Attempt follows one send request on the wire, so that a refusal can be
// told from an unknown outcome. Once the request has been written the
// platform may have accepted the message, whatever happens next: a time
// limit, a reset connection or an unreadable answer then leaves the
// outcome unknown, and sending again could deliver it twice.
type Attempt struct {
	wrote      atomic.Bool
	status     atomic.Int32
	retryAfter atomic.Int64
}

// Trace returns ctx set to record, on a, whether the request made with it
// was written in full.
func Trace(ctx context.Context) (context.Context, *Attempt) {
	a := &Attempt{}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				a.wrote.Store(true)
			}
		},
	}), a
}

// Answered records the HTTP status the platform answered with, and its
// Retry-After header.
func (a *Attempt) Answered(status int, retryAfter string) {
	a.status.Store(int32(status))
	a.retryAfter.Store(int64(ParseRetryAfter(retryAfter)))
}

// RetryAfter is the Retry-After the platform answered with (0: none).
func (a *Attempt) RetryAfter() time.Duration {
	if a == nil {
		return 0
	}
	return time.Duration(a.retryAfter.Load())
}

// Unknown reports whether the platform may have the message although no
// usable answer came: the request was written, and no status came back
// that says it was refused (an error status), nor was a success read.
func (a *Attempt) Unknown() bool {
	if a == nil { // not a send: nothing was at stake
		return false
	}
	return a.wrote.Load() && (a.status.Load() == 0 || a.status.Load()/100 == 2)
}
