package channel

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrPrivateAddress is the refusal to connect to a loopback, private,
// link-local or otherwise non-public address on behalf of a webhook's
// payload.
var ErrPrivateAddress = errors.New("refusing to connect to a non-public address")

// MediaPolicy says where a platform's attachments may be fetched from.
// Webhook payloads name the URLs, so they are not trusted: the platform's
// credentials go only to its own media hosts, and no connection is made to
// a non-public address (checked after DNS resolution, at dial time, so a
// name that resolves differently the second time gains nothing).
type MediaPolicy struct {
	Provider string
	// CredentialHosts get the platform's credentials: a host name
	// ("api.twilio.com"), a host:port, or ".example.com" for any host
	// under example.com. Any other host is fetched without them.
	CredentialHosts []string
	// PrivateHosts (host:port) may resolve to non-public addresses: the
	// API base URLs the operator configured (a sandbox, a test fake).
	PrivateHosts []string
	Timeout      time.Duration // whole download, redirects included (default 2 min)
	// Wrap, when set, wraps the guarded transport (Twilio sends its API
	// host to a configured base URL).
	Wrap func(http.RoundTripper) http.RoundTripper
}

// MediaClient fetches attachments under a MediaPolicy.
type MediaClient struct {
	policy  MediaPolicy
	client  *http.Client
	private map[string]bool
}

// NewMediaClient returns a client that fetches under p.
func NewMediaClient(p MediaPolicy) *MediaClient {
	if p.Timeout <= 0 {
		p.Timeout = 2 * time.Minute
	}
	m := &MediaClient{policy: p, private: map[string]bool{}}
	for _, h := range p.PrivateHosts {
		m.private[strings.ToLower(h)] = true
	}
	t := Transport(64)
	t.Proxy = nil // a proxy would dial on our behalf, past the address check
	t.DialContext = m.dial
	var rt http.RoundTripper = t
	if p.Wrap != nil {
		rt = p.Wrap(rt)
	}
	m.client = &http.Client{Timeout: p.Timeout, Transport: rt, CheckRedirect: m.redirect}
	return m
}

// Get downloads rawURL and returns its body (the caller closes it) and
// content type. authorize adds the platform's credentials; it is applied
// only when the URL's host is one of the credential hosts, over https (or
// to loopback), and a redirect elsewhere or to plain http drops them; a
// credential host named over plain http is refused. Failures are *SendError: retryable when no answer
// came or RetryableStatus, permanent for a refused address or URL.
func (m *MediaClient) Get(ctx context.Context, rawURL string, authorize func(*http.Request)) (io.ReadCloser, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, "", &SendError{Provider: m.policy.Provider, Reason: "The media URL is not an http(s) URL."}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", &SendError{Provider: m.policy.Provider, Reason: "The media URL is not usable."}
	}
	if m.credentialHost(u) {
		if !secureForCredentials(u) {
			return nil, "", &SendError{Provider: m.policy.Provider, Reason: "The media URL is plain http: the platform's credentials go over https only."}
		}
		authorize(req)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrPrivateAddress) {
			return nil, "", &SendError{Provider: m.policy.Provider, Reason: "The media URL points at a private or local address."}
		}
		return nil, "", &SendError{Provider: m.policy.Provider, Reason: "Media download failed.", Retryable: true}
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, "", &SendError{Provider: m.policy.Provider, HTTPStatus: resp.StatusCode, Reason: "Media download refused.",
			Retryable: RetryableStatus(resp.StatusCode)}
	}
	return resp.Body, resp.Header.Get("Content-Type"), nil
}

// redirect follows up to ten redirects, keeping credentials only for the
// platform's own hosts (a platform's media host redirects to signed
// storage URLs, which need none).
func (m *MediaClient) redirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("too many redirects")
	}
	if !m.credentialHost(req.URL) || !secureForCredentials(req.URL) {
		req.Header.Del("Authorization")
	}
	return nil
}

// secureForCredentials reports whether credentials may go to u: over https,
// or over plain http to a loopback host, whose traffic never leaves the
// machine (a test fake, a sidecar the operator configured). Anywhere else
// plain http would show them to every network on the way.
func secureForCredentials(u *url.URL) bool {
	if u.Scheme == "https" {
		return true
	}
	name := strings.ToLower(u.Hostname())
	if name == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(name)
	return err == nil && ip.Unmap().IsLoopback()
}

func (m *MediaClient) credentialHost(u *url.URL) bool {
	host, name := HostOf(u.String()), strings.ToLower(u.Hostname())
	for _, h := range m.policy.CredentialHosts {
		h = strings.ToLower(h)
		switch {
		case h == "":
		case strings.HasPrefix(h, "."):
			if strings.HasSuffix(name, h) {
				return true
			}
		case h == host || h == name:
			return true
		}
	}
	return false
}

// dial connects to addr, refusing non-public addresses unless addr is one
// of the private hosts the operator configured. The check runs on the
// address actually dialled, after resolution.
func (m *MediaClient) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if !m.private[strings.ToLower(addr)] {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return ErrPrivateAddress
			}
			ip, err := netip.ParseAddr(host)
			if err != nil || !Public(ip) {
				return ErrPrivateAddress
			}
			return nil
		}
	}
	return d.DialContext(ctx, network, addr)
}

// cgnat is the carrier-grade NAT range, private in all but name.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Public reports whether ip is a public unicast address: not loopback,
// private, link-local, carrier-grade NAT, unspecified or multicast.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !cgnat.Contains(ip)
}

// HostOf is the host:port of a configured base URL ("" when it has none),
// for MediaPolicy.PrivateHosts and CredentialHosts.
func HostOf(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return ""
	}
	if u.Port() != "" {
		return strings.ToLower(u.Host)
	}
	port := "443"
	if u.Scheme == "http" {
		port = "80"
	}
	return strings.ToLower(net.JoinHostPort(u.Hostname(), port))
}
