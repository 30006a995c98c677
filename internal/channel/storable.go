package channel

import (
	"strings"
	"unicode/utf8"

	"github.com/parley-chat/parley/models"
)

// CheckStorable returns EINVALID, naming the field (never its value), when
// a field of in is not valid UTF-8 or holds a NUL byte: PostgreSQL's text
// columns refuse both, so such a message could never be stored and a
// platform answered 5xx would redeliver it forever. Adapters call it as
// they parse, so the webhook is answered 400 before it joins a commit.
func CheckStorable(in Inbound) error {
	fields := [...]struct{ name, v string }{
		{"message id", in.ProviderMessageID}, {"sender", in.From}, {"recipient", in.To},
		{"body", in.Body}, {"profile name", in.ProfileName},
	}
	for _, f := range fields {
		if !storable(f.v) {
			return models.Errorf(models.EINVALID, "The %s is not valid UTF-8 or holds a NUL byte.", f.name)
		}
	}
	for _, m := range in.Media {
		if !storable(m.Ref) || !storable(m.ContentType) {
			return models.Errorf(models.EINVALID, "A media reference is not valid UTF-8 or holds a NUL byte.")
		}
	}
	return nil
}

func storable(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }
