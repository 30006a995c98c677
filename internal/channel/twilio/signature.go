package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Verifier checks X-Twilio-Signature per Twilio's documented algorithm
// (https://www.twilio.com/docs/usage/security#validating-requests): the
// URL Twilio called, then each POST parameter's name and value, names
// sorted bytewise, HMAC-SHA1 under the auth token, standard base64.
//
// It accepts exactly what twilio-go's RequestValidator.Validate accepts
// (the URL as configured, or with its default port added or removed: the
// property test holds it to that), but that validator costs a webhook two
// HMACs, three URL parses and a string rebuilt once per parameter; this
// one builds the string once, tries the URL as configured first and the
// other form of its port only when that fails. twilio-go still sends.
type Verifier struct {
	key []byte
	// bases are PARLEY_PUBLIC_URL as configured and with its default port
	// added (or removed, when it names one); one entry when both are equal.
	bases []string
	bufs  sync.Pool // *[]byte: the signed string of one request
	macs  sync.Pool // hash.Hash: HMAC-SHA1 under key
}

// NewVerifier returns a verifier for webhooks signed with authToken and
// addressed to publicURL (PARLEY_PUBLIC_URL, no trailing slash).
func NewVerifier(publicURL, authToken string) *Verifier {
	base := strings.TrimRight(publicURL, "/")
	v := &Verifier{key: []byte(authToken), bases: []string{base}}
	if other := otherPort(base); other != base {
		v.bases = append(v.bases, other)
	}
	v.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	v.macs.New = func() any { return hmac.New(sha1.New, v.key) }
	return v
}

// Verify reports whether signature signs the request to path?query with
// these form parameters. The URL is built from the public URL, never from
// the Host header, which a proxy may have changed.
func (v *Verifier) Verify(path, rawQuery string, params map[string]string, signature string) bool {
	const sigLen = 28 // base64 of SHA-1's 20 bytes
	if len(signature) != sigLen {
		return false
	}
	keys := make([]string, 0, 32)
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys) // bytewise, as Twilio sorts
	bp := v.bufs.Get().(*[]byte)
	defer v.bufs.Put(bp)
	buf := append((*bp)[:0], path...)
	if rawQuery != "" {
		buf = append(append(buf, '?'), rawQuery...)
	}
	for _, k := range keys {
		buf = append(append(buf, k...), params[k]...)
	}
	*bp = buf
	mac := v.macs.Get().(hash.Hash)
	defer v.macs.Put(mac)
	var sum [sha1.Size]byte
	var enc [sigLen]byte
	ok := 0
	for _, base := range v.bases {
		mac.Reset()
		mac.Write([]byte(base))
		mac.Write(buf)
		base64.StdEncoding.Encode(enc[:], mac.Sum(sum[:0]))
		ok |= subtle.ConstantTimeCompare(enc[:], []byte(signature))
		if ok == 1 {
			break
		}
	}
	return ok == 1
}

// otherPort is base with its scheme's default port added, or its port
// removed when it names one, as twilio-go's addPort and removePort make
// them (Twilio signs some requests with the port and some without).
func otherPort(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	if u.Port() != "" {
		u.Host = strings.Split(u.Host, ":")[0]
		return u.String()
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	u.Host += ":" + strconv.Itoa(port)
	return u.String()
}
