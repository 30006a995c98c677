package textnorm_test

import (
	"reflect"
	"testing"

	"github.com/parley-chat/parley/internal/textnorm"
)

func TestWords_NormalisesLatinHindiAndTamil(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"latin case and punctuation", "Hello, HELLO world! Appointment: Monday?", []string{"hello", "world", "appointment", "monday"}},
		{"accents stay meaningful", "Café cafe CAFÉ", []string{"café", "cafe"}},
		{"german fold", "STRASSE Straße", []string{"strasse"}},
		{"hindi keeps vowel signs and nukta", "मुझे सोमवार को डॉक्टर से मिलना है", []string{"मुझे", "सोमवार", "को", "डॉक्टर", "से", "मिलना", "है"}},
		{"hindi matra changes the word", "कम काम", []string{"कम", "काम"}},
		{"tamil", "வணக்கம் நண்பரே, வணக்கம்!", []string{"வணக்கம்", "நண்பரே"}},
		{"digits of any script as ASCII", "order १२३ and 123", []string{"order", "123", "and"}},
		{"fullwidth via NFKC", "ＡＢＣ abc", []string{"abc"}},
		{"zero-width joiner ignored", "क्\u200dष क्ष", []string{"क्ष"}},
		{"emoji only", "🙏🙏 👍", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := textnorm.Words(tt.text); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Words(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestContainsAll(t *testing.T) {
	if !textnorm.ContainsAll("I need an APPOINTMENT on Monday", []string{"appointment", "monday"}) {
		t.Error("all words present, got false")
	}
	if textnorm.ContainsAll("I need an appointment", []string{"appointment", "monday"}) {
		t.Error("a word missing, got true")
	}
}
