package channel

import (
	"strings"
	"unicode/utf8"

	"github.com/parley-chat/parley/models"
)

// Sanitize makes in storable, or returns EINVALID naming the field (never
// its value) when it never can be. An id or address that is not valid
// UTF-8 or holds a NUL byte is refused: PostgreSQL's text columns (the
// message id, a media type) refuse both, and an address so written
// matches no contact, so a platform answered 5xx would redeliver it
// forever. Free text (the body, a profile name) is kept: what is not
// UTF-8 becomes U+FFFD and NUL bytes are dropped, as the person's words
// matter more than bytes no screen shows and JSONB would refuse. Adapters
// call it as they parse, so a refusal is answered 400 before the webhook
// joins a commit.
func Sanitize(in *Inbound) error {
	ids := [...]struct{ name, v string }{
		{"message id", in.ProviderMessageID}, {"sender", in.From}, {"recipient", in.To},
	}
	for _, f := range ids {
		if !storable(f.v) {
			return models.Errorf(models.EINVALID, "The %s is not valid UTF-8 or holds a NUL byte.", f.name)
		}
	}
	for _, m := range in.Media {
		if !storable(m.Ref) || !storable(m.ContentType) {
			return models.Errorf(models.EINVALID, "A media reference or type is not valid UTF-8 or holds a NUL byte.")
		}
	}
	in.Body, in.ProfileName = cleanText(in.Body), cleanText(in.ProfileName)
	return nil
}

func storable(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// cleanText is s as valid UTF-8 without NUL bytes; s itself when it is.
func cleanText(s string) string {
	if storable(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}
