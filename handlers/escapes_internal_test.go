package handlers

import (
	"net/url"
	"testing"
)

// A body is refused for its escapes exactly when the standard library's
// parser would refuse it for them.
func TestEscapesWellFormed_AgreesWithParseQuery(t *testing.T) {
	for _, body := range []string{"", "a=b", "a=%41", "a=%4a&b=%4A", "a=%", "a=%4", "a=%ZZ", "a=%%41", "a=b%2", "%41=%42", "a=%41%", "a=%g1"} {
		_, err := url.ParseQuery(body)
		if got := escapesWellFormed([]byte(body)); got != (err == nil) {
			t.Errorf("%q: well formed %v, ParseQuery: %v", body, got, err)
		}
	}
}
