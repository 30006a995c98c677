package handlers

import (
	"net/url"
	"strings"
)

// safeNext is where to go after signing in: a path on this site, else /.
//
// The target is parsed as a URL and only a path (with its query and
// fragment) is accepted. Anything a browser drops or rewrites is refused,
// raw or percent-encoded: control characters (browsers remove tabs and
// newlines from URLs, so "/\t/evil.example" becomes "//evil.example") and
// backslashes (read as "/"), as is a path that starts "//" once decoded.
// What goes back is the parsed URL written again, never the raw input.
func safeNext(next string) string {
	if next == "" || strings.ContainsFunc(next, unsafeInURL) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Opaque != "" || u.User != nil || u.Host != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.ContainsFunc(u.Path, unsafeInURL) {
		return "/"
	}
	return (&url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery, Fragment: u.Fragment, RawFragment: u.RawFragment}).String()
}

// unsafeInURL is a character browsers drop from a URL or read as another.
func unsafeInURL(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }
