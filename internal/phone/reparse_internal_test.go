package phone

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// The shortcut for numbers already in E.164 answers as reading them back
// does: random numbers in every form, with and without a default region,
// normalise to the same number or are refused alike.
func TestNormalize_E164ShortcutAnswersAsReparsing(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 7))
	prefixes := []string{"+", "+0", "+00", "00", "0", "", "+1", "+91", "+44", "+7", "+999", "whatsapp:+", "+٩١"}
	for _, region := range []string{"IN", "", "GB", "US"} {
		n := New(region)
		for i := range 4000 {
			var b strings.Builder
			b.WriteString(prefixes[r.IntN(len(prefixes))])
			for range r.IntN(18) {
				b.WriteString(strconv.Itoa(r.IntN(10)))
			}
			in := b.String()
			got, gotErr := n.Normalize(in)
			want, wantErr := n.normalize(in, true)
			if got != want || (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("region %q case %d: Normalize = %q, %v; reparsed %q, %v", region, i, got, gotErr, want, wantErr)
			}
		}
	}
}

// BenchmarkNormalize_E164 is a platform's number, as every webhook brings.
func BenchmarkNormalize_E164(b *testing.B) {
	n := New("IN")
	for _, reparse := range []bool{false, true} {
		b.Run("reparse="+strconv.FormatBool(reparse), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := n.normalize("+919876543210", reparse); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
