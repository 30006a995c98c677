package twilio_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/channeltest"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
)

// Twilio's documented vector: auth token 12345, this URL and these params.
var (
	vectorURL    = "https://mycompany.com/myapp.php?foo=1&bar=2"
	vectorParams = map[string]string{
		"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030", "To": "+18005551212",
	}
	vectorSignature = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
)

func TestSign_MatchesTwiliosDocumentedVector(t *testing.T) {
	if got := twiliotest.Sign("12345", vectorURL, vectorParams); got != vectorSignature {
		t.Fatalf("Sign = %q, want %q", got, vectorSignature)
	}
}

func TestVerifier_UsesThePublicURLNeverTheHost(t *testing.T) {
	v := twilio.NewVerifier("https://mycompany.com/", "12345")
	if !v.Verify("/myapp.php", "foo=1&bar=2", vectorParams, vectorSignature) {
		t.Fatal("the documented vector did not verify")
	}
	tests := map[string]struct {
		path, query string
		params      map[string]string
		sig         string
	}{
		"no signature":    {"/myapp.php", "foo=1&bar=2", vectorParams, ""},
		"other query":     {"/myapp.php", "foo=1&bar=3", vectorParams, vectorSignature},
		"other path":      {"/other.php", "foo=1&bar=2", vectorParams, vectorSignature},
		"changed param":   {"/myapp.php", "foo=1&bar=2", map[string]string{"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "9999", "From": "+12349013030", "To": "+18005551212"}, vectorSignature},
		"other token sig": {"/myapp.php", "foo=1&bar=2", vectorParams, twiliotest.Sign("54321", vectorURL, vectorParams)},
	}
	for name, tt := range tests {
		if v.Verify(tt.path, tt.query, tt.params, tt.sig) {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestSign_SortsKeysBytewise(t *testing.T) {
	params := map[string]string{"ReasonConferenceEnded": "a", "Reason": "b"}
	// Bytewise, "Reason" sorts before "ReasonConferenceEnded".
	want := twiliotest.Sign("t", "https://x/y", map[string]string{"Reason": "b", "ReasonConferenceEnded": "a"})
	if got := twiliotest.Sign("t", "https://x/y", params); got != want {
		t.Fatal("signature depends on map order")
	}
	v := twilio.NewVerifier("https://x", "t")
	if !v.Verify("/y", "", params, want) {
		t.Fatal("twilio-go's validator disagrees with the independent signer")
	}
}

func TestParseMessage(t *testing.T) {
	in, err := twilio.ParseMessage(map[string]string{
		"MessageSid": "MM1", "From": "whatsapp:+919876543210", "To": "whatsapp:+14155238886", "Body": "hi",
		"ProfileName": "Asha", "NumMedia": "2", "MediaUrl0": "https://api.twilio.com/m0", "MediaContentType0": "image/jpeg",
		"MediaUrl1": "https://api.twilio.com/m1", "MediaContentType1": "audio/ogg",
	})
	if err != nil || in.ProviderMessageID != "MM1" || in.ProfileName != "Asha" || len(in.Media) != 2 || in.Media[1].ContentType != "audio/ogg" {
		t.Fatalf("ParseMessage = %+v, %v", in, err)
	}
	for name, form := range map[string]map[string]string{
		"no sid":           {"From": "+1"},
		"no from":          {"MessageSid": "SM1"},
		"bad NumMedia":     {"MessageSid": "SM1", "From": "+1", "NumMedia": "x"},
		"too many media":   {"MessageSid": "SM1", "From": "+1", "NumMedia": "11"},
		"missing MediaUrl": {"MessageSid": "SM1", "From": "+1", "NumMedia": "1"},
	} {
		if _, err := twilio.ParseMessage(form); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestClient_KeepsConnectionsAliveUnderLoad sends from many goroutines at
// once, as the send workers do: connections are reused, not redialled
// (and, against the real API, renegotiated) for most sends.
func TestClient_KeepsConnectionsAliveUnderLoad(t *testing.T) {
	api := twiliotest.NewAPI("AC00000000000000000000000000000001", "token")
	defer api.Close()
	c, err := twilio.NewClient(twilio.Config{AccountSID: api.AccountSID, AuthToken: api.AuthToken, From: "+15005550006", APIBaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 20, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := c.Send(context.Background(), channel.Outbound{To: "+14155550100", Body: fmt.Sprintf("m%d-%d", w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(api.Sent()); n != workers*each {
		t.Fatalf("%d sent", n)
	}
	// About one per worker; Go may dial a spare while a connection frees
	// up. Go's default transport keeps two and dials over a hundred here.
	if n := api.Conns(); n > 2*workers {
		t.Fatalf("%d connections for %d sends from %d workers: want about one per worker", n, workers*each, workers)
	}
}

// Twilio's 429 (20429) is told apart as a rate limit, with the wait its
// Retry-After asks for, so the pipeline slows down rather than failing.
func TestClient_RateLimitIsThrottledWithItsRetryAfter(t *testing.T) {
	api := twiliotest.NewAPI("AC00000000000000000000000000000001", "token")
	defer api.Close()
	api.MaxConcurrent, api.RetryAfter = 1, 7
	c, err := twilio.NewClient(twilio.Config{AccountSID: api.AccountSID, AuthToken: api.AuthToken, From: "+15005550006", APIBaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	api.Delay = time.Second // the first holds the one call allowed
	go func() { _, _ = c.Send(context.Background(), channel.Outbound{To: "+14155550100", Body: "first"}) }()
	for api.InFlight() == 0 {
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
	_, err = c.Send(context.Background(), channel.Outbound{To: "+14155550101", Body: "second"})
	se := channel.AsSendError(err)
	if se == nil || !se.Throttled || !se.Retryable || se.Code != "20429" || se.RetryAfter != 7*time.Second || se.Uncertain {
		t.Fatalf("a 429: %+v, want throttled 20429 with Retry-After 7s", se)
	}
}

// Media URLs come from webhook payloads: the account's credentials go to
// Twilio's API host only, never to another host a payload or a redirect
// names, and nothing on a private address is fetched.
func TestClient_FetchSendsCredentialsOnlyToTwilio(t *testing.T) {
	api := twiliotest.NewAPI("AC00000000000000000000000000000001", "secrettoken123")
	t.Cleanup(api.Close)
	var mu sync.Mutex
	var auths []string
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write([]byte("stored"))
	}))
	t.Cleanup(storage.Close)
	storageHost := strings.TrimPrefix(storage.URL, "http://")
	c, err := twilio.NewClient(twilio.Config{AccountSID: api.AccountSID, AuthToken: api.AuthToken, From: "+15005550006",
		APIBaseURL: api.URL, PrivateHosts: []string{storageHost}})
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(url string) (string, error) {
		body, _, err := c.Fetch(context.Background(), url)
		if err != nil {
			return "", err
		}
		defer body.Close()
		b, _ := io.ReadAll(body)
		return string(b), nil
	}

	if got, err := fetch(api.AddMedia("a.jpg", []byte("jpeg"))); err != nil || got != "jpeg" {
		t.Fatalf("from Twilio's host: %q, %v", got, err)
	}
	if got, err := fetch(api.AddRedirect("b.jpg", storage.URL+"/signed/b.jpg?sig=1")); err != nil || got != "stored" {
		t.Fatalf("through Twilio's redirect to storage: %q, %v", got, err)
	}
	if got, err := fetch(storage.URL + "/elsewhere.jpg"); err != nil || got != "stored" {
		t.Fatalf("from a foreign host: %q, %v", got, err)
	}
	mu.Lock()
	if len(auths) != 2 || auths[0] != "" || auths[1] != "" {
		t.Errorf("the other host got Authorization %q, want none both times", auths)
	}
	mu.Unlock()

	port := api.URL[strings.LastIndex(api.URL, ":")+1:]
	for _, url := range []string{"http://localhost:" + port + "/media/a.jpg", api.AddRedirect("c.jpg", "http://localhost:"+port+"/media/a.jpg")} {
		_, err := fetch(url)
		if se := channel.AsSendError(err); se == nil || se.Retryable {
			t.Errorf("%s: err = %v, want a permanent refusal of the loopback address", url, err)
		}
	}
}

func TestClient_SendTimeoutAfterTwilioTookTheRequestIsUncertain(t *testing.T) {
	api := twiliotest.NewAPI("AC00000000000000000000000000000001", "secrettoken123")
	t.Cleanup(api.Close)
	for _, tt := range []struct {
		label         string
		base          string
		wantUncertain bool
	}{
		{"took the request, then no answer", api.URL, true},
		{"no connection at all", channeltest.Closed(t), false},
	} {
		t.Run(tt.label, func(t *testing.T) {
			api.FailNext(twiliotest.AcceptThenStall)
			c, err := twilio.NewClient(twilio.Config{AccountSID: api.AccountSID, AuthToken: api.AuthToken, From: "+15005550006",
				APIBaseURL: tt.base, Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Send(context.Background(), channel.Outbound{To: "+919876543210", Body: "hi"})
			channeltest.CheckUncertain(t, err, tt.wantUncertain)
		})
	}
}

// Lookup finds what Twilio holds of a send: the messages from this sender
// to the contact saying the same, created since the attempt; nothing else.
func TestClient_LookupFindsTheSendAtTwilio(t *testing.T) {
	api := twiliotest.NewAPI("AC00000000000000000000000000000001", "token")
	defer api.Close()
	c, err := twilio.NewClient(twilio.Config{AccountSID: api.AccountSID, AuthToken: api.AuthToken, From: "+15005550006", APIBaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now().Add(-time.Second)
	var want string
	for _, m := range []channel.Outbound{{To: "+14155550100", Body: "What is your name?"}, {To: "+14155550100", Body: "Something else"},
		{To: "whatsapp:+14155550199", Body: "What is your name?"}} {
		sid, err := c.Send(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if want == "" {
			want = sid
		}
	}
	got, err := c.Lookup(ctx, channel.Outbound{To: "+14155550100", Body: "What is your name?"}, start)
	if err != nil || len(got) != 1 || got[0] != want {
		t.Fatalf("Lookup = %v, %v; want [%s]", got, err, want)
	}
	if got, err := c.Lookup(ctx, channel.Outbound{To: "+14155550100", Body: "What is your name?"}, time.Now().Add(time.Hour)); err != nil || len(got) != 0 {
		t.Fatalf("Lookup of a later attempt = %v, %v; want nothing", got, err)
	}
	if got, err := c.Lookup(ctx, channel.Outbound{To: "+14155550111", Body: "What is your name?"}, start); err != nil || len(got) != 0 {
		t.Fatalf("Lookup for another contact = %v, %v; want nothing", got, err)
	}
}

// An answer larger than any page of messages is not read whole.
func TestClient_LookupReadsABoundedAnswer(t *testing.T) {
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"messages":[{"body":"`)
		chunk := strings.Repeat("x", 64<<10)
		for range 64 { // 4 MiB
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `"}]}`)
	}))
	defer huge.Close()
	c, err := twilio.NewClient(twilio.Config{AccountSID: "AC00000000000000000000000000000001", AuthToken: "token", From: "+15005550006",
		APIBaseURL: huge.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(context.Background(), channel.Outbound{To: "+14155550100", Body: "hi"}, time.Now()); err == nil {
		t.Fatal("a 4 MiB answer was read whole")
	}
}

// The sender's number may be configured as whatsapp:+1… or +1…: an SMS
// goes from the plain number and a WhatsApp message from its whatsapp:
// form either way (Twilio refuses a pair of two channels, 21910).
func TestClient_FromFollowsTheChannel(t *testing.T) {
	for _, from := range []string{"+15005550006", "whatsapp:+15005550006"} {
		api := twiliotest.NewAPI("AC00000000000000000000000000000001", "token")
		c, err := twilio.NewClient(twilio.Config{AccountSID: api.AccountSID, AuthToken: api.AuthToken, From: from, APIBaseURL: api.URL})
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range []string{"+14155550100", "whatsapp:+14155550100"} {
			if _, err := c.Send(context.Background(), channel.Outbound{To: to, Body: "hi"}); err != nil {
				t.Fatalf("from %s to %s: %v", from, to, err)
			}
		}
		sent := api.Sent()
		if len(sent) != 2 || sent[0].From != "+15005550006" || sent[1].From != "whatsapp:+15005550006" {
			t.Fatalf("configured %s: Twilio took %+v", from, sent)
		}
		api.Close()
	}
}
