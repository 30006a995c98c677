package phone_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/phone"
	"github.com/parley-chat/parley/models"
)

func TestNormalize_AcceptsHowPeopleTypeNumbers(t *testing.T) {
	in := phone.New("IN")
	tests := []struct {
		name, input, want string
	}{
		{"E.164", "+919876543210", "+919876543210"},
		{"spaced international", "+91 98765 43210", "+919876543210"},
		{"trunk zero", "098765 43210", "+919876543210"},
		{"national", "98765-43210", "+919876543210"},
		{"00 prefix", "0091 98765 43210", "+919876543210"},
		{"whatsapp address", "whatsapp:+919876543210", "+919876543210"},
		{"tel URI", "tel:+1-415-555-0100", "+14155550100"},
		{"brackets and dots", "+1 (415) 555.0100", "+14155550100"},
		{"Devanagari digits", "+९१ ९८७६५ ४३२१०", "+919876543210"},
		{"UK", "+44 20 7946 0958", "+442079460958"},
		{"Tamil digits", "௦௯௮௭௬௫ ௪௩௨௧௦", "+919876543210"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := in.Normalize(tt.input)
			if err != nil || got != tt.want {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.input, got, err, tt.want)
			}
		})
	}
}

func TestNormalize_RefusesWhatIsNotANumber(t *testing.T) {
	in := phone.New("IN")
	for _, input := range []string{"", "   ", "hello", "+", "12", "whatsapp:", strings.Repeat("9", 100)} {
		got, err := in.Normalize(input)
		if models.ErrorCode(err) != models.EINVALID {
			t.Errorf("Normalize(%q) = %q, %v; want EINVALID", input, got, err)
		}
		if err != nil && input != "" && strings.Contains(err.Error(), input) {
			t.Errorf("error repeats the input: %v", err)
		}
	}
}

func TestNormalize_WithoutDefaultRegionNeedsACountryCode(t *testing.T) {
	n := phone.New("")
	if _, err := n.Normalize("098765 43210"); err == nil {
		t.Error("a national number parsed with no default region")
	}
	if got, err := n.Normalize("+91 98765 43210"); err != nil || got != "+919876543210" {
		t.Errorf("international number: %q, %v", got, err)
	}
}

func TestParseAddress_ChannelsAndFlaggedAddresses(t *testing.T) {
	n := phone.New("IN")
	tests := []struct {
		input string
		want  phone.Address
		str   string
	}{
		{"whatsapp:+919876543210", phone.Address{Channel: models.ChannelWhatsApp, Number: "+919876543210", Valid: true}, "whatsapp:+919876543210"},
		{"WhatsApp:+91 98765 43210", phone.Address{Channel: models.ChannelWhatsApp, Number: "+919876543210", Valid: true}, "whatsapp:+919876543210"},
		{"+14155550100", phone.Address{Channel: models.ChannelSMS, Number: "+14155550100", Valid: true}, "tel:+14155550100"},
		{"tel:+14155550100", phone.Address{Channel: models.ChannelSMS, Number: "+14155550100", Valid: true}, "tel:+14155550100"},
		{"MYBANK", phone.Address{Channel: models.ChannelSMS, Number: "MYBANK", Valid: false}, "tel:MYBANK"},
		{"whatsapp:12", phone.Address{Channel: models.ChannelWhatsApp, Number: "12", Valid: false}, "whatsapp:12"},
		{"simulator:+447700900123", phone.Address{Channel: models.ChannelSimulator, Number: "+447700900123", Valid: true}, "simulator:+447700900123"},
	}
	for _, tt := range tests {
		got := n.ParseAddress(tt.input)
		if got != tt.want {
			t.Errorf("ParseAddress(%q) = %+v, want %+v", tt.input, got, tt.want)
		}
		if got.String() != tt.str {
			t.Errorf("ParseAddress(%q).String() = %q, want %q", tt.input, got.String(), tt.str)
		}
		if again := n.ParseAddress(tt.input); again != tt.want { // remembered
			t.Errorf("ParseAddress(%q) the second time = %+v, want %+v", tt.input, again, tt.want)
		}
	}
}

func TestParseAddress_StaysCorrectPastTheCacheSize(t *testing.T) {
	n := phone.New("IN")
	for i := range 25000 { // past the cache's size, twice
		in := fmt.Sprintf("whatsapp:+9198%08d", i)
		if got := n.ParseAddress(in); got.Number != in[len("whatsapp:"):] || !got.Valid {
			t.Fatalf("ParseAddress(%q) = %+v", in, got)
		}
	}
	if got := n.ParseAddress("whatsapp:+919800000001"); got.Number != "+919800000001" {
		t.Fatalf("after the cache filled: %+v", got)
	}
}

func TestMask_ShowsOnlyTheLastFourDigits(t *testing.T) {
	tests := map[string]string{
		"+919876543210": "+••••••••3210",
		"+14155550100":  "+•••••••0100",
		"123":           "123",
		"":              "",
	}
	for in, want := range tests {
		if got := phone.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"+919876543210", "098765 43210", "whatsapp:+1 415 555 0100", "tel:", "+९१ ९८७६५ ४३२१०", "00", "++1", "\x00"} {
		f.Add(s)
	}
	n := phone.New("IN")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := n.Normalize(s)
		if err != nil {
			if models.ErrorCode(err) != models.EINVALID {
				t.Fatalf("error code %q, want EINVALID", models.ErrorCode(err))
			}
			return
		}
		if !strings.HasPrefix(got, "+") || len(got) > 16 {
			t.Fatalf("Normalize(%q) = %q: not E.164", s, got)
		}
		// Normalising is idempotent.
		again, err := n.Normalize(got)
		if err != nil || again != got {
			t.Fatalf("Normalize(Normalize(%q)) = %q, %v; want %q", s, again, err, got)
		}
		_ = phone.Mask(got)
	})
}

// What a person types may be read more than one way: in the region's
// national form, and, typed without + or 00, as an international number.
func TestReadings_NationalAndInternationalWithoutPlus(t *testing.T) {
	for _, tt := range []struct {
		region, typed string
		want          []string
	}{
		{"GB", "07700 900117", []string{"+447700900117"}},
		{"GB", "447700900117", []string{"+447700900117"}},
		{"GB", "+44 7700 900117", []string{"+447700900117"}},
		{"IN", "447700900117", []string{"+91447700900117", "+447700900117"}}, // both possible: the search checks each
		{"IN", "098765 43210", []string{"+919876543210"}},
		{"IN", "919876543210", []string{"+919876543210"}},
		{"", "447700900117", []string{"+447700900117"}},
		{"GB", "hello", nil},
	} {
		got := phone.New(tt.region).Readings(tt.typed)
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s %q: %v, want %v", tt.region, tt.typed, got, tt.want)
		}
	}
}
