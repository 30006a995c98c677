package handlers_test

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"
	"runtime"
	"testing"

	"github.com/andybalholm/brotli"
)

// bomb is n MiB of zeros compressed with the given Content-Encoding.
// A gzip body may hold several members, decoded as one stream: one member
// of 1 MiB, repeated, makes a large bomb at once (compressing it whole
// takes minutes under the race detector).
func bomb(t *testing.T, encoding string, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch encoding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf) // HTTP's "deflate" is the zlib format
	case "br":
		w = brotli.NewWriter(&buf)
	}
	zeros := make([]byte, 1<<20)
	rounds := n
	if encoding == "gzip" {
		rounds = 1
	}
	for range rounds {
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if encoding == "gzip" {
		return bytes.Repeat(buf.Bytes(), n)
	}
	return buf.Bytes()
}

// A compressed body is refused before anything reads it: a few hundred KB
// on the wire must not become hundreds of MB in memory.
func TestCompressedBodies_RefusedWithoutInflating(t *testing.T) {
	h := newHooks(t, false)
	tests := []struct {
		label, path, encoding string
		mib                   int // inflated size
	}{
		{"gzip to Meta with a bogus signature", "/webhooks/meta", "gzip", 256},
		{"deflate to Siren", "/webhooks/siren", "deflate", 16},
		{"brotli to Twilio", "/webhooks/twilio", "br", 16},
		{"gzip to a route that is not a webhook", "/", "gzip", 256},
		{"an encoding list", "/webhooks/meta", "gzip, identity", 256},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			enc := tt.encoding
			if enc == "gzip, identity" {
				enc = "gzip"
			}
			body := bomb(t, enc, tt.mib)
			if len(body) > 1<<20 {
				t.Fatalf("bomb is %d bytes on the wire; it must fit under the body limit to test anything", len(body))
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			status, _, _ := h.post(t, tt.path, "application/json", body, map[string]string{
				"Content-Encoding": tt.encoding, "X-Hub-Signature-256": "sha256=00", "X-Siren-Signature": "00", "X-Twilio-Signature": "x",
			})
			runtime.ReadMemStats(&after)
			if status != 415 {
				t.Errorf("status %d, want 415", status)
			}
			// The whole process, test client included, allocated far less
			// than the inflated size (before the fix: more than all of it).
			if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(tt.mib)<<20/2 {
				t.Errorf("allocated %d MiB answering a %d KiB request", grew>>20, len(body)>>10)
			}
		})
	}
	if n := h.count(t, "SELECT count(*) FROM messages"); n != 0 {
		t.Errorf("%d messages stored", n)
	}

	// identity is no encoding at all: such a request reaches the signature
	// check as usual.
	status, _, _ := h.post(t, "/webhooks/meta", "application/json", []byte(`{}`), map[string]string{
		"Content-Encoding": "identity", "X-Hub-Signature-256": "sha256=00",
	})
	if status != 403 {
		t.Errorf("identity-encoded body with a bad signature: status %d, want 403", status)
	}
}
