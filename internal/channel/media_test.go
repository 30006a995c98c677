package channel_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/channel"
)

// host is a media server that records the Authorization header of each
// request it gets.
type host struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func newHost(t *testing.T, handler func(w http.ResponseWriter, r *http.Request)) *host {
	h := &host{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.auth = append(h.auth, r.Header.Get("Authorization"))
		h.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *host) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.auth...)
}

func (h *host) hostPort() string { return strings.TrimPrefix(h.URL, "http://") }

func serveJPEG(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "image/jpeg")
	_, _ = w.Write([]byte("jpeg"))
}

const secret = "Bearer platform-secret"

func authorize(req *http.Request) { req.Header.Set("Authorization", secret) }

func get(t *testing.T, m *channel.MediaClient, url string) (string, error) {
	t.Helper()
	body, _, err := m.Get(context.Background(), url, authorize)
	if err != nil {
		return "", err
	}
	defer body.Close()
	b, _ := io.ReadAll(body)
	return string(b), nil
}

func TestMediaClient_CredentialsOnlyToThePlatformsHosts(t *testing.T) {
	// Two servers on loopback stand for the platform's media host and a
	// foreign one; both may be dialled here (PrivateHosts), so what is
	// tested is where the credentials go.
	foreign := newHost(t, serveJPEG)
	platform := newHost(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, foreign.URL+"/signed-storage/x.jpg", http.StatusTemporaryRedirect)
			return
		}
		serveJPEG(w, r)
	})
	m := channel.NewMediaClient(channel.MediaPolicy{Provider: "test",
		CredentialHosts: []string{platform.hostPort()}, PrivateHosts: []string{platform.hostPort(), foreign.hostPort()}})

	if body, err := get(t, m, platform.URL+"/media/x.jpg"); err != nil || body != "jpeg" {
		t.Fatalf("from the platform's host: %q, %v", body, err)
	}
	if got := platform.seen(); len(got) != 1 || got[0] != secret {
		t.Errorf("the platform's host got Authorization %q, want its credentials", got)
	}
	if _, err := get(t, m, foreign.URL+"/media/x.jpg"); err != nil {
		t.Fatalf("from a foreign host: %v", err)
	}
	if _, err := get(t, m, platform.URL+"/redirect"); err != nil {
		t.Fatalf("through a redirect: %v", err)
	}
	if got := foreign.seen(); len(got) != 2 || got[0] != "" || got[1] != "" {
		t.Errorf("the foreign host got Authorization %q (a URL naming it, then a redirect to it), want none", got)
	}
}

func TestMediaClient_RefusesNonPublicAddresses(t *testing.T) {
	local := newHost(t, serveJPEG)
	port := local.URL[strings.LastIndex(local.URL, ":")+1:]
	// The platform's configured host is the only one allowed on loopback.
	platform := newHost(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:"+port+"/x.jpg", http.StatusFound)
	})
	m := channel.NewMediaClient(channel.MediaPolicy{Provider: "test",
		CredentialHosts: []string{"localhost", platform.hostPort()}, PrivateHosts: []string{platform.hostPort()}})
	tests := []struct{ label, url string }{
		{"a name resolving to 127.0.0.1", "http://localhost:" + port + "/x.jpg"},
		{"a loopback address", local.URL + "/x.jpg"},
		{"the cloud metadata address", "http://169.254.169.254/computeMetadata/v1/"},
		{"a private address", "http://10.0.0.1/x.jpg"},
		{"the unspecified address", "http://0.0.0.0:" + port + "/x.jpg"},
		{"IPv6 loopback", "http://[::1]:" + port + "/x.jpg"},
		{"a redirect from the platform to loopback", platform.URL + "/go"},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			_, err := get(t, m, tt.url)
			se := channel.AsSendError(err)
			if se == nil || se.Retryable || !strings.Contains(se.Reason, "private or local address") {
				t.Fatalf("err = %v, want a permanent refusal of the address", err)
			}
		})
	}
	if got := local.seen(); len(got) != 0 {
		t.Errorf("the loopback server was reached %d times", len(got))
	}
	for _, bad := range []string{"file:///etc/passwd", "ftp://example.org/x", "not a url"} {
		if _, err := get(t, m, bad); channel.AsSendError(err) == nil || channel.AsSendError(err).Retryable {
			t.Errorf("%q: err = %v, want a permanent refusal", bad, err)
		}
	}
}

func TestPublic(t *testing.T) {
	tests := map[string]bool{
		"8.8.8.8": true, "2001:4860:4860::8888": true, "151.101.1.69": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "::1": false, "fe80::1": false, "fc00::1": false, "224.0.0.1": false,
		"::ffff:127.0.0.1": false, "::ffff:8.8.8.8": true,
	}
	for addr, want := range tests {
		if got := channel.Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

// Credentials go over https only (or to loopback, which never leaves the
// machine): a credential host named over plain http is refused before
// anything is sent, and a redirect to plain http drops them.
func TestMediaClient_CredentialsOnlyOverHTTPS(t *testing.T) {
	// media.example.test stands for a platform's media host on the
	// network: the transport takes its requests to a loopback fake, which
	// records what would have crossed the wire.
	const remote = "media.example.test"
	wire := newHost(t, serveJPEG)
	platform := newHost(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+remote+"/signed/x.jpg", http.StatusFound)
	})
	m := channel.NewMediaClient(channel.MediaPolicy{Provider: "test",
		CredentialHosts: []string{remote, platform.hostPort()}, PrivateHosts: []string{wire.hostPort(), platform.hostPort()},
		Wrap: func(rt http.RoundTripper) http.RoundTripper {
			return roundTripper(func(r *http.Request) (*http.Response, error) {
				if r.URL.Hostname() == remote {
					r = r.Clone(r.Context())
					r.URL.Host = wire.hostPort()
				}
				return rt.RoundTrip(r)
			})
		}})

	_, err := get(t, m, "http://"+remote+"/media/x.jpg")
	if se := channel.AsSendError(err); se == nil || se.Retryable || !strings.Contains(se.Reason, "https only") {
		t.Fatalf("a credential host over plain http: err = %v, want a permanent refusal", err)
	}
	if got := wire.seen(); len(got) != 0 {
		t.Fatalf("the refused request reached the host %d times", len(got))
	}
	if body, err := get(t, m, platform.URL+"/media/x.jpg"); err != nil || body != "jpeg" {
		t.Fatalf("through a redirect to plain http: %q, %v", body, err)
	}
	if got := platform.seen(); len(got) != 1 || got[0] != secret {
		t.Errorf("the loopback platform host got Authorization %q, want its credentials", got)
	}
	if got := wire.seen(); len(got) != 1 || got[0] != "" {
		t.Errorf("the redirect over plain http carried Authorization %q, want none", got)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
