package siren_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/channeltest"
	"github.com/parley-chat/parley/internal/channel/siren"
	"github.com/parley-chat/parley/models"
)

func fake(t *testing.T, status int) (*httptest.Server, *[]map[string]any) {
	t.Helper()
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/public/send-messages" || r.Header.Get("Authorization") != "Bearer key-1" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"data":null,"error":{"errorCode":"UNAUTHORISED","message":"Invalid API key"},"errors":null,"meta":null}`)
			return
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		got = append(got, body)
		if status != 200 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(status)
			fmt.Fprint(w, `{"data":null,"error":{"errorCode":"X","message":"no"},"errors":null,"meta":null}`)
			return
		}
		fmt.Fprint(w, `{"data":{"notificationId":"n-1"},"error":null,"errors":null,"meta":null}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

func TestClient_Send(t *testing.T) {
	srv, got := fake(t, 200)
	c, _ := siren.NewClient(siren.Config{APIKey: "key-1", BaseURL: srv.URL})
	id, err := c.Send(context.Background(), channel.Outbound{To: "whatsapp:+919876543210", Body: "hi"})
	if err != nil || id != "n-1" {
		t.Fatalf("Send = %q, %v", id, err)
	}
	if (*got)[0]["channel"] != "WHATSAPP" || (*got)[0]["recipient"].(map[string]any)["whatsapp"] != "+919876543210" {
		t.Fatalf("Siren received %v", (*got)[0])
	}
	for status, retry := range map[int]bool{429: true, 503: true, 400: false} {
		srv, _ := fake(t, status)
		c, _ := siren.NewClient(siren.Config{APIKey: "key-1", BaseURL: srv.URL})
		_, err := c.Send(context.Background(), channel.Outbound{To: "+919876543210", Body: "hi"})
		se := channel.AsSendError(err)
		if se == nil || se.Retryable != retry || se.RetryAfter.Seconds() != 7 {
			t.Errorf("HTTP %d: %+v, want retry=%v after 7s", status, se, retry)
		}
	}
}

func TestParse(t *testing.T) {
	in, ok, err := siren.Parse([]byte(`{"event":"message.received","channel":"SMS","message":{"id":"m1","from":"+919876543210","text":"hi","media":[{"type":"image/jpeg","url":"https://x/y.jpg"}]}}`))
	if err != nil || !ok || in.From != "+919876543210" || in.ProviderMessageID != "m1" || len(in.Media) != 1 {
		t.Fatalf("Parse = %+v %v %v", in, ok, err)
	}
}

func TestClient_CheckStatus(t *testing.T) {
	tests := []struct {
		name   string
		code   int
		body   string
		status models.MessageStatus
		errc   string
		final  bool
		err    bool
	}{
		{"delivered", 200, `{"data":{"notificationId":"n1","status":"DELIVERED"},"error":null}`, models.StatusDelivered, "", false, false},
		{"read, lower case", 200, `{"data":{"status":"read"}}`, models.StatusRead, "", true, false},
		{"failed with a numeric code", 200, `{"data":{"deliveryStatus":"FAILED","errorCode":131026}}`, models.StatusFailed, "131026", true, false},
		{"failed with an error text", 200, `{"data":{"status":"UNDELIVERED","error":"number unreachable"}}`, models.StatusFailed, "number unreachable", true, false},
		{"unknown status", 200, `{"data":{"status":"PROCESSING"}}`, "", "", false, false},
		{"not found", 404, `{"data":null,"error":{"message":"Notification not found"}}`, "", "", true, false},
		{"outage", 503, `{"error":{"message":"down"}}`, "", "", false, true},
		{"not JSON", 200, `<html>`, "", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.EscapedPath() != "/api/v1/public/message-status/n%201" || r.Header.Get("Authorization") != "Bearer key-1" {
					t.Errorf("request %s %s", r.URL.EscapedPath(), r.Header.Get("Authorization"))
				}
				w.WriteHeader(tt.code)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c, _ := siren.NewClient(siren.Config{APIKey: "key-1", BaseURL: srv.URL})
			st, final, err := c.CheckStatus(context.Background(), "n 1")
			if (err != nil) != tt.err || st.Status != tt.status || st.ErrorCode != tt.errc || final != tt.final {
				t.Fatalf("CheckStatus = %+v, final %v, err %v", st, final, err)
			}
		})
	}
}

// The API key goes with media fetches to Siren's own host only.
func TestClient_FetchSendsTheKeyOnlyToSiren(t *testing.T) {
	var auths []string
	media := func(w http.ResponseWriter, r *http.Request) {
		auths = append(auths, r.Host+" "+r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write([]byte("jpeg"))
	}
	api := httptest.NewServer(http.HandlerFunc(media))
	t.Cleanup(api.Close)
	other := httptest.NewServer(http.HandlerFunc(media))
	t.Cleanup(other.Close)
	c, err := siren.NewClient(siren.Config{APIKey: "key-1", BaseURL: api.URL, PrivateHosts: []string{strings.TrimPrefix(other.URL, "http://")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{api.URL + "/media/1.jpg", other.URL + "/media/2.jpg"} {
		body, _, err := c.Fetch(context.Background(), url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		body.Close()
	}
	want := []string{strings.TrimPrefix(api.URL, "http://") + " Bearer key-1", strings.TrimPrefix(other.URL, "http://") + " "}
	if fmt.Sprint(auths) != fmt.Sprint(want) {
		t.Errorf("requests %q, want %q", auths, want)
	}
	port := api.URL[strings.LastIndex(api.URL, ":")+1:]
	if _, _, err := c.Fetch(context.Background(), "http://localhost:"+port+"/media/1.jpg"); channel.AsSendError(err) == nil || channel.AsSendError(err).Retryable {
		t.Errorf("a name resolving to loopback: err = %v, want a permanent refusal", err)
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
			c, err := siren.NewClient(siren.Config{APIKey: "key-1", BaseURL: tt.url, HTTPClient: &http.Client{Timeout: 200 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Send(context.Background(), channel.Outbound{To: "+919876543210", Body: "hi"})
			channeltest.CheckUncertain(t, err, tt.wantUncertain)
		})
	}
}
