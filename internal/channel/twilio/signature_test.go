package twilio_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"

	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
)

// randText is a string of n runes drawn from ASCII, form punctuation and
// a few multi-byte letters, as Twilio's form values hold.
func randText(r *rand.Rand, n int) string {
	const alphabet = "abcXYZ019 +-_.:/=&?%#@!'\"\\\t\n"
	extra := []string{"é", "ह", "🙂", "\x00", "\xff"}
	var b strings.Builder
	for range n {
		if r.IntN(8) == 0 {
			b.WriteString(extra[r.IntN(len(extra))])
		} else {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
	}
	return b.String()
}

// TestVerifier_AcceptsWhatTwilioGoAccepts holds the verifier to twilio-go's
// own RequestValidator over many random requests: the same answer for a
// signature over the URL as configured, over the URL with its port added
// or removed, over another URL, with another token and tampered.
func TestVerifier_AcceptsWhatTwilioGoAccepts(t *testing.T) {
	bases := []string{"https://parley.example.org", "https://parley.example.org:443", "http://127.0.0.1:8080",
		"https://p.example.org:8443/prefix", "http://localhost", "https://p.example.org/a%20b"}
	paths := []string{"/webhooks/twilio", "/webhooks/twilio/status", "/webhooks/twilio/"}
	queries := []string{"", "a=1", "x=%20y&z=%E2%82%AC", "sig=abc&n=2"}
	r := rand.New(rand.NewPCG(21, 2026))
	accepted := 0
	for i := range 3000 {
		base, path, query := bases[r.IntN(len(bases))], paths[r.IntN(len(paths))], queries[r.IntN(len(queries))]
		token := randText(r, 1+r.IntN(40))
		params := map[string]string{}
		for range r.IntN(25) {
			params[randText(r, 1+r.IntN(12))] = randText(r, r.IntN(60))
		}
		full := base + path
		if query != "" {
			full += "?" + query
		}
		signed := []string{full, base + ":443" + path, strings.Replace(full, ":443", "", 1),
			strings.Replace(full, ":8080", "", 1), strings.Replace(full, "http://localhost", "http://localhost:80", 1), full + "x"}
		signer := token
		if r.IntN(6) == 0 {
			signer = token + "x"
		}
		sig := twiliotest.Sign(signer, signed[r.IntN(len(signed))], params)
		switch r.IntN(8) {
		case 0:
			sig = sig[:len(sig)-2] + "AA"
		case 1:
			sig = ""
		}
		want := client.NewRequestValidator(token)
		got := twilio.NewVerifier(base, token).Verify(path, query, params, sig)
		if exp := want.Validate(full, params, sig); got != exp {
			t.Fatalf("case %d: Verify = %v, twilio-go = %v (base %q path %q query %q, %d params)", i, got, exp, base, path, query, len(params))
		}
		if got {
			accepted++
		}
	}
	if accepted < 500 || accepted > 2500 {
		t.Fatalf("%d of 3000 accepted: the cases do not exercise both answers", accepted)
	}
}

// twilioForm is an inbound WhatsApp message's form as Twilio posts it.
func twilioForm() map[string]string {
	return map[string]string{
		"SmsMessageSid": "SM0123456789abcdef0123456789abcdef", "NumMedia": "0", "ProfileName": "Asha",
		"MessageType": "text", "SmsSid": "SM0123456789abcdef0123456789abcdef", "WaId": "919876543210",
		"SmsStatus": "received", "Body": "hi, I would like an appointment on Tuesday", "To": "whatsapp:+14155238886",
		"NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": "SM0123456789abcdef0123456789abcdef",
		"AccountSid": "AC0123456789abcdef0123456789abcdef", "From": "whatsapp:+919876543210", "ApiVersion": "2010-04-01",
	}
}

// BenchmarkVerify_TwilioForm is the signature check of one inbound
// message: Parley's verifier against twilio-go's validator on the same.
func BenchmarkVerify_TwilioForm(b *testing.B) {
	const base, path, token = "https://parley.example.org", "/webhooks/twilio", "0123456789abcdef0123456789abcdef"
	params := twilioForm()
	sig := twiliotest.Sign(token, base+path, params)
	b.Run("parley", func(b *testing.B) {
		v := twilio.NewVerifier(base, token)
		b.ReportAllocs()
		for b.Loop() {
			if !v.Verify(path, "", params, sig) {
				b.Fatal("not verified")
			}
		}
	})
	b.Run("twilio-go", func(b *testing.B) {
		v := client.NewRequestValidator(token)
		b.ReportAllocs()
		for b.Loop() {
			if !v.Validate(base+path, params, sig) {
				b.Fatal("not verified")
			}
		}
	})
}
