// Package siren is Parley's adapter for Siren: webhook verification (a
// small replaceable function, since Siren's signing scheme is not
// confirmed), inbound parsing, and sending through its public API.
package siren

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/models"
)

// Verifier checks a webhook's signature over its raw body.
type Verifier func(secret string, body []byte, signature string) bool

// VerifyHexHMAC is the default Verifier: X-Siren-Signature is the hex
// HMAC-SHA256 of the raw body, optionally prefixed "sha256=". Siren's exact
// scheme is unconfirmed; swap the Verifier when it is.
func VerifyHexHMAC(secret string, body []byte, signature string) bool {
	if secret == "" || signature == "" {
		return false
	}
	got, err := hex.DecodeString(strings.TrimPrefix(signature, "sha256="))
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

type event struct {
	Event   string `json:"event"`
	Channel string `json:"channel"`
	Message struct {
		ID        string `json:"id"`
		From      string `json:"from"`
		To        string `json:"to"`
		Text      string `json:"text"`
		Timestamp string `json:"timestamp"`
		Media     []struct {
			Type    string `json:"type"`
			URL     string `json:"url"`
			Caption string `json:"caption"`
		} `json:"media"`
	} `json:"message"`
}

// Parse reads a webhook body. ok=false means an event kind Parley ignores.
// The message id dedupes; when a message has none, a hash of the body
// stands in. Only what the signature covers may: an unsigned header (the
// delivery id) would let a captured body be replayed as new under a
// fresh one.
func Parse(body []byte) (in channel.Inbound, ok bool, err error) {
	var e event
	if err := json.Unmarshal(body, &e); err != nil {
		return in, false, models.Errorf(models.EINVALID, "Body is not valid JSON.")
	}
	if e.Event != "message.received" {
		return in, false, nil
	}
	m := e.Message
	id := m.ID
	if id == "" {
		sum := sha256.Sum256(body)
		id = "body:" + hex.EncodeToString(sum[:16])
	}
	if m.From == "" {
		return in, false, models.Errorf(models.EINVALID, "The message lacks its sender.")
	}
	from := m.From
	if strings.EqualFold(e.Channel, "whatsapp") && !strings.HasPrefix(from, "whatsapp:") {
		from = "whatsapp:" + from
	}
	in = channel.Inbound{Provider: channel.Siren, ProviderMessageID: id, From: from, To: m.To, Body: m.Text}
	if t, err := time.Parse(time.RFC3339, m.Timestamp); err == nil {
		t = t.UTC()
		in.Timestamp = &t
	}
	for _, md := range m.Media {
		if md.URL == "" {
			return in, false, models.Errorf(models.EINVALID, "A media item lacks its URL.")
		}
		in.Media = append(in.Media, channel.Media{Ref: md.URL, ContentType: md.Type})
		if in.Body == "" {
			in.Body = md.Caption
		}
	}
	if err := channel.Sanitize(&in); err != nil {
		return in, false, err
	}
	return in, true, nil
}

// Config is what sending through Siren needs.
type Config struct {
	APIKey     string
	BaseURL    string
	HTTPClient *http.Client
	// MaxInFlight sizes the connection pool: the most send calls the
	// pipeline keeps in flight (channel.MaxInFlight when 0).
	MaxInFlight int
	// MediaHosts get the API key when fetching inbound media; the base
	// URL's host always does. Other hosts are fetched without it.
	MediaHosts []string
	// PrivateHosts (host:port) may be fetched from although they resolve
	// to non-public addresses (the base URL's host always may).
	PrivateHosts []string
}

// Client sends through Siren's public API.
type Client struct {
	cfg   Config
	hc    *http.Client
	media *channel.MediaClient
}

// NewClient returns a Siren client.
func NewClient(cfg Config) (*Client, error) {
	if cfg.APIKey == "" || cfg.BaseURL == "" {
		return nil, errors.New("siren: API key and base URL are required")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second, Transport: channel.Transport(cfg.MaxInFlight)}
	}
	base := channel.HostOf(cfg.BaseURL)
	media := channel.NewMediaClient(channel.MediaPolicy{Provider: channel.Siren,
		CredentialHosts: append(slices.Clone(cfg.MediaHosts), base), PrivateHosts: append(slices.Clone(cfg.PrivateHosts), base)})
	return &Client{cfg: cfg, hc: hc, media: media}, nil
}

// Send sends m and returns Siren's notification id.
func (c *Client) Send(ctx context.Context, m channel.Outbound) (string, error) {
	ch, recipient := "SMS", map[string]string{"sms": m.To}
	if number, ok := strings.CutPrefix(m.To, "whatsapp:"); ok {
		ch, recipient = "WHATSAPP", map[string]string{"whatsapp": number}
	}
	buf, _ := json.Marshal(map[string]any{"channel": ch, "recipient": recipient, "body": m.Body})
	ctx, attempt := channel.Trace(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+"/api/v1/public/send-messages", bytes.NewReader(buf))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	resp, err := c.hc.Do(req)
	if err != nil {
		if attempt.Unknown() {
			return "", channel.UncertainSend(channel.Siren, "Siren")
		}
		return "", &channel.SendError{Provider: channel.Siren, Reason: "No answer from Siren.", Retryable: true}
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			NotificationID string `json:"notificationId"`
		} `json:"data"`
	}
	decodeErr := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
	if resp.StatusCode/100 != 2 {
		se := &channel.SendError{Provider: channel.Siren, Code: strconv.Itoa(resp.StatusCode), HTTPStatus: resp.StatusCode,
			Reason:    fmt.Sprintf("Siren refused the message (HTTP %d).", resp.StatusCode),
			Retryable: channel.RetryableStatus(resp.StatusCode)}
		se.RetryAfter = channel.ParseRetryAfter(resp.Header.Get("Retry-After"))
		se.Throttled = resp.StatusCode == http.StatusTooManyRequests
		return "", se
	}
	if decodeErr != nil || out.Data.NotificationID == "" {
		// A success whose body did not arrive whole: accepted, most likely.
		return "", channel.UncertainSend(channel.Siren, "Siren")
	}
	return out.Data.NotificationID, nil
}

// CheckStatus asks Siren for a sent message's delivery status:
// GET /api/v1/public/message-status/{id}.
//
// UNVERIFIED: Siren documents the route but not its answer. This reads the
// envelope its send answer uses, {data: {...}, error, errors, meta}, and
// takes the status from data.status (or data.deliveryStatus), an error
// code from data.errorCode (or data.error), case-insensitively; a status it
// does not know leaves the message as it is.
func (c *Client) CheckStatus(ctx context.Context, id string) (channel.Status, bool, error) {
	st := channel.Status{Provider: channel.Siren, ProviderMessageID: id}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+"/api/v1/public/message-status/"+url.PathEscape(id), nil)
	if err != nil {
		return st, false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	resp, err := c.hc.Do(req)
	if err != nil {
		return st, false, errors.New("siren: no answer to the status request")
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return st, true, nil // Siren does not know it: nothing more to learn
	case resp.StatusCode/100 != 2:
		return st, false, fmt.Errorf("siren: status request answered HTTP %d", resp.StatusCode)
	}
	var out struct {
		Data struct {
			Status         string `json:"status"`
			DeliveryStatus string `json:"deliveryStatus"`
			ErrorCode      any    `json:"errorCode"`
			Error          any    `json:"error"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return st, false, errors.New("siren: the status answer is not JSON")
	}
	raw := out.Data.Status
	if raw == "" {
		raw = out.Data.DeliveryStatus
	}
	switch strings.ToUpper(strings.TrimSpace(raw)) {
	case "SENT", "SUBMITTED", "ACCEPTED":
		st.Status = models.StatusSent
	case "DELIVERED":
		st.Status = models.StatusDelivered
	case "READ", "SEEN":
		st.Status = models.StatusRead
		return st, true, nil
	case "FAILED", "UNDELIVERED", "UNDELIVERABLE", "REJECTED", "ERROR", "EXPIRED":
		st.Status = models.StatusFailed
		for _, v := range []any{out.Data.ErrorCode, out.Data.Error} {
			if s := scalar(v); s != "" {
				st.ErrorCode = s
				break
			}
		}
		return st, true, nil
	}
	return st, false, nil
}

// scalar is a string or number as text; anything else is "".
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

// Fetch downloads an attachment URL, with the API key only when the URL
// is on one of Siren's media hosts.
func (c *Client) Fetch(ctx context.Context, url string) (io.ReadCloser, string, error) {
	return c.media.Get(ctx, url, func(req *http.Request) { req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey) })
}
