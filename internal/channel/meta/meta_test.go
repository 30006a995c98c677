package meta_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/channeltest"
	"github.com/parley-chat/parley/internal/channel/meta"
)

// graph is a fake Graph API: messages, media lookup and download, with
// Meta's error bodies.
func graph(t *testing.T, failCode, failStatus int) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	mux := http.NewServeMux()
	authed := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer token-1" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190,"fbtrace_id":"A"}}`)
			return false
		}
		return true
	}
	mux.HandleFunc("POST /v21.0/123/messages", func(w http.ResponseWriter, r *http.Request) {
		if !authed(w, r) {
			return
		}
		var body struct {
			MessagingProduct string `json:"messaging_product"`
			To, Type         string
			Text             struct{ Body string }
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.MessagingProduct != "whatsapp" || body.To != "919876543210" || body.Text.Body == "" {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100}}`)
			return
		}
		if failCode != 0 {
			w.WriteHeader(failStatus)
			fmt.Fprintf(w, `{"error":{"message":"failure","type":"OAuthException","code":%d,"error_data":{"details":"x"},"fbtrace_id":"B"}}`, failCode)
			return
		}
		fmt.Fprint(w, `{"messaging_product":"whatsapp","contacts":[{"input":"919876543210","wa_id":"919876543210"}],"messages":[{"id":"wamid.OUT1"}]}`)
	})
	mux.HandleFunc("GET /v21.0/media-1", func(w http.ResponseWriter, r *http.Request) {
		if !authed(w, r) {
			return
		}
		fmt.Fprintf(w, `{"url":"%s/download/media-1","mime_type":"audio/ogg","sha256":"x","file_size":4,"id":"media-1","messaging_product":"whatsapp"}`, srv.URL)
	})
	mux.HandleFunc("GET /download/media-1", func(w http.ResponseWriter, r *http.Request) {
		if !authed(w, r) {
			return
		}
		w.Header().Set("Content-Type", "audio/ogg")
		fmt.Fprint(w, "OggS")
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func client(t *testing.T, srv *httptest.Server) *meta.Client {
	t.Helper()
	c, err := meta.NewClient(meta.Config{AccessToken: "token-1", PhoneNumberID: "123", BaseURL: srv.URL + "/v21.0"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClient_Send(t *testing.T) {
	id, err := client(t, graph(t, 0, 0)).Send(context.Background(), channel.Outbound{To: "whatsapp:+919876543210", Body: "hello"})
	if err != nil || id != "wamid.OUT1" {
		t.Fatalf("Send = %q, %v", id, err)
	}
	tests := []struct {
		code, status int
		retry        bool
		window       bool
		throttled    bool // refused for the rate: the sender slows down, the message waits
	}{
		{131047, 400, false, true, false},
		{131026, 400, false, false, false},
		{130429, 400, true, false, true},
		{131056, 400, true, false, true},
		{80007, 400, true, false, true},
		{4, 429, true, false, true},
		{1, 500, true, false, false},
		{100, 400, false, false, false},
	}
	for _, tt := range tests {
		_, err := client(t, graph(t, tt.code, tt.status)).Send(context.Background(), channel.Outbound{To: "whatsapp:+919876543210", Body: "hello"})
		se := channel.AsSendError(err)
		if se == nil || se.Code != fmt.Sprint(tt.code) || se.Retryable != tt.retry || se.Window != tt.window || se.Throttled != tt.throttled || se.Reason == "" {
			t.Errorf("code %d: %+v, want retry=%v window=%v throttled=%v", tt.code, se, tt.retry, tt.window, tt.throttled)
		}
	}
	bad, _ := meta.NewClient(meta.Config{AccessToken: "expired", PhoneNumberID: "123", BaseURL: graph(t, 0, 0).URL + "/v21.0"})
	_, err = bad.Send(context.Background(), channel.Outbound{To: "+919876543210", Body: "x"})
	if se := channel.AsSendError(err); se == nil || se.Code != "190" || se.Retryable {
		t.Errorf("expired token: %+v, want permanent 190", se)
	}
}

func TestClient_FetchLooksUpTheMediaID(t *testing.T) {
	body, ct, err := client(t, graph(t, 0, 0)).Fetch(context.Background(), "media-1")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	data, _ := io.ReadAll(body)
	if string(data) != "OggS" || ct != "audio/ogg" {
		t.Fatalf("Fetch = %q %q", data, ct)
	}
}

func TestVerifySignature(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account"}`)
	// sha256=HMAC-SHA256("secret", body), computed independently.
	const want = "sha256=3ba5a64ba1da3e5e9b7a8bfa9a1ea8b0e2c9b2cb2c0e3f93b3e1f5c3b7a6e1d0"
	if meta.VerifySignature("secret", body, want) {
		t.Fatal("a made-up signature verified")
	}
	if meta.VerifySignature("", body, want) || meta.VerifySignature("secret", body, "sha1=abc") || meta.VerifySignature("secret", body, "sha256=zz") {
		t.Fatal("a malformed signature verified")
	}
}

func TestClient_SendTimeoutsAfterTheRequestAreUncertain(t *testing.T) {
	tests := []struct {
		label         string
		url           string
		wantUncertain bool
	}{
		{"took the request, then no answer", channeltest.Stalling(t, false), true},
		{"a success status, then the body hung", channeltest.Stalling(t, true), true},
		{"no connection at all", channeltest.Closed(t), false},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			c, err := meta.NewClient(meta.Config{AccessToken: "token-1", PhoneNumberID: "123", BaseURL: tt.url + "/v21.0",
				HTTPClient: &http.Client{Timeout: 200 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Send(context.Background(), channel.Outbound{To: "whatsapp:+919876543210", Body: "hi"})
			channeltest.CheckUncertain(t, err, tt.wantUncertain)
		})
	}
}
