package meta

import (
	"bytes"
	"context"
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

// Config is what sending through the Cloud API needs.
type Config struct {
	AccessToken   string
	PhoneNumberID string
	BaseURL       string // Graph API base with version, e.g. https://graph.facebook.com/v21.0
	HTTPClient    *http.Client
	// MaxInFlight sizes the connection pool: the most send calls the
	// pipeline keeps in flight (channel.MaxInFlight when 0).
	MaxInFlight int
	// MediaHosts get the access token when downloading the URL a media
	// lookup answers with (DefaultMediaHosts when empty; the base URL's
	// host always).
	MediaHosts []string
	// PrivateHosts (host:port) may be fetched from although they resolve
	// to non-public addresses (the base URL's host always may).
	PrivateHosts []string
	// WABAID is the WhatsApp Business Account whose templates are synced
	// ("" skips Meta in a sync).
	WABAID string
	// Templates, when set, is the registry a template send is checked
	// against before calling the API (unknown to it: the API judges).
	Templates channel.Templates
}

// DefaultMediaHosts are where the Graph API's media URLs point.
var DefaultMediaHosts = []string{"lookaside.fbsbx.com"}

// Client sends messages and fetches media through the Graph API.
type Client struct {
	cfg   Config
	hc    *http.Client
	media *channel.MediaClient
}

// NewClient returns a Cloud API client.
func NewClient(cfg Config) (*Client, error) {
	if cfg.AccessToken == "" || cfg.PhoneNumberID == "" || cfg.BaseURL == "" {
		return nil, errors.New("meta: access token, phone number id and base URL are required")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second, Transport: channel.Transport(cfg.MaxInFlight)}
	}
	hosts := cfg.MediaHosts
	if len(hosts) == 0 {
		hosts = DefaultMediaHosts
	}
	base := channel.HostOf(cfg.BaseURL)
	media := channel.NewMediaClient(channel.MediaPolicy{Provider: channel.Meta,
		CredentialHosts: append(slices.Clone(hosts), base), PrivateHosts: append(slices.Clone(cfg.PrivateHosts), base)})
	return &Client{cfg: cfg, hc: hc, media: media}, nil
}

type apiError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	} `json:"error"`
}

// Send sends a text message, or the approved template m names, and
// returns its wamid.
func (c *Client) Send(ctx context.Context, m channel.Outbound) (string, error) {
	to := strings.TrimPrefix(strings.TrimPrefix(m.To, "whatsapp:"), "+")
	body := map[string]any{"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
		"text": map[string]any{"body": m.Body}}
	switch {
	case m.Template != nil:
		if c.cfg.Templates != nil {
			if _, _, se := channel.CheckTemplate(ctx, c.cfg.Templates, channel.Meta, m.Template); se != nil {
				return "", se
			}
		}
		body["type"], body["template"] = "template", templateObject(m.Template)
		delete(body, "text")
	case m.MediaURL != "":
		body["type"], body["image"] = "image", map[string]any{"link": m.MediaURL, "caption": m.Body}
		delete(body, "text")
	}
	buf, _ := json.Marshal(body)
	ctx, attempt := channel.Trace(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+"/"+c.cfg.PhoneNumberID+"/messages", bytes.NewReader(buf))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(req)
	if err != nil {
		if se := channel.AsSendError(err); se != nil && se.HTTPStatus == 0 && attempt.Unknown() {
			return "", channel.UncertainSend(channel.Meta, "The Cloud API")
		}
		return "", err
	}
	defer resp.Body.Close()
	var ok struct {
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ok); err != nil || len(ok.Messages) == 0 || ok.Messages[0].ID == "" {
		// A success whose body did not arrive whole: accepted, most likely.
		return "", channel.UncertainSend(channel.Meta, "The Cloud API")
	}
	return ok.Messages[0].ID, nil
}

// templateObject is a send's "template": its name, language and body
// parameters; named parameters carry parameter_name.
func templateObject(ref *models.TemplateRef) map[string]any {
	t := map[string]any{"name": ref.Name, "language": map[string]any{"code": ref.Language}}
	keys, numbered := channel.OrderedParams(ref.Params)
	if len(keys) == 0 {
		return t
	}
	params := make([]map[string]any, len(keys))
	for i, k := range keys {
		params[i] = map[string]any{"type": "text", "text": ref.Params[k]}
		if !numbered {
			params[i]["parameter_name"] = k
		}
	}
	t["components"] = []map[string]any{{"type": "body", "parameters": params}}
	return t
}

// do sends req with the bearer token and turns error answers into
// *channel.SendError.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+c.cfg.AccessToken)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, &channel.SendError{Provider: channel.Meta, Reason: "No answer from the Cloud API.", Retryable: true}
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var ae apiError
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ae)
	return nil, classify(resp.StatusCode, ae.Error.Code, resp.Header.Get("Retry-After"))
}

func classify(status, code int, retryAfter string) *channel.SendError {
	se := &channel.SendError{Provider: channel.Meta, Code: strconv.Itoa(code), HTTPStatus: status,
		Reason: fmt.Sprintf("The Cloud API refused the message (error %d).", code)}
	se.RetryAfter = channel.ParseRetryAfter(retryAfter)
	if reason, ok := reasons[code]; ok {
		se.Reason = reason
	}
	switch {
	case code == 131047:
		se.Window = true
	case code == 130429 || code == 80007 || code == 131056 || status == http.StatusTooManyRequests:
		se.Retryable, se.Throttled = true, true
		se.Reason = "The Cloud API is rate limiting this number."
	case status >= 500 || status == 0:
		se.Retryable = true
	}
	return se
}

// reasons are the Cloud API's refusals a person can act on, by code (see
// docs/wire-templates.md).
var reasons = map[int]string{
	131047: "More than 24 hours since the contact last wrote on WhatsApp: only an approved template can be sent.",
	131026: "The message could not be delivered to this number (not on WhatsApp, or an old app).",
	190:    "The WhatsApp access token expired or was revoked: set a new PARLEY_META_ACCESS_TOKEN.",
	132000: "The template's parameters do not match what WhatsApp approved (their number differs): fix the flow or request that fills them, or sync the templates.",
	132001: "WhatsApp has no approved template of this name in this language: check its name and language, or wait for its approval.",
	132005: "The template's text with its parameters filled in is too long.",
	132012: "A template parameter is not in the format WhatsApp approved.",
	132015: "The template is paused by WhatsApp for its low quality rating: edit it or use another.",
	132016: "The template is disabled by WhatsApp (paused too often): use another.",
}

// Fetch downloads an attachment: it looks up the media id for a short-lived
// URL, then downloads that with the same token.
func (c *Client) Fetch(ctx context.Context, mediaID string) (io.ReadCloser, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+"/"+url.PathEscape(mediaID), nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, "", err
	}
	var meta struct {
		URL      string `json:"url"`
		MimeType string `json:"mime_type"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&meta)
	resp.Body.Close()
	if err != nil || meta.URL == "" {
		return nil, "", &channel.SendError{Provider: channel.Meta, Reason: "The media lookup gave no URL.", Retryable: true}
	}
	// The URL comes from Meta's own answer, but the token still goes only
	// to Meta's media hosts.
	body, ct, err := c.media.Get(ctx, meta.URL, func(req *http.Request) { req.Header.Set("Authorization", "Bearer "+c.cfg.AccessToken) })
	if err != nil {
		return nil, "", err
	}
	if ct == "" {
		ct = meta.MimeType
	}
	return body, ct, nil
}
