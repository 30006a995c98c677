package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/models"
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
	// MaxInFlight sizes the connection pool: the most send calls the
	// pipeline keeps in flight (channel.MaxInFlight when 0).
	MaxInFlight int
	// MediaHosts get the account's credentials when fetching inbound media
	// (DefaultMediaHosts when empty; the API base URL's host always).
	MediaHosts []string
	// PrivateHosts (host:port) may be fetched from although they resolve
	// to non-public addresses (the API base URL's host always may).
	PrivateHosts []string
	// Templates is the registry a WhatsApp template's ContentSid is read
	// from (by name and language); without it a template is refused.
	Templates channel.Templates
}

// DefaultMediaHosts are where Twilio's inbound media URLs point: its API
// host, which answers with a redirect to signed storage URLs.
var DefaultMediaHosts = []string{"api.twilio.com"}

// Client sends messages and fetches media through Twilio's REST API.
type Client struct {
	cfg   Config
	base  *url.URL // nil for Twilio itself
	rt    http.RoundTripper
	media *channel.MediaClient
}

// NewClient returns a Twilio client.
func NewClient(cfg Config) (*Client, error) {
	if cfg.AccountSID == "" || cfg.AuthToken == "" {
		return nil, errors.New("twilio: account SID and auth token are required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	c := &Client{cfg: cfg, rt: channel.Transport(cfg.MaxInFlight)}
	if cfg.APIBaseURL != "" {
		u, err := url.Parse(cfg.APIBaseURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("twilio: bad API base URL")
		}
		c.base = u
	}
	hosts := cfg.MediaHosts
	if len(hosts) == 0 {
		hosts = DefaultMediaHosts
	}
	private := cfg.PrivateHosts
	if base := channel.HostOf(cfg.APIBaseURL); base != "" {
		hosts, private = append(slices.Clone(hosts), base), append(slices.Clone(private), base)
	}
	c.media = channel.NewMediaClient(channel.MediaPolicy{
		Provider: channel.Twilio, CredentialHosts: hosts, PrivateHosts: private,
		Wrap: func(rt http.RoundTripper) http.RoundTripper { return &ctxTransport{base: c.base, rt: rt} },
	})
	return c, nil
}

// ctxTransport binds each request to the caller's context (twilio-go takes
// none; nil keeps the request's own) and sends Twilio's API requests to
// the configured base URL.
type ctxTransport struct {
	ctx     context.Context
	base    *url.URL
	rt      http.RoundTripper
	attempt *channel.Attempt // records the answer's status, when set
	limit   int64            // the most of an answer read; 0: no bound here (media are bounded by their reader)
}

func (t *ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.ctx != nil {
		req = req.WithContext(t.ctx)
	}
	if host := req.URL.Hostname(); t.base != nil && (host == "twilio.com" || strings.HasSuffix(host, ".twilio.com")) {
		req.URL.Scheme, req.URL.Host = t.base.Scheme, t.base.Host
		req.Host = t.base.Host
	}
	resp, err := t.rt.RoundTrip(req)
	if resp != nil && t.attempt != nil {
		t.attempt.Answered(resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp != nil && t.limit > 0 {
		resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, t.limit), Closer: resp.Body}
	}
	return resp, err
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// maxAnswer bounds what is read of an API answer: a page of 50 messages
// is well under it.
const maxAnswer = 1 << 20

func (c *Client) httpClient(ctx context.Context, attempt *channel.Attempt) *http.Client {
	return &http.Client{
		Timeout:   c.cfg.Timeout,
		Transport: &ctxTransport{ctx: ctx, base: c.base, rt: c.rt, attempt: attempt, limit: maxAnswer},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// from is the sender's address for a message to to: the configured number,
// on WhatsApp when to is and as a plain number when it is not (Twilio
// refuses a WhatsApp sender for an SMS, 21910, and the setting may be
// written either way).
func (c *Client) from(to string) string {
	number := strings.TrimPrefix(c.cfg.From, "whatsapp:")
	if strings.HasPrefix(to, "whatsapp:") {
		return "whatsapp:" + number
	}
	return number
}

// Send sends m and returns its message SID.
func (c *Client) Send(ctx context.Context, m channel.Outbound) (string, error) {
	ctx, attempt := channel.Trace(ctx)
	tc := &client.Client{Credentials: client.NewCredentials(c.cfg.AccountSID, c.cfg.AuthToken), HTTPClient: c.httpClient(ctx, attempt)}
	tc.SetAccountSid(c.cfg.AccountSID) // without it the path is /Accounts//Messages.json
	api := openapi.NewApiServiceWithClient(tc)

	params := &openapi.CreateMessageParams{}
	params.SetTo(m.To)
	if c.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(c.cfg.MessagingServiceSID)
	} else {
		params.SetFrom(c.from(m.To))
	}
	switch {
	case m.Template != nil && strings.HasPrefix(m.To, "whatsapp:"):
		sid, vars, se := c.content(ctx, m.Template)
		if se != nil {
			return "", se
		}
		params.SetContentSid(sid)
		if vars != "" {
			params.SetContentVariables(vars)
		}
	case m.Body != "":
		// SMS has no window: a template's text goes as it reads.
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
		return "", classify(err, attempt)
	}
	if msg.Sid == nil || *msg.Sid == "" {
		return "", channel.UncertainSend(channel.Twilio, "Twilio") // a success without its SID
	}
	return *msg.Sid, nil
}

// content resolves a template to its ContentSid through the registry,
// checked as Twilio would check it, and its ContentVariables JSON
// ({"1":"…"}; "" for none).
func (c *Client) content(ctx context.Context, ref *models.TemplateRef) (sid, vars string, se *channel.SendError) {
	if c.cfg.Templates == nil {
		return "", "", channel.MissingTemplate(channel.Twilio, ref)
	}
	t, found, se := channel.CheckTemplate(ctx, c.cfg.Templates, channel.Twilio, ref)
	switch {
	case se != nil:
		return "", "", se
	case !found:
		return "", "", channel.MissingTemplate(channel.Twilio, ref)
	}
	if len(ref.Params) > 0 {
		b, err := json.Marshal(ref.Params)
		if err != nil {
			return "", "", &channel.SendError{Provider: channel.Twilio, Code: channel.CodeTemplateParams, Reason: "The template's parameters cannot be encoded."}
		}
		vars = string(b)
	}
	return t.PlatformID, vars, nil
}

// lookupPage is how many of the newest messages to a contact Lookup reads.
const lookupPage = 50

// Lookup implements channel.Reconciler: it reads the newest messages from
// this account's sender to m.To (one page, through twilio-go's Messages
// list filtered by To and From) and keeps those saying m.Body created since.
// The time is matched here rather than with Twilio's DateSent filter: a
// message Twilio took but has not sent yet has no date_sent.
func (c *Client) Lookup(ctx context.Context, m channel.Outbound, since time.Time) ([]string, error) {
	tc := &client.Client{Credentials: client.NewCredentials(c.cfg.AccountSID, c.cfg.AuthToken), HTTPClient: c.httpClient(ctx, nil)}
	tc.SetAccountSid(c.cfg.AccountSID)
	api := openapi.NewApiServiceWithClient(tc)
	params := &openapi.ListMessageParams{}
	params.SetTo(m.To)
	params.SetPageSize(lookupPage)
	if c.cfg.MessagingServiceSID == "" {
		params.SetFrom(c.from(m.To))
	}
	page, err := api.PageMessage(params, "", "")
	if err != nil {
		return nil, classify(err, nil)
	}
	var sids []string
	for _, msg := range page.Messages {
		if msg.Sid == nil || msg.Body == nil || *msg.Body != m.Body || msg.DateCreated == nil {
			continue
		}
		created, err := time.Parse(time.RFC1123Z, *msg.DateCreated)
		if err != nil || created.Before(since) {
			continue
		}
		sids = append(sids, *msg.Sid)
	}
	return sids, nil
}

// classify turns twilio-go's errors into a *channel.SendError.
func classify(err error, attempt *channel.Attempt) *channel.SendError {
	var re *client.TwilioRestError
	if errors.As(err, &re) {
		// Twilio's own message may quote the number: keep it out.
		se := &channel.SendError{Provider: channel.Twilio, Code: strconv.Itoa(re.Code), HTTPStatus: re.Status,
			Reason: fmt.Sprintf("Twilio refused the message (error %d).", re.Code)}
		if reason, ok := reasons[re.Code]; ok {
			se.Reason = reason
		}
		switch {
		case re.Code == 21610:
			se.OptedOut = true
			se.Reason = "The recipient has unsubscribed (replied STOP); they must text START to receive messages again."
		case re.Code == 21211:
			se.Reason = "The recipient's number is not valid."
		case re.Code == 63016:
			se.Window = true
		case re.Status == http.StatusTooManyRequests || re.Code == 20429 || re.Code == 63018:
			se.Retryable, se.Throttled = true, true
			se.RetryAfter = attempt.RetryAfter()
			se.Reason = "Twilio is rate limiting this account."
		case re.Status >= 500:
			se.Retryable = true
		}
		return se
	}
	// No structured answer. Once the request was written Twilio may have
	// accepted it: a time limit or a cut connection then is an unknown
	// outcome, not a failure to retry.
	if attempt.Unknown() {
		return channel.UncertainSend(channel.Twilio, "Twilio")
	}
	// Not sent (no connection), or refused with a body that was not
	// Twilio's JSON (a proxy's error page): try again later.
	se := &channel.SendError{Provider: channel.Twilio, Reason: "No usable answer from Twilio.", Retryable: true}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		se.Reason = "Twilio could not be reached in time."
	}
	return se
}

// reasons are Twilio's refusals a person can act on, by code (see
// docs/wire-templates.md).
var reasons = map[int]string{
	63016: "More than 24 hours since the contact last wrote on WhatsApp: only an approved template can be sent.",
	63003: "The number is not on WhatsApp (Twilio found no WhatsApp account for it).",
	63024: "The number is not a valid WhatsApp recipient.",
	63027: "WhatsApp has no approved template of this name in this language: check the template at Twilio, or wait for its approval.",
	63028: "The template's parameters do not match what the template defines (their number differs): fix the flow or request that fills them, or sync the templates.",
	21655: "Twilio does not know the template's ContentSid (deleted, or another account's): run `parley templates sync`.",
	21656: "Twilio refused the template's ContentVariables: check the parameters.",
}

// Fetch downloads an inbound attachment, with the account's credentials
// when the URL is on Twilio's media host, following its redirect to
// signed storage without them.
func (c *Client) Fetch(ctx context.Context, mediaURL string) (io.ReadCloser, string, error) {
	return c.media.Get(ctx, mediaURL, func(req *http.Request) { req.SetBasicAuth(c.cfg.AccountSID, c.cfg.AuthToken) })
}
