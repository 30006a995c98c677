package ai_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/ai"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A voice note longer than a call takes is cut into whole Ogg/Opus
// streams under the limit that together play as long as the original;
// a short one comes back as it is.
func TestSplitOpus(t *testing.T) {
	long := fixture(t, "voice-note-long.ogg")
	total, err := ai.OpusDuration(long)
	if err != nil || total < 100*time.Second || total > 110*time.Second {
		t.Fatalf("the long note plays %v (%v), want 1 min 47 s", total, err)
	}
	parts, err := ai.SplitOpus(long, 25*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 5 {
		t.Errorf("%d parts, want 5", len(parts))
	}
	var sum time.Duration
	for i, p := range parts {
		d, err := ai.OpusDuration(p) // every page's checksum holds
		if err != nil || d <= 0 || d > 25*time.Second {
			t.Fatalf("part %d plays %v (%v)", i, d, err)
		}
		if !bytes.HasPrefix(p, []byte("OggS")) || !bytes.Contains(p[:200], []byte("OpusHead")) {
			t.Fatalf("part %d does not begin as an Ogg/Opus stream", i)
		}
		sum += d
	}
	if diff := sum - total; diff < -time.Second || diff > time.Second {
		t.Fatalf("the parts play %v together, the note %v", sum, total)
	}
	short := fixture(t, "voice-note-en.ogg")
	if parts, err := ai.SplitOpus(short, 25*time.Second); err != nil || len(parts) != 1 || !bytes.Equal(parts[0], short) {
		t.Fatalf("a short note was cut: %d parts, %v", len(parts), err)
	}
	if _, err := ai.OpusDuration(fixture(t, "appointment-card.jpg")); err == nil {
		t.Fatal("a JPEG read as Opus")
	}
	broken := bytes.Clone(short)
	broken[100] ^= 0xff
	if _, err := ai.OpusDuration(broken); err == nil {
		t.Fatal("a damaged page passed its checksum")
	}
}
