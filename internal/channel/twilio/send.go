package twilio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/parley-chat/parley/internal/channel"
)

// Config is what sending through Twilio needs.
type Config struct {
	AccountSID          string
	AuthToken           string
	From                string // a number or whatsapp:+number; or use MessagingServiceSID
	MessagingServiceSID string
	StatusCallback      string // where Twilio posts delivery statuses
	APIBaseURL          string // "" for Twilio itself; a sandbox or test fake otherwise
	Timeout             time.Duration
}

// Client sends messages and fetches media through Twilio's REST API.
type Client struct {
	cfg  Config
	base *url.URL // nil for Twilio itself
	rt   http.RoundTripper
}

// NewClient returns a Twilio client.
func NewClient(cfg Config) (*Client, error) {
	if cfg.AccountSID == "" || cfg.AuthToken == "" {
		return nil, errors.New("twilio: account SID and auth token are required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	c := &Client{cfg: cfg, rt: channel.Transport()}
	if cfg.APIBaseURL != "" {
		u, err := url.Parse(cfg.APIBaseURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("twilio: bad API base URL")
		}
		c.base = u
	}
	return c, nil
}

// ctxTransport binds each request to the caller's context (twilio-go takes
// none) and sends Twilio's API requests to the configured base URL.
type ctxTransport struct {
	ctx  context.Context
	base *url.URL
	rt   http.RoundTripper
}

func (t *ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.WithContext(t.ctx)
	if t.base != nil && strings.HasSuffix(req.URL.Host, "twilio.com") {
		req.URL.Scheme, req.URL.Host = t.base.Scheme, t.base.Host
		req.Host = t.base.Host
	}
	return t.rt.RoundTrip(req)
}

func (c *Client) httpClient(ctx context.Context) *http.Client {
	return &http.Client{
		Timeout:   c.cfg.Timeout,
		Transport: &ctxTransport{ctx: ctx, base: c.base, rt: c.rt},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Send sends m and returns its message SID.
func (c *Client) Send(ctx context.Context, m channel.Outbound) (string, error) {
	tc := &client.Client{Credentials: client.NewCredentials(c.cfg.AccountSID, c.cfg.AuthToken), HTTPClient: c.httpClient(ctx)}
	tc.SetAccountSid(c.cfg.AccountSID) // without it the path is /Accounts//Messages.json
	api := openapi.NewApiServiceWithClient(tc)

	params := &openapi.CreateMessageParams{}
	params.SetTo(m.To)
	if c.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(c.cfg.MessagingServiceSID)
	} else {
		from := c.cfg.From
		if strings.HasPrefix(m.To, "whatsapp:") && !strings.HasPrefix(from, "whatsapp:") {
			from = "whatsapp:" + from
		}
		params.SetFrom(from)
	}
	if m.Body != "" {
		params.SetBody(m.Body)
	}
	if m.MediaURL != "" {
		params.SetMediaUrl([]string{m.MediaURL})
	}
	if c.cfg.StatusCallback != "" {
		params.SetStatusCallback(c.cfg.StatusCallback)
	}
	msg, err := api.CreateMessage(params)
	if err != nil {
		return "", classify(err)
	}
	if msg.Sid == nil || *msg.Sid == "" {
		return "", &channel.SendError{Provider: channel.Twilio, Reason: "Twilio answered without a message SID.", Retryable: true}
	}
	return *msg.Sid, nil
}

// classify turns twilio-go's errors into a *channel.SendError.
func classify(err error) *channel.SendError {
	var re *client.TwilioRestError
	if errors.As(err, &re) {
		// Twilio's own message may quote the number: keep it out.
		se := &channel.SendError{Provider: channel.Twilio, Code: strconv.Itoa(re.Code), HTTPStatus: re.Status,
			Reason: fmt.Sprintf("Twilio refused the message (error %d).", re.Code)}
		switch {
		case re.Code == 21610:
			se.OptedOut = true
			se.Reason = "The recipient has unsubscribed (replied STOP); they must text START to receive messages again."
		case re.Code == 21211:
			se.Reason = "The recipient's number is not valid."
		case re.Code == 63016:
			se.Window = true
			se.Reason = "More than 24 hours since the contact last wrote on WhatsApp: only an approved template can be sent."
		case re.Status == http.StatusTooManyRequests || re.Code == 20429:
			se.Retryable = true
			se.Reason = "Twilio is rate limiting this account."
		case re.Status >= 500:
			se.Retryable = true
		}
		return se
	}
	// No structured answer: a timeout, a refused connection, or a body that
	// was not Twilio's JSON (a proxy's error page). Try again later.
	se := &channel.SendError{Provider: channel.Twilio, Reason: "No usable answer from Twilio.", Retryable: true}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		se.Reason = "Twilio did not answer in time."
	}
	return se
}

// Fetch downloads an inbound attachment with the account's credentials,
// following Twilio's redirect to its CDN.
func (c *Client) Fetch(ctx context.Context, mediaURL string) (io.ReadCloser, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, mediaURL, nil)
	if err != nil {
		return nil, "", err
	}
	req.SetBasicAuth(c.cfg.AccountSID, c.cfg.AuthToken)
	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &ctxTransport{ctx: ctx, base: c.base, rt: c.rt}}
	return channel.Download(hc, req, channel.Twilio)
}
