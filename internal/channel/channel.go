// Package channel holds what every messaging platform adapter shares: the
// inbound message and status shapes the pipeline consumes, the send
// interface it calls, and the classification of send errors. One
// sub-package per platform (twilio, meta, siren) verifies and parses its
// webhooks and speaks its send API.
package channel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/parley-chat/parley/models"
)

// Providers.
const (
	Twilio = "twilio"
	Meta   = "meta"
	Siren  = "siren"
	// Simulator is the console's simulator: a channel inside Parley whose
	// messages take the same ingest, processing and send path.
	Simulator = "simulator"
)

// Inbound is one message a platform delivered to Parley.
type Inbound struct {
	Provider          string
	ProviderMessageID string
	From              string // channel address: whatsapp:+…, or +… for SMS
	To                string
	Body              string
	ProfileName       string     // the sender's profile name, when the platform gives one
	Media             []Media    // attachments, fetched later by a job
	Timestamp         *time.Time // the platform's time of the message, when it gives one
}

// Media is one attachment of an inbound message: where to fetch it.
type Media struct {
	Ref         string // a URL (Twilio, Siren) or a media id (Meta)
	ContentType string
}

// Status is a delivery status callback for a message Parley sent.
type Status struct {
	Provider          string
	ProviderMessageID string
	Status            models.MessageStatus
	ErrorCode         string
	// Reason is a sentence a person can act on for ErrorCode, when the
	// adapter knows the code ("" else).
	Reason string
}

// Outbound is one message to send.
type Outbound struct {
	To       string // channel address: whatsapp:+… or +…
	Body     string
	MediaURL string
	// Template, when set, sends an approved WhatsApp template instead of
	// free text (Body is its rendered text, for platforms without
	// templates: SMS takes Body).
	Template *models.TemplateRef
}

// Sender sends messages through one platform.
type Sender interface {
	// Send sends m and returns the platform's message id. Errors are
	// *SendError when the platform answered.
	Send(ctx context.Context, m Outbound) (providerMessageID string, err error)
}

// Reconciler is a Sender whose platform can be asked about a send whose
// outcome Parley never learned (the call was cut off, or the process died
// during it), so it is neither sent twice nor given up for lost.
type Reconciler interface {
	// Lookup returns the platform's ids of the messages it holds to m.To
	// saying m.Body, created since, newest first.
	Lookup(ctx context.Context, m Outbound, since time.Time) ([]string, error)
}

// StatusChecker is a Sender whose platform is asked for delivery statuses
// instead of (or as well as) pushing them by webhook.
type StatusChecker interface {
	// CheckStatus returns the message's status now; Status "" means one
	// Parley does not know (keep asking). final reports that it will not
	// change any more.
	CheckStatus(ctx context.Context, providerMessageID string) (st Status, final bool, err error)
}

// MediaFetcher downloads an inbound attachment with the platform's
// credentials.
type MediaFetcher interface {
	// Fetch opens the attachment; the caller closes it.
	Fetch(ctx context.Context, ref string) (body io.ReadCloser, contentType string, err error)
}

// MaxInFlight is how many calls to one platform's API the transports are
// sized for by default: the pipeline's default cap on sends in flight.
const MaxInFlight = 200

// Transport is the HTTP transport for calls to a platform's API, sized for
// up to conns calls at once (MaxInFlight when 0): the pipeline keeps as
// many sends in flight as the send rate and the platform's latency call
// for, so it keeps that many connections alive instead of Go's default
// two, which would redial (and renegotiate TLS) for most sends under load,
// and opens no more than that (a burst past it waits for one). HTTP/2 is
// used where the platform speaks it (Twilio and the Graph API do), many
// calls sharing a connection.
func Transport(conns int) *http.Transport {
	if conns <= 0 {
		conns = MaxInFlight
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ForceAttemptHTTP2 = true
	t.MaxIdleConns, t.MaxIdleConnsPerHost, t.MaxConnsPerHost = 2*conns, conns, conns+conns/4
	return t
}

// ParseRetryAfter reads a Retry-After header: seconds, or an HTTP date; 0
// when absent or unreadable.
func ParseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// RetryableStatus reports whether a platform's HTTP status is worth trying
// again later: rate limited, or its own failure.
func RetryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// SendError is a platform's refusal to send, classified for the pipeline.
type SendError struct {
	Provider   string
	Code       string        // the platform's error code, e.g. "21610"
	HTTPStatus int           // 0 when no answer came
	Reason     string        // a sentence a person can act on
	Retryable  bool          // 429, 5xx, no connection: try again later
	RetryAfter time.Duration // the platform's hint, when it gives one
	// Throttled: refused for the platform's rate limit (HTTP 429, Twilio
	// 20429, Meta 130429/131056/80007). Not taken, so safe to send again;
	// the sender slows down and the message waits, never failing for it.
	Throttled bool
	// Uncertain: the request reached the platform and no usable answer
	// came (a time limit, a cut connection, an unreadable success): it may
	// have been accepted, so it is neither retried nor called failed.
	Uncertain bool
	OptedOut  bool // the recipient unsubscribed: send them nothing more
	Window    bool // outside WhatsApp's 24-hour window: needs a template
}

func (e *SendError) Error() string {
	return fmt.Sprintf("%s send failed: code %s (HTTP %d): %s", e.Provider, e.Code, e.HTTPStatus, e.Reason)
}

// UncertainSend is the error of a send whose outcome is unknown.
func UncertainSend(provider, platform string) *SendError {
	return &SendError{Provider: provider, Uncertain: true,
		Reason: platform + " received the message but gave no usable answer: it may or may not have been sent. Check with the contact before resending."}
}

// AsSendError returns the *SendError in err's chain, or nil.
func AsSendError(err error) *SendError {
	var se *SendError
	if errors.As(err, &se) {
		return se
	}
	return nil
}
