package handlers

import (
	"testing"
	"time"
)

// A time to send written without an offset is read in the clinic's time
// zone; one with an offset keeps it.
func TestBroadcasts_SendAtReadsTheClinicsZone(t *testing.T) {
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	b := &Broadcasts{Zone: kolkata}
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-12-08T10:00", time.Date(2026, 12, 8, 4, 30, 0, 0, time.UTC)},
		{"2026-12-08 10:00", time.Date(2026, 12, 8, 4, 30, 0, 0, time.UTC)},
		{"2026-12-08T10:00:00+01:00", time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC)},
	} {
		got, err := b.sendAt(tc.in)
		if err != nil || got == nil || !got.Equal(tc.want) {
			t.Errorf("sendAt(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if got, err := b.sendAt(""); got != nil || err != nil {
		t.Errorf("empty: %v, %v; want now (nil)", got, err)
	}
	if _, err := b.sendAt("next Tuesday"); err == nil {
		t.Error("a time that is not one was read")
	}
}
