package channel_test

import (
	"testing"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/models"
)

func TestSanitize_RefusesIDsAndCleansText(t *testing.T) {
	good := channel.Inbound{ProviderMessageID: "SM1", From: "whatsapp:+919876543210", To: "+15005550006", Body: "नमस्ते 🙂", ProfileName: "Asha"}
	for _, tc := range []struct {
		label     string
		change    func(*channel.Inbound)
		wantErr   bool
		body, who string
	}{
		{"good", func(*channel.Inbound) {}, false, "नमस्ते 🙂", "Asha"},
		{"NUL in the id", func(in *channel.Inbound) { in.ProviderMessageID = "SM\x001" }, true, "", ""},
		{"Latin-1 sender", func(in *channel.Inbound) { in.From = "+91\xe9" }, true, "", ""},
		{"NUL in a media type", func(in *channel.Inbound) {
			in.Media = []channel.Media{{Ref: "https://x/1", ContentType: "image/\x00"}}
		}, true, "", ""},
		{"Latin-1 and NUL in the body and name", func(in *channel.Inbound) { in.Body, in.ProfileName = "caf\xe9\x00 at 10", "A\x00sha" }, false, "caf\uFFFD at 10", "Asha"},
	} {
		in := good
		tc.change(&in)
		err := channel.Sanitize(&in)
		if tc.wantErr {
			if models.ErrorCode(err) != models.EINVALID {
				t.Errorf("%s: %v, want EINVALID", tc.label, err)
			}
			continue
		}
		if err != nil || in.Body != tc.body || in.ProfileName != tc.who {
			t.Errorf("%s: %v, body %q, name %q; want %q, %q", tc.label, err, in.Body, in.ProfileName, tc.body, tc.who)
		}
	}
}
